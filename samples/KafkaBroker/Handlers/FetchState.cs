using KafkaBroker.Protocol;
using KafkaBroker.Server;
using KafkaBroker.Storage;

namespace KafkaBroker.Handlers;

/// <summary>
/// One connection's fetch in progress, kept for the next: the parsed request (topics and partitions, each partition's
/// result so far) and the response writer. Only the fetch that holds the connection's <see cref="FetchReaders"/> turn
/// uses it (from its parse to its answer sent), so every object here is reused by the next fetch instead of being
/// allocated again; a request naming more topics or partitions than any before adds the slots it needs.
/// </summary>
internal sealed class FetchState
{
    public List<FetchTopic> Topics { get; } = [];

    /// <summary>The topics of the current request: the first entries of <see cref="Topics"/>.</summary>
    public int TopicCount { get; private set; }

    /// <summary>The signals of the request's partitions taken before a pass (one per partition named).</summary>
    public List<Task> Appended { get; } = [];

    /// <summary>The response, restarted for each fetch (the previous one has been sent by then).</summary>
    public KafkaWriter Writer { get; } = new(0);

    public TimeSpan MaxWait { get; set; }

    public int MinBytes { get; set; }

    /// <summary>max_bytes, capped by <see cref="BrokerOptions.MaximumFetchResponseSize"/>.</summary>
    public int MaxBytes { get; set; }

    /// <summary>The bytes of batches in the response so far.</summary>
    public int Bytes { get; set; }

    /// <summary>Forgets the previous request (its slots stay for reuse).</summary>
    public void Reset()
    {
        for (int t = 0; t < TopicCount; t++)
        {
            Topics[t].Reset();
        }

        TopicCount = 0;
        Bytes = 0;
        Appended.Clear();
    }

    /// <summary>The next topic slot of the request being parsed.</summary>
    public FetchTopic NextTopic()
    {
        if (TopicCount == Topics.Count)
        {
            Topics.Add(new FetchTopic());
        }

        return Topics[TopicCount++];
    }
}

/// <summary>One topic of a fetch: its name (kept, so the same name in the next fetch is not decoded again) and partitions.</summary>
internal sealed class FetchTopic
{
    public string Name { get; set; } = "";

    public List<FetchPartition> Partitions { get; } = [];

    public int PartitionCount { get; private set; }

    public void Reset()
    {
        for (int p = 0; p < PartitionCount; p++)
        {
            Partitions[p].Reset(null, 0, 0, 0);
        }

        PartitionCount = 0;
    }

    public FetchPartition NextPartition()
    {
        if (PartitionCount == Partitions.Count)
        {
            Partitions.Add(new FetchPartition());
        }

        return Partitions[PartitionCount++];
    }
}

/// <summary>One requested partition: what was read for it so far (lent by its reader until the answer is sent).</summary>
internal sealed class FetchPartition
{
    public PartitionLog? Log { get; private set; }

    public int Partition { get; private set; }

    public long FetchOffset { get; private set; }

    /// <summary>partition_max_bytes.</summary>
    public int MaxBytes { get; private set; }

    public ErrorCode Error { get; set; }

    public long HighWatermark { get; set; } = -1;

    public long LogStartOffset { get; set; } = -1;

    public AppendLog.LogBatchReader? Reader { get; set; }

    public List<ReadOnlyMemory<byte>> Batches { get; } = [];

    public int Bytes { get; set; }

    public void Reset(PartitionLog? log, int partition, long fetchOffset, int maxBytes)
    {
        Log = log;
        Partition = partition;
        FetchOffset = fetchOffset;
        MaxBytes = maxBytes;
        Error = ErrorCode.None;
        HighWatermark = -1;
        LogStartOffset = -1;
        Reader = null;
        Batches.Clear();
        Bytes = 0;
    }
}
