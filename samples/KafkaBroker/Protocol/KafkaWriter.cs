using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace KafkaBroker.Protocol;

/// <summary>
/// Writes one response frame: a 4-byte size placeholder (patched by <see cref="Complete"/>), then the fields in
/// Kafka's encodings. Arrays are written as a count followed by the elements the caller writes. Large byte ranges
/// (stored record batches) can be appended by reference with <see cref="WriteReference"/>: the frame is then sent
/// as a list of parts, so a fetch never copies the batches it serves into a buffer of its own.
/// </summary>
internal sealed class KafkaWriter
{
    private readonly ArrayBufferWriter<byte> _buffer;
    private readonly List<(int Position, ReadOnlyMemory<byte> Bytes)> _references = [];

    /// <summary>The parts <see cref="Complete"/> returns (one list per writer, reused when the writer is).</summary>
    private readonly List<ReadOnlyMemory<byte>> _parts = [];
    private long _referencedBytes;

    /// <summary>Starts a frame: the size placeholder, then the response header's correlation id.</summary>
    public KafkaWriter(int correlationId)
    {
        _buffer = new ArrayBufferWriter<byte>(256);
        Restart(correlationId);
    }

    /// <summary>
    /// Starts a new frame in this writer, keeping its buffers (a writer reused from one response to the next: the
    /// previous frame must have been sent, or dropped, first).
    /// </summary>
    public void Restart(int correlationId)
    {
        _buffer.ResetWrittenCount();
        _references.Clear();
        _parts.Clear();
        _referencedBytes = 0;
        AfterSent = null;
        WriteInt32(0);
        WriteInt32(correlationId);
    }

    public void WriteInt8(sbyte value) => Span(1)[0] = (byte)value;

    public void WriteBool(bool value) => WriteInt8(value ? (sbyte)1 : (sbyte)0);

    public void WriteInt16(short value) => BinaryPrimitives.WriteInt16BigEndian(Span(2), value);

    public void WriteError(ErrorCode value) => WriteInt16((short)value);

    public void WriteInt32(int value) => BinaryPrimitives.WriteInt32BigEndian(Span(4), value);

    public void WriteInt64(long value) => BinaryPrimitives.WriteInt64BigEndian(Span(8), value);

    public void WriteString(string value) => WriteNullableString(value);

    public void WriteNullableString(string? value)
    {
        if (value is null)
        {
            WriteInt16(-1);
            return;
        }

        int length = Encoding.UTF8.GetByteCount(value);
        WriteInt16(checked((short)length));
        Encoding.UTF8.GetBytes(value, Span(length));
    }

    public void WriteBytes(ReadOnlySpan<byte> value)
    {
        WriteInt32(value.Length);
        value.CopyTo(Span(value.Length));
    }

    /// <summary>
    /// Bytes sent as they are after everything written so far, without a length and without being copied (the
    /// caller keeps them unchanged until the frame is sent).
    /// </summary>
    public void WriteReference(ReadOnlyMemory<byte> bytes)
    {
        _references.Add((_buffer.WrittenCount, bytes));
        _referencedBytes += bytes.Length;
    }

    /// <summary>
    /// Run by the connection once the frame is sent, or once it is known it never will be (the connection is closing):
    /// ends the loans of the bytes passed to <see cref="WriteReference"/>.
    /// </summary>
    public Func<ValueTask>? AfterSent { get; set; }

    public void WriteArrayCount(int count) => WriteInt32(count);

    public void WriteUnsignedVarint(uint value)
    {
        while (value >= 0x80)
        {
            WriteInt8((sbyte)(byte)(value | 0x80));
            value >>= 7;
        }

        WriteInt8((sbyte)(byte)value);
    }

    /// <summary>A COMPACT_ARRAY's count: count + 1 as an unsigned varint.</summary>
    public void WriteCompactArrayCount(int count) => WriteUnsignedVarint((uint)count + 1);

    /// <summary>An empty TAGGED_FIELDS section.</summary>
    public void WriteEmptyTaggedFields() => WriteUnsignedVarint(0);

    /// <summary>The position of the next byte, for <see cref="PatchInt32"/>.</summary>
    public int Position => _buffer.WrittenCount;

    /// <summary>Overwrites an int32 written earlier (a length known only after its content).</summary>
    public void PatchInt32(int position, int value) =>
        BinaryPrimitives.WriteInt32BigEndian(
            MemoryMarshalHelper.AsWritable(_buffer.WrittenMemory).Span[position..], value);

    /// <summary>
    /// Patches the frame's size and returns the frame as the parts to send, in order, none empty (the writer's own
    /// list: valid until the writer is restarted).
    /// </summary>
    /// <exception cref="KafkaProtocolException">The frame would exceed 2 GiB, the protocol's size limit.</exception>
    public List<ReadOnlyMemory<byte>> Complete()
    {
        long size = _buffer.WrittenCount + _referencedBytes - 4;
        if (size > int.MaxValue)
        {
            throw new KafkaProtocolException("The response exceeds 2 GiB.");
        }

        PatchInt32(0, (int)size);
        var written = _buffer.WrittenMemory;
        _parts.Clear();
        int from = 0;
        foreach (var (position, bytes) in _references)
        {
            AddPart(written[from..position]);
            AddPart(bytes);
            from = position;
        }

        AddPart(written[from..]);
        return _parts;
    }

    private void AddPart(ReadOnlyMemory<byte> part)
    {
        if (!part.IsEmpty)
        {
            _parts.Add(part);
        }
    }

    private Span<byte> Span(int length)
    {
        var span = _buffer.GetSpan(length)[..length];
        _buffer.Advance(length);
        return span;
    }
}
