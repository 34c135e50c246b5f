using System.Buffers.Binary;

namespace AppendLog;

/// <summary>
/// A record batch as stored: Kafka RecordBatch v2 bytes, checksum verified when read. For forwarding batches
/// without re-encoding (replication, a Kafka-protocol front end): <see cref="SegmentedLog.AppendRawBatchAsync"/>
/// appends such bytes to another log.
/// </summary>
public sealed class LogBatch
{
    internal LogBatch(long baseOffset, int recordCount, int leaderEpoch, long maxTimestampMs, ReadOnlyMemory<byte> bytes)
    {
        BaseOffset = baseOffset;
        RecordCount = recordCount;
        LeaderEpoch = leaderEpoch;
        MaxTimestampMs = maxTimestampMs;
        Bytes = bytes;
    }

    /// <summary>The offset of the batch's first record.</summary>
    public long BaseOffset { get; }

    /// <summary>
    /// The last offset the batch covers (base offset + lastOffsetDelta). Without key compaction that is the offset of
    /// its last record; a compacted batch keeps its range while holding fewer records (possibly none), so the next
    /// batch always starts at <see cref="LastOffset"/> + 1.
    /// </summary>
    public long LastOffset => BaseOffset + BinaryPrimitives.ReadInt32BigEndian(Bytes.Span[Format.RecordBatch.LastOffsetDeltaOffset..]);

    /// <summary>The number of records in the batch (fewer than the offsets it covers once compacted).</summary>
    public int RecordCount { get; }

    /// <summary>The leader epoch (Raft term) stored with the batch.</summary>
    public int LeaderEpoch { get; }

    /// <summary>The largest record timestamp in the batch, in Unix milliseconds.</summary>
    public long MaxTimestampMs { get; }

    /// <summary>
    /// True when the batch has Kafka's LogAppendTime attribute: every record's timestamp is <see cref="MaxTimestampMs"/>
    /// (as <see cref="LogRecord.TimestampMs"/> reports it), not the producer's create time.
    /// </summary>
    public bool IsLogAppendTime => (Attributes & Format.RecordBatch.LogAppendTimeFlag) != 0;

    /// <summary>True when the batch belongs to a Kafka transaction (attribute bit 4).</summary>
    public bool IsTransactional => (Attributes & Format.RecordBatch.TransactionalFlag) != 0;

    /// <summary>
    /// True when the batch holds a control record, such as a transaction's commit or abort marker (attribute bit 5);
    /// its records are markers, not application data.
    /// </summary>
    public bool IsControl => (Attributes & Format.RecordBatch.ControlFlag) != 0;

    /// <summary>The idempotent or transactional producer's id, or -1 for a batch written without one.</summary>
    public long ProducerId => BinaryPrimitives.ReadInt64BigEndian(Bytes.Span[Format.RecordBatch.ProducerIdOffset..]);

    /// <summary>The producer's epoch, or -1 for a batch written without an idempotent producer.</summary>
    public short ProducerEpoch => BinaryPrimitives.ReadInt16BigEndian(Bytes.Span[Format.RecordBatch.ProducerEpochOffset..]);

    /// <summary>The producer's sequence number of the batch's first record, or -1 for a batch written without one.</summary>
    public int BaseSequence => BinaryPrimitives.ReadInt32BigEndian(Bytes.Span[Format.RecordBatch.BaseSequenceOffset..]);

    private short Attributes => BinaryPrimitives.ReadInt16BigEndian(Bytes.Span[Format.RecordBatch.AttributesOffset..]);

    /// <summary>The segment file the batch was read from (for error messages).</summary>
    internal string SourcePath { get; init; } = "";

    /// <summary>The batch's byte position in <see cref="SourcePath"/>.</summary>
    internal long SourcePosition { get; init; }

    /// <summary>The batch's bytes, exactly as on disk (a copy owned by the caller).</summary>
    public ReadOnlyMemory<byte> Bytes { get; }
}
