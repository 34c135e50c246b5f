using AppendLog;
using KafkaBroker.Protocol;
using KafkaBroker.Server;
using KafkaBroker.Storage;

namespace KafkaBroker.Handlers;

/// <summary>
/// Fetch v4–v11. Reads each partition's stored batches with the connection's <see cref="LogBatchReader"/> for it
/// (<see cref="FetchReaders"/>: kept between fetches, so a consumer's read-ahead stays warm) and sends their bytes as
/// they are on disk, by reference (no decoding, no re-encoding, no copy in the broker). Only durable records are visible: the high
/// watermark and last stable offset are <see cref="SegmentedLog.DurableEndOffset"/>. Limits follow KIP-74 (max_bytes capped by
/// <see cref="BrokerOptions.MaximumFetchResponseSize"/>, so a client cannot make the broker hold a whole log): the
/// first batch of the response is sent even when larger than max_bytes or partition_max_bytes, so a consumer can
/// always make progress; later batches must fit both. Long poll: while fewer than min_bytes are available the
/// request waits for an append to one of its partitions, up to max_wait_ms (bounded by
/// <see cref="BrokerOptions.MaximumFetchWait"/>), then reads on from where it stopped. Fetch sessions (KIP-227) are not kept: session_id 0 in the
/// answer tells the client that every fetch is a full one.
/// </summary>
internal static class FetchHandler
{
    private sealed record PartitionRequest(int Partition, long FetchOffset, int MaxBytes);

    private sealed record TopicRequest(string Name, List<PartitionRequest> Partitions);

    /// <summary>One requested partition: what was read for it so far (lent by its reader until the answer is sent).</summary>
    private sealed class PartitionResult(PartitionLog? log, PartitionRequest request)
    {
        public PartitionLog? Log { get; } = log;

        public PartitionRequest Request { get; } = request;

        public ErrorCode Error { get; set; }

        public long HighWatermark { get; set; } = -1;

        public long LogStartOffset { get; set; } = -1;

        public LogBatchReader? Reader { get; set; }

        public List<ReadOnlyMemory<byte>> Batches { get; } = [];

        public int Bytes { get; set; }
    }

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
        var readers = request.FetchReaders;
        var time = broker.Options.TimeProvider;
        long startTicks = time.GetTimestamp();
        var results = topics
            .Select(t => t.Partitions.Select(p => new PartitionResult(broker.Topics.Find(t.Name, p.Partition), p)).ToArray())
            .ToList();
        var logs = results.SelectMany(r => r).Select(r => r.Log).OfType<PartitionLog>().ToArray(); // a repeat only wakes twice
        await readers.EnterAsync(broker.Stopping).ConfigureAwait(false);
        try
        {
            var budget = new Budget(maxBytes);
            bool first = true;
            while (true)
            {
                // Take the signals before reading: an append between the read and the wait then still wakes the wait.
                var appended = logs.Select(p => p.WhenAppended).ToArray();
                foreach (var result in results.SelectMany(r => r))
                {
                    await ReadAsync(result, first, budget, readers, broker.Stopping).ConfigureAwait(false);
                }

                first = false;
                var remaining = maxWait - time.GetElapsedTime(startTicks);
                bool anyError = results.Any(r => r.Any(p => p.Error != ErrorCode.None));
                if (budget.Bytes >= minBytes || remaining <= TimeSpan.Zero || anyError || appended.Length == 0)
                {
                    var response = Write(request, topics, results);
                    response.AfterSent = readers.AfterSent;
                    return response;
                }

                await WaitForAppendAsync(appended, remaining, time, broker.Stopping).ConfigureAwait(false);
            }
        }
        catch
        {
            await readers.ExitAsync().ConfigureAwait(false);
            throw;
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

    /// <summary>
    /// Reads on for one partition. The first pass checks the fetch offset and takes the partition's reader; every pass
    /// then adds the batches that fit (KIP-74: the response's first batch always does, so a consumer makes progress).
    /// </summary>
    private static async Task ReadAsync(
        PartitionResult result, bool first, Budget budget, FetchReaders readers, CancellationToken cancellationToken)
    {
        if (result.Log is not { } partition)
        {
            result.Error = ErrorCode.UnknownTopicOrPartition;
            return;
        }

        var log = partition.Log;
        result.HighWatermark = log.DurableEndOffset;
        result.LogStartOffset = log.StartOffset;
        long offset = result.Request.FetchOffset;
        if (first && (offset < result.LogStartOffset || offset > result.HighWatermark))
        {
            result.Error = ErrorCode.OffsetOutOfRange;
            return;
        }

        if (result.Error != ErrorCode.None)
        {
            return;
        }

        try
        {
            var reader = result.Reader ??= readers.ReaderAt(partition, offset);
            while (true)
            {
                int room = budget.Empty
                    ? int.MaxValue
                    : Math.Min(result.Request.MaxBytes - result.Bytes, budget.MaxBytes - budget.Bytes);
                if (room <= 0)
                {
                    return;
                }

                var batch = await reader.ReadAsync(room, cancellationToken).ConfigureAwait(false);
                if (batch.IsEmpty)
                {
                    return; // the durable end, or the next batch does not fit
                }

                result.Batches.Add(batch);
                result.Bytes += batch.Length;
                budget.Bytes += batch.Length;
            }
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or LogTruncatedException or LogCorruptedException)
        {
            // Retention deleted the segment under the reader, a truncation removed what it had returned (a replica
            // rolled back), or a batch is corrupt. The partition answers with an error and no batches; the reader
            // is dropped (the next fetch opens a new one and checks the offset again).
            readers.Forget(partition);
            budget.Bytes -= result.Bytes;
            result.Batches.Clear();
            result.Bytes = 0;
            result.LogStartOffset = log.StartOffset;
            result.Error = e is LogCorruptedException ? ErrorCode.KafkaStorageError : ErrorCode.OffsetOutOfRange;
        }
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

        w.WriteInt32(result.Bytes);
        foreach (var batch in result.Batches)
        {
            w.WriteReference(batch); // lent until the answer is sent (FetchReaders.ExitAsync), or cached and immutable
        }
    }
}
