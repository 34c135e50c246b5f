using AppendLog;
using KafkaBroker.Protocol;
using KafkaBroker.Server;
using KafkaBroker.Storage;

namespace KafkaBroker.Handlers;

/// <summary>
/// ListOffsets v1–v5: timestamp -1 (latest) is the high watermark, -2 (earliest) the log's start offset, any other
/// value the first record at or after it, found through AppendLog's time index
/// (<see cref="SegmentedLog.FindOffsetAsync"/>), with that record's timestamp; none such gives offset -1, as in Kafka.
/// </summary>
internal static class ListOffsetsHandler
{
    private const long Latest = -1;
    private const long Earliest = -2;

    private sealed record PartitionRequest(int Partition, long Timestamp);

    private sealed record TopicRequest(string Name, List<PartitionRequest> Partitions);

    public static async Task<KafkaWriter?> HandleAsync(RequestContext request)
    {
        var body = request.Body;
        short version = request.Version;
        _ = body.ReadInt32(); // replica_id
        if (version >= 2)
        {
            _ = body.ReadInt8(); // isolation_level
        }

        var topics = body.ReadArray(t => new TopicRequest(t.ReadString(), t.ReadArray(p =>
        {
            int partition = p.ReadInt32();
            if (version >= 4)
            {
                _ = p.ReadInt32(); // current_leader_epoch
            }

            return new PartitionRequest(partition, p.ReadInt64());
        })));

        var w = new KafkaWriter(request.Header.CorrelationId);
        if (version >= 2)
        {
            w.WriteInt32(0); // throttle_time_ms
        }

        w.WriteArrayCount(topics.Count);
        foreach (var topic in topics)
        {
            w.WriteString(topic.Name);
            w.WriteArrayCount(topic.Partitions.Count);
            foreach (var p in topic.Partitions)
            {
                var partition = request.Broker.Topics.Find(topic.Name, p.Partition);
                var (error, timestamp, offset) = await LookUpAsync(partition, p.Timestamp, request.Broker.Stopping)
                    .ConfigureAwait(false);
                w.WriteInt32(p.Partition);
                w.WriteError(error);
                w.WriteInt64(timestamp);
                w.WriteInt64(offset);
                if (version >= 4)
                {
                    w.WriteInt32(error == ErrorCode.None ? 0 : -1); // leader_epoch
                }
            }
        }

        return w;
    }

    private static async Task<(ErrorCode Error, long Timestamp, long Offset)> LookUpAsync(
        PartitionLog? partition, long timestamp, CancellationToken cancellationToken)
    {
        if (partition is null)
        {
            return (ErrorCode.UnknownTopicOrPartition, -1, -1);
        }

        var log = partition.Log;
        switch (timestamp)
        {
            case Latest:
                return (ErrorCode.None, -1, log.DurableEndOffset);
            case Earliest:
                return (ErrorCode.None, -1, log.StartOffset);
            case < 0:
                return (ErrorCode.InvalidRequest, -1, -1);
        }

        try
        {
            return await FindByTimeAsync(log, timestamp, cancellationToken).ConfigureAwait(false);
        }
        catch (LogCorruptedException)
        {
            return (ErrorCode.KafkaStorageError, -1, -1);
        }
    }

    private static async Task<(ErrorCode, long, long)> FindByTimeAsync(
        SegmentedLog log, long timestamp, CancellationToken cancellationToken)
    {
        long end = log.DurableEndOffset;
        long offset = await log.FindOffsetAsync(DateTimeOffset.FromUnixTimeMilliseconds(timestamp), cancellationToken)
            .ConfigureAwait(false);
        if (offset >= end)
        {
            return (ErrorCode.None, -1, -1);
        }

        await foreach (var record in log.ReadAsync(offset, cancellationToken).ConfigureAwait(false))
        {
            return (ErrorCode.None, record.TimestampMs, record.Offset);
        }

        return (ErrorCode.None, -1, -1);
    }
}
