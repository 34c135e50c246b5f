using System.Collections.Concurrent;
using System.Globalization;
using AppendLog;
using KafkaBroker.Protocol;

namespace KafkaBroker.Storage;

/// <summary>
/// The topics: every partition is a log named <c>{topic}-{partition}</c> in one <see cref="LogManager"/>, so the
/// topic list is rebuilt at start from the log names alone (a topic's partition count is its run of partitions
/// numbered from 0). Creation is serialized; lookups are lock-free.
/// </summary>
internal sealed class TopicStore : IAsyncDisposable
{
    /// <summary>
    /// Longest topic name: Kafka allows 249 characters, AppendLog log names 200, and the name carries a
    /// "-{partition}" suffix of up to 11 characters, so 180 leaves room.
    /// </summary>
    public const int TopicNameLengthMax = 180;

    /// <summary>Most partitions one topic may have (a bound on the logs one request can create).</summary>
    public const int PartitionsMax = 1024;

    private readonly LogManager _manager;
    private readonly ConcurrentDictionary<string, PartitionLog[]> _topics = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _createGate = new(1, 1);

    /// <summary>In a replicated cluster, every partition's Raft member (stopped before the local logs close).</summary>
    private readonly List<PartitionReplica> _replicas = [];

    private TopicStore(LogManager manager, bool replicated)
    {
        _manager = manager;
        IsReplicated = replicated;
    }

    /// <summary>True when topics are the fixed, Raft-replicated set of a cluster.</summary>
    public bool IsReplicated { get; }

    public IEnumerable<KeyValuePair<string, PartitionLog[]>> Topics => _topics;

    /// <summary>Opens the manager over <paramref name="directory"/> and every topic found there.</summary>
    public static async Task<TopicStore> OpenAsync(
        string directory, BrokerOptions options, CancellationToken cancellationToken)
    {
        var manager = LogManager.Create(new LogManagerOptions
        {
            RootDirectory = directory,
            BufferPool = options.BufferPool,
            LogDefaults = options.LogDefaults,
        });
        var store = new TopicStore(manager, replicated: false);
        var partitionsByTopic = manager.ListLogNames()
            .Select(ParseLogName)
            .Where(p => p.Topic is not null)
            .GroupBy(p => p.Topic!, StringComparer.Ordinal);
        foreach (var group in partitionsByTopic)
        {
            var numbers = group.Select(p => p.Partition).ToHashSet();
            int count = 0;
            while (numbers.Contains(count))
            {
                count++;
            }

            if (count > 0)
            {
                store._topics[group.Key] = await OpenPartitionsAsync(manager, group.Key, count, cancellationToken)
                    .ConfigureAwait(false);
            }
        }

        return store;
    }

    /// <summary>
    /// Opens a replicated cluster's topics: each partition gets an empty local log under <paramref name="directory"/>
    /// (what an earlier run left there is deleted: the Raft group replays every committed batch into it) and a Raft
    /// member under <paramref name="raftDirectory"/>, on its broker's Raft port base + the partition's index over the
    /// topics in name order.
    /// </summary>
    public static async Task<TopicStore> OpenReplicatedAsync(
        string directory, string raftDirectory, BrokerOptions options, CancellationToken cancellationToken)
    {
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        var manager = LogManager.Create(new LogManagerOptions
        {
            RootDirectory = directory,
            BufferPool = options.BufferPool,
            LogDefaults = options.LogDefaults,
        });
        var store = new TopicStore(manager, replicated: true);
        try
        {
            int raftPortOffset = 0;
            foreach (var (topic, count) in options.ReplicatedTopics!.OrderBy(t => t.Key, StringComparer.Ordinal))
            {
                var partitions = await OpenPartitionsAsync(manager, topic, count, cancellationToken).ConfigureAwait(false);
                foreach (var partition in partitions)
                {
                    string name = PartitionLog.LogName(topic, partition.Partition);
                    partition.Replica = await PartitionReplica.StartAsync(
                            partition, options, Path.Combine(raftDirectory, name), raftPortOffset++, cancellationToken)
                        .ConfigureAwait(false);
                    store._replicas.Add(partition.Replica);
                }

                store._topics[topic] = partitions;
            }
        }
        catch
        {
            await store.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return store;
    }

    public bool TryGetTopic(string topic, out PartitionLog[] partitions) => _topics.TryGetValue(topic, out partitions!);

    /// <summary>The partition, or null when the topic or partition does not exist.</summary>
    public PartitionLog? Find(string topic, int partition) =>
        _topics.TryGetValue(topic, out var partitions) && partition >= 0 && partition < partitions.Length
            ? partitions[partition]
            : null;

    /// <summary>
    /// True for a name Kafka accepts that also fits a log name: [A-Za-z0-9._-], not starting with a dot.
    /// </summary>
    public static bool IsValidTopicName(string name) =>
        name is { Length: > 0 and <= TopicNameLengthMax } && name[0] != '.' &&
        name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>Creates a topic with <paramref name="partitionCount"/> empty partitions.</summary>
    /// <returns><see cref="ErrorCode.None"/>, or why the topic was not created.</returns>
    public async Task<ErrorCode> CreateAsync(string topic, int partitionCount, CancellationToken cancellationToken)
    {
        if (!IsValidTopicName(topic))
        {
            return ErrorCode.InvalidTopic;
        }

        if (IsReplicated)
        {
            return ErrorCode.PolicyViolation;
        }

        if (partitionCount is < 1 or > PartitionsMax)
        {
            return ErrorCode.InvalidPartitions;
        }

        await _createGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_topics.ContainsKey(topic))
            {
                return ErrorCode.TopicAlreadyExists;
            }

            _topics[topic] = await OpenPartitionsAsync(_manager, topic, partitionCount, cancellationToken)
                .ConfigureAwait(false);
            return ErrorCode.None;
        }
        finally
        {
            _createGate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            await replica.DisposeAsync().ConfigureAwait(false);
        }

        await _manager.DisposeAsync().ConfigureAwait(false);
        _createGate.Dispose();
    }

    private static async Task<PartitionLog[]> OpenPartitionsAsync(
        LogManager manager, string topic, int count, CancellationToken cancellationToken)
    {
        var partitions = new PartitionLog[count];
        for (int i = 0; i < count; i++)
        {
            partitions[i] = await PartitionLog.OpenAsync(manager, topic, i, cancellationToken).ConfigureAwait(false);
        }

        return partitions;
    }

    private static (string? Topic, int Partition) ParseLogName(string name)
    {
        int dash = name.LastIndexOf('-');
        var digits = name.AsSpan(dash + 1);
        if (dash <= 0 || !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int partition))
        {
            return (null, -1);
        }

        return (name[..dash], partition);
    }
}
