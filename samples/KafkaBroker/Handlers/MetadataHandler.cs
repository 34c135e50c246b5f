using KafkaBroker.Protocol;
using KafkaBroker.Server;
using KafkaBroker.Storage;

namespace KafkaBroker.Handlers;

/// <summary>
/// Metadata v1–v8: the brokers (this one, or every broker of a replicated cluster) and the requested topics (all of
/// them when the list is null) with each partition's leader and replicas. A missing topic is created when
/// <see cref="BrokerOptions.AutoCreateTopics"/> is on and the request allows it (v4+: allow_auto_topic_creation).
/// </summary>
internal static class MetadataHandler
{
    /// <summary>Kafka's value for "authorized operations not requested" (v8+).</summary>
    private const int AuthorizedOperationsOmitted = int.MinValue;

    public static async Task<KafkaWriter?> HandleAsync(RequestContext request)
    {
        var body = request.Body;
        var names = body.ReadNullableArray(r => r.ReadString());
        bool allowAutoCreate = request.Version < 4 || body.ReadBool();
        if (request.Version >= 8)
        {
            _ = body.ReadBool(); // include_cluster_authorized_operations
            _ = body.ReadBool(); // include_topic_authorized_operations
        }

        var broker = request.Broker;
        var topics = new List<(string Name, ErrorCode Error, PartitionLog[] Partitions)>();
        if (names is null)
        {
            topics.AddRange(broker.Topics.Topics.Select(t => (t.Key, ErrorCode.None, t.Value)));
        }
        else
        {
            foreach (string name in names.Distinct(StringComparer.Ordinal))
            {
                topics.Add(await DescribeAsync(broker, name, allowAutoCreate).ConfigureAwait(false));
            }
        }

        return Write(request, topics);
    }

    private static async Task<(string, ErrorCode, PartitionLog[])> DescribeAsync(
        BrokerContext broker, string name, bool allowAutoCreate)
    {
        if (broker.Topics.TryGetTopic(name, out var partitions))
        {
            return (name, ErrorCode.None, partitions);
        }

        if (!TopicStore.IsValidTopicName(name))
        {
            return (name, ErrorCode.InvalidTopic, []);
        }

        if (!allowAutoCreate || !broker.Options.AutoCreateTopics)
        {
            return (name, ErrorCode.UnknownTopicOrPartition, []);
        }

        var error = await broker.Topics.CreateAsync(name, broker.Options.DefaultPartitions, broker.Stopping)
            .ConfigureAwait(false);
        bool created = error is ErrorCode.None or ErrorCode.TopicAlreadyExists;
        if (!created || !broker.Topics.TryGetTopic(name, out partitions))
        {
            return (name, error, []);
        }

        return (name, ErrorCode.None, partitions);
    }

    private static KafkaWriter Write(
        RequestContext request, List<(string Name, ErrorCode Error, PartitionLog[] Partitions)> topics)
    {
        short version = request.Version;
        var options = request.Broker.Options;
        var w = new KafkaWriter(request.Header.CorrelationId);
        if (version >= 3)
        {
            w.WriteInt32(0); // throttle_time_ms
        }

        var brokers = options.Cluster?.Select(n => (n.NodeId, n.Host, n.KafkaPort)).ToArray()
            ?? [(options.NodeId, request.AdvertisedHost, request.Broker.Port)];
        w.WriteArrayCount(brokers.Length);
        foreach (var (nodeId, host, port) in brokers)
        {
            w.WriteInt32(nodeId);
            w.WriteString(host);
            w.WriteInt32(port);
            w.WriteNullableString(null); // rack
        }

        if (version >= 2)
        {
            w.WriteNullableString(options.ClusterId);
        }

        w.WriteInt32(options.NodeId); // controller_id
        w.WriteArrayCount(topics.Count);
        foreach (var (name, error, partitions) in topics)
        {
            w.WriteError(error);
            w.WriteString(name);
            w.WriteBool(false); // is_internal
            w.WriteArrayCount(partitions.Length);
            for (int i = 0; i < partitions.Length; i++)
            {
                WritePartition(w, version, partitions[i], options);
            }

            if (version >= 8)
            {
                w.WriteInt32(AuthorizedOperationsOmitted);
            }
        }

        if (version >= 8)
        {
            w.WriteInt32(AuthorizedOperationsOmitted);
        }

        return w;
    }

    /// <summary>
    /// A single broker leads every partition. In a replicated cluster the leader is the partition's current Raft
    /// leader (LEADER_NOT_AVAILABLE while an election runs), its epoch the Raft term, and every broker a replica.
    /// </summary>
    private static void WritePartition(KafkaWriter w, short version, PartitionLog partition, BrokerOptions options)
    {
        int leader = partition.Replica?.LeaderNodeId ?? options.NodeId;
        int[] replicas = options.Cluster?.Select(n => n.NodeId).ToArray() ?? [options.NodeId];
        w.WriteError(leader < 0 ? ErrorCode.LeaderNotAvailable : ErrorCode.None);
        w.WriteInt32(partition.Partition);
        w.WriteInt32(leader); // leader_id
        if (version >= 7)
        {
            w.WriteInt32(partition.Replica?.LeaderEpoch ?? 0); // leader_epoch
        }

        w.WriteArrayCount(replicas.Length);
        foreach (int replica in replicas)
        {
            w.WriteInt32(replica); // replica_nodes
        }

        w.WriteArrayCount(replicas.Length);
        foreach (int replica in replicas)
        {
            w.WriteInt32(replica); // isr_nodes
        }

        if (version >= 5)
        {
            w.WriteArrayCount(0); // offline_replicas
        }
    }
}
