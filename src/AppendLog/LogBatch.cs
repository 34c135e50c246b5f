namespace AppendLog;

/// <summary>
/// A record batch as stored: Kafka RecordBatch v2 bytes, checksum verified when read. For forwarding batches
/// without re-encoding (replication, a Kafka-protocol front end): <see cref="SegmentedLog.AppendRawBatchAsync"/>
/// appends such bytes to another log.
/// </summary>
public sealed class LogBatch
{
    internal LogBatch(long baseOffset, int recordCount, int leaderEpoch, long maxTimestampMs, byte[] bytes)
    {
        BaseOffset = baseOffset;
        RecordCount = recordCount;
        LeaderEpoch = leaderEpoch;
        MaxTimestampMs = maxTimestampMs;
        Bytes = bytes;
    }

    /// <summary>The offset of the batch's first record.</summary>
    public long BaseOffset { get; }

    /// <summary>The offset of the batch's last record.</summary>
    public long LastOffset => BaseOffset + RecordCount - 1;

    /// <summary>The number of records in the batch.</summary>
    public int RecordCount { get; }

    /// <summary>The leader epoch (Raft term) stored with the batch.</summary>
    public int LeaderEpoch { get; }

    /// <summary>The largest record timestamp in the batch, in Unix milliseconds.</summary>
    public long MaxTimestampMs { get; }

    /// <summary>The segment file the batch was read from (for error messages).</summary>
    internal string SourcePath { get; init; } = "";

    /// <summary>The batch's byte position in <see cref="SourcePath"/>.</summary>
    internal long SourcePosition { get; init; }

    /// <summary>The batch's bytes, exactly as on disk (a copy owned by the caller).</summary>
    public ReadOnlyMemory<byte> Bytes { get; }
}
