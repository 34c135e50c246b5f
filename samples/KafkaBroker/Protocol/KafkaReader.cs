using System.Buffers.Binary;
using System.Text;

namespace KafkaBroker.Protocol;

/// <summary>
/// Reads the primitive types of the Kafka protocol (big-endian integers, int16-length strings, int32-length bytes,
/// int32-count arrays, and the compact/tagged forms of flexible versions) from one request frame. Every read checks
/// the frame's remaining length first and throws <see cref="KafkaProtocolException"/> when a field runs past it, so a
/// hostile length can never make the broker allocate more than the frame it already holds.
/// </summary>
internal sealed class KafkaReader
{
    private ReadOnlyMemory<byte> _frame;
    private int _position;

    public KafkaReader(ReadOnlyMemory<byte> frame) => _frame = frame;

    /// <summary>Reads another frame from its start (a connection reuses its readers from request to request).</summary>
    public void Reset(ReadOnlyMemory<byte> frame)
    {
        _frame = frame;
        _position = 0;
    }

    /// <summary>Bytes not read yet.</summary>
    public int Remaining => _frame.Length - _position;

    public sbyte ReadInt8() => (sbyte)Take(1)[0];

    public bool ReadBool() => Take(1)[0] != 0;

    public short ReadInt16() => BinaryPrimitives.ReadInt16BigEndian(Take(2));

    public int ReadInt32() => BinaryPrimitives.ReadInt32BigEndian(Take(4));

    public long ReadInt64() => BinaryPrimitives.ReadInt64BigEndian(Take(8));

    /// <summary>A non-null STRING (int16 length).</summary>
    public string ReadString() =>
        ReadNullableString() ?? throw new KafkaProtocolException("A required string is null.");

    /// <summary>
    /// A non-null STRING, returned as <paramref name="cached"/> when its bytes spell it in ASCII (a name a client sends
    /// with every request: no string per request), else decoded.
    /// </summary>
    public string ReadString(string? cached)
    {
        short length = ReadInt16();
        if (length < 0)
        {
            throw new KafkaProtocolException(length == -1 ? "A required string is null." : $"String length {length} is negative.");
        }

        var bytes = Take(length);
        return cached is not null && Ascii.Equals(bytes, cached) ? cached : Encoding.UTF8.GetString(bytes);
    }

    /// <summary>A NULLABLE_STRING, returned as <paramref name="cached"/> when its bytes spell it in ASCII.</summary>
    public string? ReadNullableString(string? cached)
    {
        short length = ReadInt16();
        if (length == -1)
        {
            return null;
        }

        if (length < 0)
        {
            throw new KafkaProtocolException($"String length {length} is negative.");
        }

        var bytes = Take(length);
        return cached is not null && Ascii.Equals(bytes, cached) ? cached : Encoding.UTF8.GetString(bytes);
    }

    /// <summary>Skips a STRING or NULLABLE_STRING.</summary>
    public void SkipString()
    {
        short length = ReadInt16();
        if (length < -1)
        {
            throw new KafkaProtocolException($"String length {length} is negative.");
        }

        Take(Math.Max(length, (short)0));
    }

    /// <summary>A non-null ARRAY's count, checked as <see cref="ReadArray{T}"/> checks it (the caller reads the elements).</summary>
    public int ReadArrayCount()
    {
        int count = ReadInt32();
        if (count < 0 || count > Remaining)
        {
            throw new KafkaProtocolException($"Array count {count} does not fit the {Remaining} bytes left.");
        }

        return count;
    }

    /// <summary>The position in the frame (to read a part twice: once checked, once kept).</summary>
    public int Position
    {
        get => _position;
        set => _position = value >= 0 && value <= _frame.Length ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    /// <summary>A NULLABLE_STRING: length -1 is null.</summary>
    public string? ReadNullableString()
    {
        short length = ReadInt16();
        return length switch
        {
            -1 => null,
            < 0 => throw new KafkaProtocolException($"String length {length} is negative."),
            _ => Encoding.UTF8.GetString(Take(length)),
        };
    }

    /// <summary>NULLABLE_BYTES (int32 length, -1 is null), as a slice of the frame (no copy).</summary>
    public ReadOnlyMemory<byte>? ReadNullableBytes()
    {
        int length = ReadInt32();
        if (length == -1)
        {
            return null;
        }

        return TakeMemory(length);
    }

    /// <summary>Non-null BYTES.</summary>
    public ReadOnlyMemory<byte> ReadBytes() =>
        ReadNullableBytes() ?? throw new KafkaProtocolException("Required bytes are null.");

    /// <summary>An ARRAY (int32 count; -1 is null) of elements read by <paramref name="readElement"/>.</summary>
    public List<T>? ReadNullableArray<T>(Func<KafkaReader, T> readElement)
    {
        int count = ReadInt32();
        return count == -1 ? null : ReadElements(count, readElement);
    }

    /// <summary>A non-null ARRAY.</summary>
    public List<T> ReadArray<T>(Func<KafkaReader, T> readElement) =>
        ReadNullableArray(readElement) ?? throw new KafkaProtocolException("A required array is null.");

    /// <summary>An UNSIGNED_VARINT (flexible versions: compact lengths and tag counts).</summary>
    public uint ReadUnsignedVarint()
    {
        uint value = 0;
        for (int shift = 0; shift < 35; shift += 7)
        {
            byte b = Take(1)[0];
            value |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }

        throw new KafkaProtocolException("A varint is longer than 5 bytes.");
    }

    /// <summary>A COMPACT_NULLABLE_STRING (length + 1 as an unsigned varint; 0 is null).</summary>
    public string? ReadCompactNullableString()
    {
        uint lengthPlusOne = ReadUnsignedVarint();
        if (lengthPlusOne == 0)
        {
            return null;
        }

        return Encoding.UTF8.GetString(Take(CheckedLength(lengthPlusOne - 1)));
    }

    /// <summary>Skips a TAGGED_FIELDS section: this broker knows no tags, and unknown tags must be ignored.</summary>
    public void SkipTaggedFields()
    {
        uint count = ReadUnsignedVarint();
        for (uint i = 0; i < count; i++)
        {
            _ = ReadUnsignedVarint();
            Take(CheckedLength(ReadUnsignedVarint()));
        }
    }

    private List<T> ReadElements<T>(int count, Func<KafkaReader, T> readElement)
    {
        // Every element takes at least one byte, so a count above the remaining bytes is a lie: refuse it before
        // allocating a list of that size.
        if (count < 0 || count > Remaining)
        {
            throw new KafkaProtocolException($"Array count {count} does not fit the {Remaining} bytes left.");
        }

        var list = new List<T>(count);
        for (int i = 0; i < count; i++)
        {
            list.Add(readElement(this));
        }

        return list;
    }

    private int CheckedLength(uint length) =>
        length <= int.MaxValue ? (int)length : throw new KafkaProtocolException($"Length {length} is too large.");

    private ReadOnlySpan<byte> Take(int length) => TakeMemory(length).Span;

    private ReadOnlyMemory<byte> TakeMemory(int length)
    {
        if (length < 0 || length > Remaining)
        {
            throw new KafkaProtocolException(
                $"A field of {length} bytes runs past the end of the request ({Remaining} left).");
        }

        var slice = _frame.Slice(_position, length);
        _position += length;
        return slice;
    }
}
