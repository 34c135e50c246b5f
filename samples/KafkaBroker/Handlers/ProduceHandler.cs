using AppendLog;
using KafkaBroker.Protocol;
using KafkaBroker.Server;

namespace KafkaBroker.Handlers;

/// <summary>
/// Produce v3–v7 (RecordBatch v2 only). Each partition's records are split into batches and every batch is checked
/// (framing, magic 2, CRC-32C, codec id, offset count, the idempotent producer's sequence) before any is stored, so
/// a partition gets all of a request's batches or none. Batches are stored verbatim with
/// <see cref="SegmentedLog.AppendRawBatchAsync"/>, which completes when the batch is durable. All three acks settings
/// therefore answer only after an fdatasync: acks = all because a single node's quorum is its disk; acks = 1 because
/// AppendLog offers no earlier acknowledgement for raw batches (stronger than Kafka, never weaker); acks = 0 sends
/// no response at all. timeout_ms is not used: the wait is one group commit.
/// </summary>
internal static class ProduceHandler
{
    private sealed record PartitionData(int Partition, ReadOnlyMemory<byte>? Records);

    private sealed record TopicData(string Name, List<PartitionData> Partitions);

    public static async Task<KafkaWriter?> HandleAsync(RequestContext request)
    {
        var body = request.Body;
        string? transactionalId = body.ReadNullableString();
        short acks = body.ReadInt16();
        _ = body.ReadInt32(); // timeout_ms
        var topics = body.ReadArray(t => new TopicData(
            t.ReadString(),
            t.ReadArray(p => new PartitionData(p.ReadInt32(), p.ReadNullableBytes()))));

        if (BrokerMetrics.ProducePartitions.Enabled)
        {
            BrokerMetrics.ProducePartitions.Record(topics.Sum(t => t.Partitions.Count));
        }

        var requestError = acks is -1 or 0 or 1 ? ErrorCode.None : ErrorCode.InvalidRequiredAcks;
        if (transactionalId is not null)
        {
            requestError = ErrorCode.TransactionalIdAuthorizationFailed;
        }

        // Every partition's appends start now, in request order, before the first wait; then each is awaited in turn
        // (no WhenAll per topic: a request usually names one partition).
        var results = new (ErrorCode Error, long BaseOffset, long LogStartOffset)[topics.Count][];
        var pending = new Task<(ErrorCode Error, long BaseOffset, long LogStartOffset)>[topics.Count][];
        for (int t = 0; t < topics.Count; t++)
        {
            var partitions = topics[t].Partitions;
            results[t] = new (ErrorCode, long, long)[partitions.Count];
            pending[t] = new Task<(ErrorCode, long, long)>[partitions.Count];
            for (int p = 0; p < partitions.Count; p++)
            {
                pending[t][p] = requestError == ErrorCode.None
                    ? ProduceAsync(request.Broker, topics[t].Name, partitions[p])
                    : Task.FromResult((requestError, -1L, -1L));
            }
        }

        for (int t = 0; t < topics.Count; t++)
        {
            for (int p = 0; p < pending[t].Length; p++)
            {
                results[t][p] = await pending[t][p].ConfigureAwait(false);
            }
        }

        return acks == 0 && requestError == ErrorCode.None ? null : Write(request, topics, results);
    }

    private static async Task<(ErrorCode Error, long BaseOffset, long LogStartOffset)> ProduceAsync(
        BrokerContext broker, string topic, PartitionData data)
    {
        var partition = broker.Topics.Find(topic, data.Partition);
        if (partition is null)
        {
            return (ErrorCode.UnknownTopicOrPartition, -1, -1);
        }

        if (data.Records is not { } records)
        {
            return (ErrorCode.CorruptMessage, -1, -1);
        }

        var error = RecordBatchView.TrySplit(records, broker.Options.MaximumBatchSize, out var batches);
        if (error == ErrorCode.None && batches.Count > 1 && batches.Any(b => b.ProducerId >= 0))
        {
            // Kafka's rule: an idempotent producer's request holds exactly one batch per partition, so a sequence
            // check can never leave part of a request stored.
            error = ErrorCode.InvalidRecord;
        }

        if (error != ErrorCode.None)
        {
            return (error, -1, -1);
        }

        try
        {
            var (appendError, baseOffset) = await partition.AppendAsync(batches, broker.Stopping).ConfigureAwait(false);
            return (appendError, baseOffset, partition.Log.StartOffset);
        }
        catch (ArgumentException)
        {
            // AppendLog's own check refused the batch (it re-verifies what RecordBatchView checked).
            return (ErrorCode.CorruptMessage, -1, -1);
        }
        catch (Exception e) when (e is LogFaultedException or LogDiskFullException or IOException)
        {
            return (ErrorCode.KafkaStorageError, -1, -1);
        }
    }

    private static KafkaWriter Write(
        RequestContext request,
        List<TopicData> topics,
        (ErrorCode Error, long BaseOffset, long LogStartOffset)[][] results)
    {
        var w = new KafkaWriter(request.Header.CorrelationId);
        w.WriteArrayCount(topics.Count);
        for (int t = 0; t < topics.Count; t++)
        {
            w.WriteString(topics[t].Name);
            w.WriteArrayCount(topics[t].Partitions.Count);
            for (int p = 0; p < topics[t].Partitions.Count; p++)
            {
                var (error, baseOffset, logStartOffset) = results[t][p];
                w.WriteInt32(topics[t].Partitions[p].Partition);
                w.WriteError(error);
                w.WriteInt64(baseOffset);
                w.WriteInt64(-1); // log_append_time_ms: batches keep their create time
                if (request.Version >= 5)
                {
                    w.WriteInt64(logStartOffset);
                }
            }
        }

        w.WriteInt32(0); // throttle_time_ms
        return w;
    }
}
