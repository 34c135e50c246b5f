namespace AppendLog;

/// <summary>
/// A record read back from the log. Its byte arrays are copies owned by the caller: they stay valid after the
/// enumeration moves on.
/// </summary>
public sealed class LogRecord
{
    internal LogRecord(long offset, long timestampMs, int leaderEpoch, byte[]? key, byte[]? value, IReadOnlyList<RecordHeader> headers)
    {
        Offset = offset;
        TimestampMs = timestampMs;
        LeaderEpoch = leaderEpoch;
        Key = key;
        Value = value;
        Headers = headers;
    }

    /// <summary>The record's offset in the log.</summary>
    public long Offset { get; }

    /// <summary>The record's timestamp, in milliseconds since the Unix epoch (UTC), assigned at append.</summary>
    public long TimestampMs { get; }

    /// <summary>The record's timestamp.</summary>
    public DateTimeOffset Timestamp => DateTimeOffset.FromUnixTimeMilliseconds(TimestampMs);

    /// <summary>The leader epoch (Raft term) stored with the record's batch; 0 when unused.</summary>
    public int LeaderEpoch { get; }

    /// <summary>The key, or null when the record has none.</summary>
    public byte[]? Key { get; }

    /// <summary>The value, or null for a tombstone.</summary>
    public byte[]? Value { get; }

    /// <summary>The headers (empty when none).</summary>
    public IReadOnlyList<RecordHeader> Headers { get; }
}
