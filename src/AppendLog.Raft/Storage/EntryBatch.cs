using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using AppendLog.Raft.Core;

namespace AppendLog.Raft.Storage;

/// <summary>
/// One Raft entry as one Kafka RecordBatch v2 (the core's on-disk format), so a follower can store the leader's bytes
/// verbatim (<c>SegmentedLog.AppendRawBatchAsync</c>) and a node's log offsets are the same on every node.
/// <para>
/// Application entries: the entry's payload IS the batch: one record per client payload (null key, value = payload),
/// built once by the leader with the entry's term in partitionLeaderEpoch. Raft's own entries (the new leader's no-op,
/// membership changes) are a batch of one record carrying the header <see cref="KindHeader"/> (one byte: the kind) and
/// the Raft payload as its value; readers of the replicated log skip those records. A record replicated within a client
/// session carries the header <see cref="SessionHeader"/> (16 bytes: session id, sequence, little-endian); the record
/// that opens a session carries it with an empty value and is skipped by readers too.
/// </para>
/// <para>
/// Layout (big-endian, Kafka's): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12, magic i8 @16,
/// crc u32 @17 (CRC-32C over bytes 21..end), attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp i64 @27,
/// maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51, baseSequence i32 @53, recordCount i32 @57,
/// records @61. A record: length, attributes i8, timestampDelta, offsetDelta, keyLength (-1 = null), key, valueLength,
/// value, headerCount, headers (keyLength, key, valueLength, value); every length and delta a zig-zag varint.
/// </para>
/// </summary>
internal static class EntryBatch
{
    public const string KindHeader = "alog.raft.kind";

    /// <summary>The header of a record replicated within a client session (exactly-once proposals).</summary>
    public const string SessionHeader = "alog.raft.session";

    /// <summary>Bytes of a session header's value: session id and sequence, i64 little-endian each.</summary>
    private const int SessionTagBytes = 16;

    public const int HeaderSize = 61;

    private const int BatchLengthOffset = 8;
    private const int EpochOffset = 12;
    private const int MagicOffset = 16;
    private const int CrcOffset = 17;
    private const int AttributesOffset = 21;
    private const int LastOffsetDeltaOffset = 23;
    private const int BaseTimestampOffset = 27;
    private const int MaxTimestampOffset = 35;
    private const int ProducerIdOffset = 43;
    private const int ProducerEpochOffset = 51;
    private const int BaseSequenceOffset = 53;
    private const int RecordCountOffset = 57;
    private const int CodecMask = 0x07;

    private static readonly byte[] s_kindHeaderKey = Encoding.UTF8.GetBytes(KindHeader);
    private static readonly byte[] s_sessionHeaderKey = Encoding.UTF8.GetBytes(SessionHeader);

    /// <summary>Encodes application payloads as one batch (one record each) in <paramref name="term"/>.</summary>
    public static byte[] EncodeApplication(IReadOnlyList<ReadOnlyMemory<byte>> payloads, long term, long timestampMs) =>
        EncodeApplication(payloads, sessions: null, term, timestampMs);

    /// <summary>
    /// Encodes application payloads as one batch in <paramref name="term"/>; <paramref name="sessions"/>, when given,
    /// holds each record's session tag (null for a record outside any session).
    /// </summary>
    public static byte[] EncodeApplication(
        IReadOnlyList<ReadOnlyMemory<byte>> payloads, IReadOnlyList<SessionTag?>? sessions, long term, long timestampMs)
    {
        Invariant.Assert(payloads.Count > 0, "an application batch holds at least one record");
        Invariant.Assert(sessions is null || sessions.Count == payloads.Count, "one session tag per record");
        var size = HeaderSize;
        for (var i = 0; i < payloads.Count; i++)
        {
            size += RecordSize(i, payloads[i].Length, HeaderOf(sessions?[i]));
        }

        var batch = new byte[size];
        var position = HeaderSize;
        for (var i = 0; i < payloads.Count; i++)
        {
            position += WriteRecord(batch.AsSpan(position), i, payloads[i].Span, HeaderOf(sessions?[i]));
        }

        Invariant.Assert(position == size, "the record sizes were computed exactly");
        WriteHeader(batch, payloads.Count, term, timestampMs);
        return batch;
    }

    /// <summary>Encodes a Raft-internal entry (no-op or membership change) as a one-record batch.</summary>
    public static byte[] EncodeControl(RaftEntryKind kind, ReadOnlySpan<byte> data, long term, long timestampMs)
    {
        var header = new RecordHeader(s_kindHeaderKey, [(byte)kind]);
        var size = HeaderSize + RecordSize(0, data.Length, header);
        var batch = new byte[size];
        WriteRecord(batch.AsSpan(HeaderSize), 0, data, header);
        WriteHeader(batch, 1, term, timestampMs);
        return batch;
    }

    /// <summary>The bytes to store for <paramref name="entry"/>: its own payload when it is an application batch.</summary>
    public static ReadOnlyMemory<byte> ToBatch(RaftEntry entry, long timestampMs)
    {
        if (entry.Kind == RaftEntryKind.Normal && !entry.Data.IsEmpty)
        {
            Check(entry.Data.Span);
            Invariant.Assert(Epoch(entry.Data.Span) == entry.Term, "an application batch carries its entry's term");
            return entry.Data;
        }

        return EncodeControl(entry.Kind, entry.Data.Span, entry.Term, timestampMs);
    }

    /// <summary>The entry stored as <paramref name="batch"/> at <paramref name="index"/> (the inverse of <see cref="ToBatch"/>).</summary>
    public static RaftEntry ToEntry(long index, ReadOnlyMemory<byte> batch)
    {
        var span = batch.Span;
        var term = Epoch(span);
        if (RecordCount(span) == 1 && TryReadControl(span, out var kind, out var data))
        {
            return new RaftEntry(term, index, kind, data);
        }

        return new RaftEntry(term, index, RaftEntryKind.Normal, batch);
    }

    public static int Epoch(ReadOnlySpan<byte> batch) => BinaryPrimitives.ReadInt32BigEndian(batch[EpochOffset..]);

    public static int RecordCount(ReadOnlySpan<byte> batch) => BinaryPrimitives.ReadInt32BigEndian(batch[RecordCountOffset..]);

    /// <summary>
    /// The offsets the batch covers (lastOffsetDelta + 1): equal to the record count as written, larger once the
    /// log's key compaction has removed records (it keeps every batch's offset range).
    /// </summary>
    public static int OffsetCount(ReadOnlySpan<byte> batch) => BinaryPrimitives.ReadInt32BigEndian(batch[LastOffsetDeltaOffset..]) + 1;

    /// <summary>Checks length, magic, codec and CRC-32C; throws <see cref="InvalidDataException"/> otherwise.</summary>
    public static void Check(ReadOnlySpan<byte> batch)
    {
        if (batch.Length < HeaderSize)
        {
            throw new InvalidDataException($"A record batch is at least {HeaderSize} bytes; got {batch.Length}.");
        }

        var length = BinaryPrimitives.ReadInt32BigEndian(batch[BatchLengthOffset..]);
        if ((long)length + 12 != batch.Length)
        {
            throw new InvalidDataException($"The batch length field says {length + 12L} bytes; got {batch.Length}.");
        }

        if (batch[MagicOffset] != 2)
        {
            throw new InvalidDataException($"Only record batch v2 is supported; magic is {batch[MagicOffset]}.");
        }

        var crc = BinaryPrimitives.ReadUInt32BigEndian(batch[CrcOffset..]);
        if (crc != Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, batch[AttributesOffset..]))
        {
            throw new InvalidDataException("The record batch CRC-32C does not match.");
        }
    }

    /// <summary>The application payloads (record values) of an application batch, in order.</summary>
    public static List<ReadOnlyMemory<byte>> ReadValues(ReadOnlyMemory<byte> batch) =>
        ReadRecords(batch).ConvertAll(record => record.Value);

    /// <summary>The records of an application batch, in order: each value and its session tag (null outside a session).</summary>
    public static List<(ReadOnlyMemory<byte> Value, SessionTag? Session)> ReadRecords(ReadOnlyMemory<byte> batch)
    {
        var span = batch.Span;
        if ((BinaryPrimitives.ReadInt16BigEndian(span[AttributesOffset..]) & CodecMask) != 0)
        {
            throw new InvalidDataException("Compressed record batches are not produced by the replicated log.");
        }

        var count = RecordCount(span);
        var records = new List<(ReadOnlyMemory<byte>, SessionTag?)>(count);
        var position = HeaderSize;
        for (var i = 0; i < count; i++)
        {
            var record = ReadRecord(span, ref position);
            var value = record.ValueLength < 0 ? ReadOnlyMemory<byte>.Empty : batch.Slice(record.ValueStart, record.ValueLength);
            records.Add((value, record.Session));
        }

        return records;
    }

    /// <summary>Reads a session header's value: empty opens a session, 16 bytes tag a record.</summary>
    /// <exception cref="InvalidDataException">Any other length.</exception>
    public static SessionTag ReadSessionTag(ReadOnlySpan<byte> value) => value.Length switch
    {
        0 => SessionTag.Open,
        SessionTagBytes => new SessionTag(false, BinaryPrimitives.ReadInt64LittleEndian(value), BinaryPrimitives.ReadInt64LittleEndian(value[8..])),
        _ => throw new InvalidDataException($"A session header holds 0 or {SessionTagBytes} bytes; got {value.Length}."),
    };

    private static bool TryReadControl(ReadOnlySpan<byte> batch, out RaftEntryKind kind, out byte[] data)
    {
        kind = RaftEntryKind.Normal;
        data = [];
        var position = HeaderSize;
        var record = ReadRecord(batch, ref position);
        if (record.KindHeader < 0)
        {
            return false;
        }

        kind = (RaftEntryKind)record.KindHeader;
        data = record.ValueLength <= 0 ? [] : batch.Slice(record.ValueStart, record.ValueLength).ToArray();
        return true;
    }

    private readonly record struct RecordSpan(int ValueStart, int ValueLength, int KindHeader, SessionTag? Session);

    /// <summary>The one header a record may carry: the kind of a Raft entry, or a session tag.</summary>
    private readonly record struct RecordHeader(byte[] Key, byte[] Value);

    private static RecordHeader? HeaderOf(SessionTag? session)
    {
        if (session is not { } tag)
        {
            return null;
        }

        if (tag.IsOpen)
        {
            return new RecordHeader(s_sessionHeaderKey, []);
        }

        var value = new byte[SessionTagBytes];
        BinaryPrimitives.WriteInt64LittleEndian(value, tag.SessionId);
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(8), tag.Sequence);
        return new RecordHeader(s_sessionHeaderKey, value);
    }

    private static RecordSpan ReadRecord(ReadOnlySpan<byte> batch, ref int position)
    {
        var length = ReadVarint(batch, ref position);
        var end = position + length;
        if (length < 0 || end > batch.Length)
        {
            throw new InvalidDataException("A record runs past the end of its batch.");
        }

        position++; // attributes
        ReadVarint(batch, ref position); // timestamp delta
        ReadVarint(batch, ref position); // offset delta
        var keyLength = ReadVarint(batch, ref position);
        position += Math.Max(0, keyLength);
        var valueLength = ReadVarint(batch, ref position);
        var valueStart = position;
        position += Math.Max(0, valueLength);
        var headers = ReadVarint(batch, ref position);
        var kind = -1;
        SessionTag? session = null;
        for (var h = 0; h < headers; h++)
        {
            var headerKeyLength = ReadVarint(batch, ref position);
            var headerKey = batch.Slice(position, headerKeyLength);
            position += headerKeyLength;
            var headerValueLength = ReadVarint(batch, ref position);
            if (headerKey.SequenceEqual(s_kindHeaderKey) && headerValueLength == 1)
            {
                kind = batch[position];
            }
            else if (headerKey.SequenceEqual(s_sessionHeaderKey))
            {
                session = ReadSessionTag(batch.Slice(position, Math.Max(0, headerValueLength)));
            }

            position += Math.Max(0, headerValueLength);
        }

        if (position != end)
        {
            throw new InvalidDataException("A record's fields do not add up to its length.");
        }

        return new RecordSpan(valueStart, valueLength, kind, session);
    }

    private static int RecordSize(int offsetDelta, int valueLength, RecordHeader? header)
    {
        var body = RecordBodySize(offsetDelta, valueLength, header);
        return VarintSize(body) + body;
    }

    /// <summary>A record's bytes after its length varint.</summary>
    private static int RecordBodySize(int offsetDelta, int valueLength, RecordHeader? header)
    {
        var body = 1 + VarintSize(0) + VarintSize(offsetDelta) + VarintSize(-1) + VarintSize(valueLength) + valueLength;
        body += VarintSize(header is null ? 0 : 1);
        if (header is { } h)
        {
            body += VarintSize(h.Key.Length) + h.Key.Length + VarintSize(h.Value.Length) + h.Value.Length;
        }

        return body;
    }

    private static int WriteRecord(Span<byte> destination, int offsetDelta, ReadOnlySpan<byte> value, RecordHeader? header)
    {
        var size = RecordSize(offsetDelta, value.Length, header);
        var position = 0;
        WriteVarint(destination, ref position, RecordBodySize(offsetDelta, value.Length, header));
        destination[position++] = 0; // attributes
        WriteVarint(destination, ref position, 0); // timestamp delta: every record shares the batch's timestamp
        WriteVarint(destination, ref position, offsetDelta);
        WriteVarint(destination, ref position, -1); // null key
        WriteVarint(destination, ref position, value.Length);
        value.CopyTo(destination[position..]);
        position += value.Length;
        WriteVarint(destination, ref position, header is null ? 0 : 1);
        if (header is { } h)
        {
            WriteVarint(destination, ref position, h.Key.Length);
            h.Key.CopyTo(destination[position..]);
            position += h.Key.Length;
            WriteVarint(destination, ref position, h.Value.Length);
            h.Value.CopyTo(destination[position..]);
            position += h.Value.Length;
        }

        Invariant.Assert(position == size, "a record is written in exactly its computed size");
        return size;
    }

    private static void WriteHeader(byte[] batch, int recordCount, long term, long timestampMs)
    {
        Invariant.Assert(term is >= 0 and <= int.MaxValue, "a term fits Kafka's 32-bit partitionLeaderEpoch");
        var span = batch.AsSpan();
        BinaryPrimitives.WriteInt64BigEndian(span, 0);
        BinaryPrimitives.WriteInt32BigEndian(span[BatchLengthOffset..], batch.Length - 12);
        BinaryPrimitives.WriteInt32BigEndian(span[EpochOffset..], (int)term);
        span[MagicOffset] = 2;
        BinaryPrimitives.WriteInt16BigEndian(span[AttributesOffset..], 0);
        BinaryPrimitives.WriteInt32BigEndian(span[LastOffsetDeltaOffset..], recordCount - 1);
        BinaryPrimitives.WriteInt64BigEndian(span[BaseTimestampOffset..], timestampMs);
        BinaryPrimitives.WriteInt64BigEndian(span[MaxTimestampOffset..], timestampMs);
        BinaryPrimitives.WriteInt64BigEndian(span[ProducerIdOffset..], -1);
        BinaryPrimitives.WriteInt16BigEndian(span[ProducerEpochOffset..], -1);
        BinaryPrimitives.WriteInt32BigEndian(span[BaseSequenceOffset..], -1);
        BinaryPrimitives.WriteInt32BigEndian(span[RecordCountOffset..], recordCount);
        BinaryPrimitives.WriteUInt32BigEndian(span[CrcOffset..], Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, span[AttributesOffset..]));
    }

    private static int VarintSize(int value)
    {
        var zigzag = (uint)((value << 1) ^ (value >> 31));
        var size = 1;
        while (zigzag >= 0x80)
        {
            zigzag >>= 7;
            size++;
        }

        return size;
    }

    private static void WriteVarint(Span<byte> destination, ref int position, int value)
    {
        var zigzag = (uint)((value << 1) ^ (value >> 31));
        while (zigzag >= 0x80)
        {
            destination[position++] = (byte)(zigzag | 0x80);
            zigzag >>= 7;
        }

        destination[position++] = (byte)zigzag;
    }

    private static int ReadVarint(ReadOnlySpan<byte> source, ref int position)
    {
        uint zigzag = 0;
        for (var shift = 0; shift < 35; shift += 7)
        {
            if (position >= source.Length)
            {
                throw new InvalidDataException("A varint runs past the end of its batch.");
            }

            var b = source[position++];
            zigzag |= (uint)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return (int)(zigzag >> 1) ^ -(int)(zigzag & 1);
            }
        }

        throw new InvalidDataException("A varint is longer than 5 bytes.");
    }
}

/// <summary>
/// A record's place in a client session: <see cref="IsOpen"/> for the record that opens one (its offset becomes the
/// session id), else the session and the client's sequence number for this record.
/// </summary>
internal readonly record struct SessionTag(bool IsOpen, long SessionId, long Sequence)
{
    public static SessionTag Open => new(true, 0, 0);
}
