namespace KafkaBroker;

/// <summary>
/// How the broker listens, where it stores, and its limits. Defaults follow Kafka's where one exists.
/// </summary>
public sealed record BrokerOptions
{
    /// <summary>
    /// The directory holding the topics (<c>topics/</c>) and the committed offsets (<c>group-offsets/</c>).
    /// </summary>
    public required string DataDirectory { get; init; }

    /// <summary>The address to listen on. Default 127.0.0.1.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The port to listen on; 0 picks a free one (see <see cref="KafkaServer.Port"/>). Default 9092.</summary>
    public int Port { get; init; } = 9092;

    /// <summary>
    /// The host name Metadata and FindCoordinator give clients; null gives the address each client connected to.
    /// </summary>
    public string? AdvertisedHost { get; init; }

    /// <summary>
    /// Create a topic when a client asks for its metadata (Kafka's <c>auto.create.topics.enable</c>). Default true.
    /// </summary>
    public bool AutoCreateTopics { get; init; } = true;

    /// <summary>
    /// Partitions of an auto-created topic, or of CreateTopics with -1 (Kafka's <c>num.partitions</c>). Default 1.
    /// </summary>
    public int DefaultPartitions { get; init; } = 1;

    /// <summary>
    /// Largest request frame, in bytes (Kafka's <c>socket.request.max.bytes</c>, 100 MiB); a larger size prefix closes
    /// the connection before any of the request is read.
    /// </summary>
    public int MaximumRequestSize { get; init; } = 100 * 1024 * 1024;

    /// <summary>
    /// Most requests one connection may have read and not yet answered (Produce requests overlap; others wait for
    /// their turn). When reached, the connection reads nothing more until an answer is sent. Default 16.
    /// </summary>
    public int MaximumInflightRequestsPerConnection { get; init; } = 16;

    /// <summary>
    /// Most request bytes one connection may hold at once, in bytes: the frames read and not yet answered. When
    /// reached, the connection reads nothing more until an answer is sent. At least <see cref="MaximumRequestSize"/>
    /// (one request always fits). Default 100 MiB.
    /// </summary>
    public long MaximumInflightBytesPerConnection { get; init; } = 100 * 1024 * 1024;

    /// <summary>
    /// Largest total of record batches in one fetch response, in bytes, whatever the client asks (Kafka's broker
    /// setting <c>fetch.max.bytes</c>, 55 MiB); as in Kafka, the first batch is sent even when larger, so a consumer
    /// always progresses. Default 55 MiB.
    /// </summary>
    public int MaximumFetchResponseSize { get; init; } = 55 * 1024 * 1024;

    /// <summary>
    /// The write-buffer pool of the partitions' logs; its budget bounds the memory held by every append of the broker
    /// not yet written (an append past it waits, and the produce with it). Null: AppendLog's shared default pool.
    /// </summary>
    public AppendLog.LogBufferPool? BufferPool { get; init; }

    /// <summary>
    /// The options of the partitions' logs (flush policy, segment size, …); null: AppendLog's defaults. Its
    /// <c>MaximumBatchSize</c> must be at least <see cref="MaximumBatchSize"/>.
    /// </summary>
    public AppendLog.LogOptions? LogDefaults { get; init; }

    /// <summary>
    /// Largest record batch accepted, in bytes (Kafka's <c>message.max.bytes</c> is 1 MiB + 12); at most AppendLog's
    /// <c>LogOptions.DefaultMaximumBatchSize</c>.
    /// </summary>
    public int MaximumBatchSize { get; init; } = 1024 * 1024 + 12;

    /// <summary>Longest a fetch waits for data, whatever the client asks (a bound on parked requests).</summary>
    public TimeSpan MaximumFetchWait { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a new group waits for more members before its first generation (Kafka's
    /// <c>group.initial.rebalance.delay.ms</c>, 3 s there; shorter here so a lone consumer starts at once).
    /// </summary>
    public TimeSpan InitialRebalanceDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Where connection and request problems are written; null writes nowhere.</summary>
    public TextWriter? Log { get; init; }

    /// <summary>The clock for group session timeouts and fetch waits.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>This broker's node id in Metadata (in a replicated cluster, its entry in <see cref="Cluster"/>).</summary>
    public int NodeId { get; init; }

    /// <summary>
    /// Null for a single broker. Otherwise the brokers of a replicated cluster (this one included, the same list on
    /// every broker): each partition of <see cref="ReplicatedTopics"/> is then a Raft group over AppendLog.Raft with a
    /// member on every broker, produce with <c>acks=all</c> completes once the batch is durable on a quorum, and
    /// Metadata names each partition's current Raft leader.
    /// </summary>
    public IReadOnlyList<ClusterNode>? Cluster { get; init; }

    /// <summary>
    /// With <see cref="Cluster"/>: the topics and their partition counts, the same on every broker (topics are fixed at
    /// start; CreateTopics and auto-creation are refused).
    /// </summary>
    public IReadOnlyDictionary<string, int>? ReplicatedTopics { get; init; }

    /// <summary>
    /// With <see cref="Cluster"/>: the shortest Raft election timeout (the longest is twice it); a leader's death is
    /// noticed after about this long. Default 300 ms.
    /// </summary>
    public TimeSpan ElectionTimeout { get; init; } = TimeSpan.FromMilliseconds(300);

    internal bool IsReplicated => Cluster is not null;

    /// <summary>The cluster id in Metadata.</summary>
    public string ClusterId { get; init; } = "appendlog-kafka-sample";

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(DataDirectory);
        ArgumentOutOfRangeException.ThrowIfNegative(Port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Port, 65535);
        ArgumentOutOfRangeException.ThrowIfLessThan(DefaultPartitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumRequestSize, 1024);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumBatchSize, 61);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumInflightRequestsPerConnection, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumInflightBytesPerConnection, MaximumRequestSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumFetchResponseSize, 1);

        if (Cluster is not null)
        {
            ValidateCluster();
        }

        // The partitions' logs use AppendLog's default batch limit; a larger broker limit would let through batches
        // that AppendRawBatchAsync then refuses.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(
            MaximumBatchSize, LogDefaults?.MaximumBatchSize ?? AppendLog.LogOptions.DefaultMaximumBatchSize);
    }

    /// <summary>A Kafka batch and its 16-byte tag must fit one Raft entry, with room for the entry's own framing.</summary>
    internal const int ReplicatedBatchSizeMax = (1024 * 1024) - 256;

    private void ValidateCluster()
    {
        var cluster = Cluster!;
        if (cluster.Count == 0 || cluster.Select(n => n.NodeId).Distinct().Count() != cluster.Count)
        {
            throw new ArgumentException("Cluster needs distinct node ids.", nameof(Cluster));
        }

        if (cluster.Any(n => n.NodeId is < 1 or > 7) || cluster.All(n => n.NodeId != NodeId))
        {
            throw new ArgumentException("Node ids are 1 to 7, and NodeId must be one of the Cluster's.", nameof(Cluster));
        }

        if (ReplicatedTopics is null || ReplicatedTopics.Count == 0 ||
            ReplicatedTopics.Any(t => !Storage.TopicStore.IsValidTopicName(t.Key) || t.Value is < 1 or > 256))
        {
            throw new ArgumentException(
                "A replicated cluster needs ReplicatedTopics: valid names, 1 to 256 partitions each.",
                nameof(ReplicatedTopics));
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaximumBatchSize, ReplicatedBatchSizeMax);
        ArgumentOutOfRangeException.ThrowIfLessThan(ElectionTimeout, TimeSpan.FromMilliseconds(50));
    }
}
