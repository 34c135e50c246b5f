namespace AppendLog.Format;

/// <summary>
/// The offset range rule for a batch. A batch fresh from an encoder holds lastOffsetDelta + 1 records; key
/// compaction keeps each batch's base offset and lastOffsetDelta while removing records (as Kafka does), so a
/// compacted batch holds fewer records than the offsets it covers, and an empty one (recordCount 0) carries a
/// range whose records were all removed. Every check that used to demand recordCount = lastOffsetDelta + 1
/// demands this instead; offsets advance by <see cref="OffsetCount"/>, never by recordCount.
/// </summary>
internal static class OffsetRange
{
    /// <summary>True when 0 ≤ recordCount ≤ lastOffsetDelta + 1 (a record per offset at most).</summary>
    public static bool IsValid(in RecordBatchHeader header) =>
        header.LastOffsetDelta >= 0 && header.RecordCount >= 0 && header.RecordCount <= (long)header.LastOffsetDelta + 1;

    /// <summary>The number of offsets the batch covers: lastOffsetDelta + 1.</summary>
    public static int OffsetCount(in RecordBatchHeader header) => header.LastOffsetDelta + 1;
}
