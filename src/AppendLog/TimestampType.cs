namespace AppendLog;

/// <summary>Which time a batch's timestamps mean (Kafka's <c>message.timestamp.type</c>).</summary>
public enum TimestampType
{
    /// <summary>The records keep the timestamps they were appended with (the producer's clock).</summary>
    CreateTime = 0,

    /// <summary>
    /// Each batch is stamped with the log's clock when appended (raw batches too): the LogAppendTime attribute is set
    /// and the batch's max timestamp becomes the append time, which every record of it then reads as. The time
    /// index and time lookups use it.
    /// </summary>
    LogAppendTime = 1,
}
