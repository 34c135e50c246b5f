using AppendLog;
using KafkaBroker.Protocol;
using KafkaBroker.Server;
using KafkaBroker.Storage;

namespace KafkaBroker.Handlers;

/// <summary>
/// OffsetCommit v2–v7 and OffsetFetch v1–v5, over <see cref="OffsetStore"/>. A commit is answered after its
/// offsets are durable; a commit for a partition that does not exist gets UNKNOWN_TOPIC_OR_PARTITION and the
/// others are still stored. retention_time_ms (v2–v4) is ignored: committed offsets are kept until overwritten.
/// </summary>
internal static class OffsetHandlers
{
    private sealed record PartitionCommit(int Partition, long Offset, int LeaderEpoch, string? Metadata);

    private sealed record CommitRequest(
        string GroupId,
        int GenerationId,
        string MemberId,
        List<(string Name, List<PartitionCommit> Partitions)> Topics);

    public static async Task<KafkaWriter?> CommitAsync(RequestContext request)
    {
        var (groupId, generationId, memberId, topics) = ParseCommit(request);
        var broker = request.Broker;
        var groupError = groupId.Length == 0 ? ErrorCode.InvalidGroupId
            : broker.Groups.GetOrCreate(groupId).CheckCommit(memberId, generationId);
        var errors = topics.Select(t => t.Partitions.Select(p =>
            groupError != ErrorCode.None ? groupError
            : broker.Topics.Find(t.Name, p.Partition) is null ? ErrorCode.UnknownTopicOrPartition
            : ErrorCode.None).ToArray()).ToArray();

        var commits = topics.SelectMany((t, i) => t.Partitions.Where((_, j) => errors[i][j] == ErrorCode.None)
            .Select(p => (t.Name, p.Partition, new CommittedOffset(p.Offset, p.LeaderEpoch, p.Metadata)))).ToList();
        try
        {
            await broker.Offsets.CommitAsync(groupId, commits, broker.Stopping).ConfigureAwait(false);
        }
        catch (Exception e) when (e is LogFaultedException or LogDiskFullException)
        {
            errors = [.. errors.Select(topic => topic
                .Select(c => c == ErrorCode.None ? ErrorCode.KafkaStorageError : c).ToArray())];
        }

        var w = new KafkaWriter(request.Header.CorrelationId);
        if (request.Version >= 3)
        {
            w.WriteInt32(0); // throttle_time_ms
        }

        w.WriteArrayCount(topics.Count);
        for (int t = 0; t < topics.Count; t++)
        {
            w.WriteString(topics[t].Name);
            w.WriteArrayCount(topics[t].Partitions.Count);
            for (int p = 0; p < topics[t].Partitions.Count; p++)
            {
                w.WriteInt32(topics[t].Partitions[p].Partition);
                w.WriteError(errors[t][p]);
            }
        }

        return w;
    }

    public static KafkaWriter Fetch(RequestContext request)
    {
        var body = request.Body;
        short version = request.Version;
        string groupId = body.ReadString();
        var requested = version >= 2
            ? body.ReadNullableArray(t => (t.ReadString(), t.ReadArray(p => p.ReadInt32())))
            : body.ReadArray(t => (t.ReadString(), t.ReadArray(p => p.ReadInt32())));
        var offsets = request.Broker.Offsets;
        var topics = requested ?? offsets.ForGroup(groupId)
            .GroupBy(o => o.Topic, StringComparer.Ordinal)
            .Select(g => (g.Key, g.Select(o => o.Partition).ToList())).ToList();

        var w = new KafkaWriter(request.Header.CorrelationId);
        if (version >= 3)
        {
            w.WriteInt32(0); // throttle_time_ms
        }

        w.WriteArrayCount(topics.Count);
        foreach (var (topic, partitions) in topics)
        {
            w.WriteString(topic);
            w.WriteArrayCount(partitions.Count);
            foreach (int partition in partitions)
            {
                var committed = offsets.Get(groupId, topic, partition);
                w.WriteInt32(partition);
                w.WriteInt64(committed?.Offset ?? -1);
                if (version >= 5)
                {
                    w.WriteInt32(committed?.LeaderEpoch ?? -1);
                }

                w.WriteNullableString(committed is null ? "" : committed.Value.Metadata);
                w.WriteError(ErrorCode.None);
            }
        }

        if (version >= 2)
        {
            w.WriteError(ErrorCode.None);
        }

        return w;
    }

    private static CommitRequest ParseCommit(RequestContext request)
    {
        var body = request.Body;
        short version = request.Version;
        string groupId = body.ReadString();
        int generationId = body.ReadInt32();
        string memberId = body.ReadString();
        if (version <= 4)
        {
            _ = body.ReadInt64(); // retention_time_ms
        }

        if (version >= 7)
        {
            _ = body.ReadNullableString(); // group_instance_id
        }

        var topics = body.ReadArray(t => (t.ReadString(), t.ReadArray(p => new PartitionCommit(
            p.ReadInt32(),
            p.ReadInt64(),
            version >= 6 ? p.ReadInt32() : -1,
            p.ReadNullableString()))));
        return new CommitRequest(groupId, generationId, memberId, topics);
    }
}
