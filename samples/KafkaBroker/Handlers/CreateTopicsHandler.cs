using KafkaBroker.Protocol;
using KafkaBroker.Server;
using KafkaBroker.Storage;

namespace KafkaBroker.Handlers;

/// <summary>
/// CreateTopics v0–v4. A single node holds one replica of everything: replication factor 1 (or -1, the default) is
/// accepted, any other gets INVALID_REPLICATION_FACTOR; manual replica assignments get INVALID_REQUEST. Topic
/// configs are accepted and ignored (retention and segment size are the broker's AppendLog defaults).
/// </summary>
internal static class CreateTopicsHandler
{
    private sealed record TopicRequest(
        string Name, int Partitions, short ReplicationFactor, int AssignmentCount, int ConfigCount);

    public static async Task<KafkaWriter?> HandleAsync(RequestContext request)
    {
        var body = request.Body;
        var topics = body.ReadArray(r => new TopicRequest(
            r.ReadString(),
            r.ReadInt32(),
            r.ReadInt16(),
            r.ReadArray(a => (a.ReadInt32(), a.ReadArray(b => b.ReadInt32()))).Count,
            r.ReadArray(c => (c.ReadString(), c.ReadNullableString())).Count));
        _ = body.ReadInt32(); // timeout_ms
        bool validateOnly = request.Version >= 1 && body.ReadBool();

        var results = new List<(string Name, ErrorCode Error, string? Message)>();
        foreach (var topic in topics)
        {
            var (error, message) = await CreateAsync(request.Broker, topic, validateOnly).ConfigureAwait(false);
            results.Add((topic.Name, error, message));
        }

        var w = new KafkaWriter(request.Header.CorrelationId);
        if (request.Version >= 2)
        {
            w.WriteInt32(0); // throttle_time_ms
        }

        w.WriteArrayCount(results.Count);
        foreach (var (name, error, message) in results)
        {
            w.WriteString(name);
            w.WriteError(error);
            if (request.Version >= 1)
            {
                w.WriteNullableString(message);
            }
        }

        return w;
    }

    private static async Task<(ErrorCode, string?)> CreateAsync(
        BrokerContext broker, TopicRequest topic, bool validateOnly)
    {
        if (broker.Topics.IsReplicated)
        {
            return (ErrorCode.PolicyViolation, "The topics of a replicated cluster are fixed when it starts.");
        }

        if (topic.AssignmentCount > 0)
        {
            return (ErrorCode.InvalidRequest, "Manual replica assignment is not supported by a single node.");
        }

        if (topic.ReplicationFactor is not (1 or -1))
        {
            return (ErrorCode.InvalidReplicationFactor, "A single node holds exactly one replica.");
        }

        int partitions = topic.Partitions == -1 ? broker.Options.DefaultPartitions : topic.Partitions;
        if (!TopicStore.IsValidTopicName(topic.Name))
        {
            return (ErrorCode.InvalidTopic,
                $"Use 1 to {TopicStore.TopicNameLengthMax} characters from [A-Za-z0-9._-], not starting with a dot.");
        }

        if (partitions is < 1 or > TopicStore.PartitionsMax)
        {
            return (ErrorCode.InvalidPartitions, $"Partitions must be in [1, {TopicStore.PartitionsMax}].");
        }

        if (validateOnly)
        {
            bool exists = broker.Topics.TryGetTopic(topic.Name, out _);
            return exists ? (ErrorCode.TopicAlreadyExists, null) : (ErrorCode.None, null);
        }

        var error = await broker.Topics.CreateAsync(topic.Name, partitions, broker.Stopping).ConfigureAwait(false);
        return (error, null);
    }
}
