using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Format;

/// <summary>
/// A bounds-checked cursor over one record's bytes. Every read checks the bytes left and throws
/// <see cref="RecordBatchFormatException"/> naming the record, the field and the byte position, so a
/// malformed record can never cause an <see cref="IndexOutOfRangeException"/>.
/// </summary>
internal ref struct RecordReader
{
    private readonly ReadOnlySpan<byte> _span;
    private readonly int _origin;
    private readonly int _recordIndex;
    private int _position;

    /// <summary>Creates a reader over <paramref name="span"/>, which starts <paramref name="origin"/> bytes into the records section.</summary>
    public RecordReader(ReadOnlySpan<byte> span, int origin, int recordIndex)
    {
        _span = span;
        _origin = origin;
        _recordIndex = recordIndex;
        _position = 0;
    }

    /// <summary>Bytes consumed so far.</summary>
    public readonly int Position => _position;

    /// <summary>Bytes left.</summary>
    public readonly int Remaining => _span.Length - _position;

    /// <summary>The bytes from <paramref name="start"/> to the current position.</summary>
    public readonly ReadOnlySpan<byte> Slice(int start) => _span[start.._position];

    /// <summary>Reads one byte.</summary>
    public byte ReadByte(string field)
    {
        if (_position >= _span.Length)
        {
            Throw(field, "is missing");
        }

        return _span[_position++];
    }

    /// <summary>Reads a zigzag varint.</summary>
    public int ReadVarint(string field)
    {
        if (!Varint.TryRead(_span[_position..], out int value, out int length))
        {
            Throw(field, "is a truncated or malformed varint");
        }

        _position += length;
        return value;
    }

    /// <summary>Reads a zigzag varlong.</summary>
    public long ReadVarlong(string field)
    {
        if (!Varint.TryRead(_span[_position..], out long value, out int length))
        {
            Throw(field, "is a truncated or malformed varlong");
        }

        _position += length;
        return value;
    }

    /// <summary>
    /// Reads a length varint (-1 = null when <paramref name="nullable"/>) and the bytes it announces.
    /// </summary>
    /// <returns>False for a null (-1) length.</returns>
    public bool ReadLengthPrefixed(string field, bool nullable, out ReadOnlySpan<byte> bytes)
    {
        int length = ReadVarint(field);
        if (length == -1 && nullable)
        {
            bytes = default;
            return false;
        }

        if (length < 0 || length > Remaining)
        {
            Throw(field, $"length {length} is outside 0..{Remaining} (the bytes left in the record)");
        }

        bytes = _span.Slice(_position, length);
        _position += length;
        return true;
    }

    /// <summary>Throws the decoder's exception for this record.</summary>
    [DoesNotReturn]
    public readonly void Throw(string field, string problem) =>
        throw new RecordBatchFormatException(
            $"Malformed record {_recordIndex} at byte {_origin + _position} of the records section: {field} {problem}.",
            _origin + _position,
            CheckName(field));

    /// <summary>The <see cref="InvalidRecordBatchException.FailedCheck"/> name for a field named in a message.</summary>
    private static string CheckName(string field) => field switch
    {
        "record length" => "recordLength",
        "header key" => "headerKey",
        "header value" => "headerValue",
        "end of batch" or "record count" => "recordCount",
        _ => field,
    };
}
