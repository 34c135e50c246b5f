using AppendLog;
using KafkaBroker.Protocol;
using KafkaBroker.Server;
using KafkaBroker.Storage;

namespace KafkaBroker.Handlers;

/// <summary>
/// Fetch v4–v11. Reads each partition's stored batches from <see cref="SegmentedLog.ReadBatchesAsync"/> and sends
/// their bytes as they are on disk (no decoding, no re-encoding). Only durable records are visible: the high
/// watermark and last stable offset are <see cref="SegmentedLog.DurableEndOffset"/>. Limits follow KIP-74 (max_bytes capped by
/// <see cref="BrokerOptions.MaximumFetchResponseSize"/>, so a client cannot make the broker hold a whole log): the
/// first batch of the response is sent even when larger than max_bytes or partition_max_bytes, so a consumer can
/// always make progress; later batches must fit both. Long poll: while fewer than min_bytes are available the
/// request waits for an append to one of its partitions, up to max_wait_ms (bounded by
/// <see cref="BrokerOptions.MaximumFetchWait"/>). Fetch sessions (KIP-227) are not kept: session_id 0 in the
/// answer tells the client that every fetch is a full one.
/// </summary>
internal static class FetchHandler
{
    private sealed record PartitionRequest(int Partition, long FetchOffset, int MaxBytes);

    private sealed record TopicRequest(string Name, List<PartitionRequest> Partitions);

    private sealed record PartitionResult(
        ErrorCode Error, long HighWatermark, long LogStartOffset, List<LogBatch> Batches);

    private sealed class Budget(int maxBytes)
    {
        public int MaxBytes { get; } = maxBytes;

        public int Bytes { get; set; }

        public bool Empty => Bytes == 0;
    }

    public static async Task<KafkaWriter?> HandleAsync(RequestContext request)
    {
        var (maxWait, minBytes, maxBytes, topics) = Parse(request);
        var broker = request.Broker;
        var time = broker.Options.TimeProvider;
        long startTicks = time.GetTimestamp();
        var partitions = topics
            .SelectMany(t => t.Partitions.Select(p => broker.Topics.Find(t.Name, p.Partition)))
            .ToArray();
        while (true)
        {
            // Take the signals before reading: an append between the read and the wait then still wakes the wait.
            var appended = partitions.OfType<PartitionLog>().Select(p => p.WhenAppended).ToArray();
            var budget = new Budget(maxBytes);
            var results = new List<PartitionResult[]>(topics.Count);
            foreach (var topic in topics)
            {
                var topicResults = new PartitionResult[topic.Partitions.Count];
                for (int i = 0; i < topicResults.Length; i++)
                {
                    var partition = broker.Topics.Find(topic.Name, topic.Partitions[i].Partition);
                    topicResults[i] = await ReadAsync(partition, topic.Partitions[i], budget, broker.Stopping)
                        .ConfigureAwait(false);
                }

                results.Add(topicResults);
            }

            var remaining = maxWait - time.GetElapsedTime(startTicks);
            bool anyError = results.Any(r => r.Any(p => p.Error != ErrorCode.None));
            if (budget.Bytes >= minBytes || remaining <= TimeSpan.Zero || anyError || appended.Length == 0)
            {
                return Write(request, topics, results);
            }

            await WaitForAppendAsync(appended, remaining, time, broker.Stopping).ConfigureAwait(false);
        }
    }

    private static (TimeSpan MaxWait, int MinBytes, int MaxBytes, List<TopicRequest> Topics) Parse(
        RequestContext request)
    {
        var body = request.Body;
        short version = request.Version;
        _ = body.ReadInt32(); // replica_id
        var maxWait = TimeSpan.FromMilliseconds(Math.Max(0, body.ReadInt32()));
        int minBytes = body.ReadInt32();
        int maxBytes = body.ReadInt32();
        _ = body.ReadInt8(); // isolation_level: no transactions, so read_committed sees what read_uncommitted sees
        if (version >= 7)
        {
            _ = body.ReadInt32(); // session_id
            _ = body.ReadInt32(); // session_epoch
        }

        var topics = body.ReadArray(t => new TopicRequest(t.ReadString(), t.ReadArray(p =>
        {
            int partition = p.ReadInt32();
            if (version >= 9)
            {
                _ = p.ReadInt32(); // current_leader_epoch
            }

            long fetchOffset = p.ReadInt64();
            if (version >= 5)
            {
                _ = p.ReadInt64(); // log_start_offset (followers only)
            }

            return new PartitionRequest(partition, fetchOffset, p.ReadInt32());
        })));
        if (version >= 7)
        {
            _ = body.ReadArray(f => (f.ReadString(), f.ReadArray(p => p.ReadInt32()))); // forgotten_topics_data
        }

        if (version >= 11)
        {
            _ = body.ReadString(); // rack_id
        }

        var options = request.Broker.Options;
        var cappedWait = maxWait < options.MaximumFetchWait ? maxWait : options.MaximumFetchWait;
        return (cappedWait, minBytes, Math.Min(maxBytes, options.MaximumFetchResponseSize), topics);
    }

    private static async Task<PartitionResult> ReadAsync(
        PartitionLog? partition, PartitionRequest request, Budget budget, CancellationToken cancellationToken)
    {
        if (partition is null)
        {
            return new PartitionResult(ErrorCode.UnknownTopicOrPartition, -1, -1, []);
        }

        var log = partition.Log;
        long highWatermark = log.DurableEndOffset;
        long logStart = log.StartOffset;
        if (request.FetchOffset < logStart || request.FetchOffset > highWatermark)
        {
            return new PartitionResult(ErrorCode.OffsetOutOfRange, highWatermark, logStart, []);
        }

        var batches = new List<LogBatch>();
        if (request.FetchOffset == highWatermark)
        {
            return new PartitionResult(ErrorCode.None, highWatermark, logStart, batches);
        }

        try
        {
            int partitionBytes = 0;
            var stored = log.ReadBatchesAsync(request.FetchOffset, cancellationToken).ConfigureAwait(false);
            await foreach (var batch in stored)
            {
                int length = batch.Bytes.Length;
                bool fits = partitionBytes + length <= request.MaxBytes && budget.Bytes + length <= budget.MaxBytes;
                if (!fits && !budget.Empty)
                {
                    break;
                }

                batches.Add(batch);
                partitionBytes += length;
                budget.Bytes += length;
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            // Retention deleted the segment between the range check and the read.
            return new PartitionResult(ErrorCode.OffsetOutOfRange, highWatermark, log.StartOffset, []);
        }
        catch (LogCorruptedException)
        {
            return new PartitionResult(ErrorCode.KafkaStorageError, highWatermark, logStart, []);
        }

        return new PartitionResult(ErrorCode.None, highWatermark, logStart, batches);
    }

    private static async Task WaitForAppendAsync(
        Task[] appended, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var delay = Task.Delay(timeout, time, timer.Token);
        await Task.WhenAny(Task.WhenAny(appended), delay).ConfigureAwait(false);
        await timer.CancelAsync().ConfigureAwait(false);
    }

    private static KafkaWriter Write(RequestContext request, List<TopicRequest> topics, List<PartitionResult[]> results)
    {
        short version = request.Version;
        var w = new KafkaWriter(request.Header.CorrelationId);
        w.WriteInt32(0); // throttle_time_ms
        if (version >= 7)
        {
            w.WriteError(ErrorCode.None);
            w.WriteInt32(0); // session_id: no session
        }

        w.WriteArrayCount(topics.Count);
        for (int t = 0; t < topics.Count; t++)
        {
            w.WriteString(topics[t].Name);
            w.WriteArrayCount(topics[t].Partitions.Count);
            for (int p = 0; p < topics[t].Partitions.Count; p++)
            {
                WritePartition(w, version, topics[t].Partitions[p].Partition, results[t][p]);
            }
        }

        return w;
    }

    private static void WritePartition(KafkaWriter w, short version, int partition, PartitionResult result)
    {
        w.WriteInt32(partition);
        w.WriteError(result.Error);
        w.WriteInt64(result.HighWatermark);
        w.WriteInt64(result.HighWatermark); // last_stable_offset: no open transactions
        if (version >= 5)
        {
            w.WriteInt64(result.LogStartOffset);
        }

        w.WriteArrayCount(-1); // aborted_transactions: null
        if (version >= 11)
        {
            w.WriteInt32(-1); // preferred_read_replica
        }

        w.WriteInt32(result.Batches.Sum(b => b.Bytes.Length));
        foreach (var batch in result.Batches)
        {
            w.WriteReference(batch.Bytes); // a LogBatch's bytes are immutable and may be held past the read
        }
    }
}
