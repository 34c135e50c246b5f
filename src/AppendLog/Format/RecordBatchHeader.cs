using System.Buffers.Binary;

namespace AppendLog.Format;

/// <summary>
/// The 61-byte header of a Kafka RecordBatch v2, decoded from big-endian bytes. Reading a header checks
/// nothing: <see cref="RecordBatchDecoder.Check"/> validates length, magic and CRC.
/// </summary>
internal readonly struct RecordBatchHeader
{
    /// <summary>The offset of the first record; the log assigns it after encoding (outside the CRC).</summary>
    public long BaseOffset { get; init; }

    /// <summary>The number of bytes after the batchLength field (the whole batch is 12 bytes more).</summary>
    public int BatchLength { get; init; }

    /// <summary>Kafka's partition leader epoch; AppendLog stores the Raft term here (outside the CRC).</summary>
    public int PartitionLeaderEpoch { get; init; }

    /// <summary>The format version; 2 for every batch this library accepts.</summary>
    public byte Magic { get; init; }

    /// <summary>The stored CRC-32C over attributes to the end of the batch.</summary>
    public uint Crc { get; init; }

    /// <summary>Kafka's attribute bits; bits 0-2 hold the codec.</summary>
    public short Attributes { get; init; }

    /// <summary>The offset delta of the last record (record count - 1 for a batch fresh from the encoder).</summary>
    public int LastOffsetDelta { get; init; }

    /// <summary>The timestamp of the first record, in Unix milliseconds.</summary>
    public long BaseTimestamp { get; init; }

    /// <summary>The largest record timestamp, in Unix milliseconds.</summary>
    public long MaxTimestamp { get; init; }

    /// <summary>The idempotent producer's id, or -1.</summary>
    public long ProducerId { get; init; }

    /// <summary>The idempotent producer's epoch, or -1.</summary>
    public short ProducerEpoch { get; init; }

    /// <summary>The idempotent producer's first sequence number, or -1.</summary>
    public int BaseSequence { get; init; }

    /// <summary>The number of records in the batch.</summary>
    public int RecordCount { get; init; }

    /// <summary>The size of the whole batch in bytes: 12 + <see cref="BatchLength"/>.</summary>
    /// <remarks>A <c>long</c> because an unchecked batchLength near <see cref="int.MaxValue"/> would overflow an int.</remarks>
    public long TotalSize => (long)RecordBatch.LogOverhead + BatchLength;

    /// <summary>The offset of the last record: <see cref="BaseOffset"/> + <see cref="LastOffsetDelta"/>.</summary>
    public long LastOffset => BaseOffset + LastOffsetDelta;

    /// <summary>The compression codec in attribute bits 0-2 (values other than 0 and 3 are not supported).</summary>
    public CompressionCodec Codec => (CompressionCodec)(Attributes & RecordBatch.CodecMask);

    /// <summary>Decodes the header at the start of <paramref name="source"/>.</summary>
    /// <param name="source">The bytes of a batch, starting at its baseOffset.</param>
    /// <param name="header">The decoded header, or default when false is returned.</param>
    /// <returns>False when <paramref name="source"/> holds fewer than <see cref="RecordBatch.HeaderSize"/> bytes.</returns>
    public static bool TryRead(ReadOnlySpan<byte> source, out RecordBatchHeader header)
    {
        if (source.Length < RecordBatch.HeaderSize)
        {
            header = default;
            return false;
        }

        header = new RecordBatchHeader
        {
            BaseOffset = BinaryPrimitives.ReadInt64BigEndian(source[RecordBatch.BaseOffsetOffset..]),
            BatchLength = BinaryPrimitives.ReadInt32BigEndian(source[RecordBatch.BatchLengthOffset..]),
            PartitionLeaderEpoch = BinaryPrimitives.ReadInt32BigEndian(source[RecordBatch.PartitionLeaderEpochOffset..]),
            Magic = source[RecordBatch.MagicOffset],
            Crc = BinaryPrimitives.ReadUInt32BigEndian(source[RecordBatch.CrcOffset..]),
            Attributes = BinaryPrimitives.ReadInt16BigEndian(source[RecordBatch.AttributesOffset..]),
            LastOffsetDelta = BinaryPrimitives.ReadInt32BigEndian(source[RecordBatch.LastOffsetDeltaOffset..]),
            BaseTimestamp = BinaryPrimitives.ReadInt64BigEndian(source[RecordBatch.BaseTimestampOffset..]),
            MaxTimestamp = BinaryPrimitives.ReadInt64BigEndian(source[RecordBatch.MaxTimestampOffset..]),
            ProducerId = BinaryPrimitives.ReadInt64BigEndian(source[RecordBatch.ProducerIdOffset..]),
            ProducerEpoch = BinaryPrimitives.ReadInt16BigEndian(source[RecordBatch.ProducerEpochOffset..]),
            BaseSequence = BinaryPrimitives.ReadInt32BigEndian(source[RecordBatch.BaseSequenceOffset..]),
            RecordCount = BinaryPrimitives.ReadInt32BigEndian(source[RecordBatch.RecordCountOffset..]),
        };
        return true;
    }
}
