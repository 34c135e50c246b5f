using System.Runtime.CompilerServices;
using AppendLog;
using KafkaBroker.Protocol;
using KafkaBroker.Server;

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
/// A connection runs one fetch at a time past <see cref="FetchReaders.EnterAsync"/>, so the parsed request, the
/// per-partition results and the response writer are the connection's <see cref="FetchState"/>, reused from one fetch
/// to the next: a steady consumer's fetch allocates nothing here. The request is first walked without keeping
/// anything (so a malformed one fails before the handler's first wait, as the connection requires), then parsed into
/// the state once the previous fetch has released it.
/// </summary>
internal static class FetchHandler
{
    /// <summary>Serves one Fetch; pooled (awaited once, by the connection's writer): no task per fetch.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<KafkaWriter?> HandleAsync(RequestContext request)
    {
        var body = request.Body;
        int start = body.Position;
        Parse(request, state: null); // checks the whole request before the first wait
        var broker = request.Broker;
        var readers = request.FetchReaders;
        var time = broker.Options.TimeProvider;
        long startTicks = time.GetTimestamp();
        await readers.EnterAsync(broker.Stopping).ConfigureAwait(false);
        try
        {
            var state = readers.State;
            body.Position = start;
            Parse(request, state);
            bool first = true;
            while (true)
            {
                // Take the signals before reading: an append between the read and the wait then still wakes the wait.
                state.Appended.Clear();
                for (int t = 0; t < state.TopicCount; t++)
                {
                    var topic = state.Topics[t];
                    for (int p = 0; p < topic.PartitionCount; p++)
                    {
                        if (topic.Partitions[p].Log is { } log)
                        {
                            state.Appended.Add(log.WhenAppended); // a partition named twice only wakes twice
                        }
                    }
                }

                bool anyError = false;
                for (int t = 0; t < state.TopicCount; t++)
                {
                    var topic = state.Topics[t];
                    for (int p = 0; p < topic.PartitionCount; p++)
                    {
                        var result = topic.Partitions[p];
                        await ReadAsync(result, first, state, readers, broker.Stopping).ConfigureAwait(false);
                        anyError |= result.Error != ErrorCode.None;
                    }
                }

                first = false;
                var remaining = state.MaxWait - time.GetElapsedTime(startTicks);
                if (state.Bytes >= state.MinBytes || remaining <= TimeSpan.Zero || anyError || state.Appended.Count == 0)
                {
                    var response = Write(request, state);
                    response.AfterSent = readers.AfterSent;
                    return response;
                }

                await WaitForAppendAsync(state.Appended.ToArray(), remaining, time, broker.Stopping).ConfigureAwait(false);
            }
        }
        catch
        {
            await readers.ExitAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Reads the request's body: into <paramref name="state"/> (its topics and partitions reset and filled), or, when
    /// null, only to check it.
    /// </summary>
    private static void Parse(RequestContext request, FetchState? state)
    {
        var body = request.Body;
        short version = request.Version;
        state?.Reset();
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

        int topicCount = body.ReadArrayCount();
        for (int t = 0; t < topicCount; t++)
        {
            var topic = state?.NextTopic();
            if (topic is null)
            {
                body.SkipString();
            }
            else
            {
                topic.Name = body.ReadString(cached: topic.Name); // the slot's name of the previous fetch
            }

            int partitionCount = body.ReadArrayCount();
            for (int p = 0; p < partitionCount; p++)
            {
                int partition = body.ReadInt32();
                if (version >= 9)
                {
                    _ = body.ReadInt32(); // current_leader_epoch
                }

                long fetchOffset = body.ReadInt64();
                if (version >= 5)
                {
                    _ = body.ReadInt64(); // log_start_offset (followers only)
                }

                int partitionMaxBytes = body.ReadInt32();
                topic?.NextPartition().Reset(
                    request.Broker.Topics.Find(topic.Name, partition), partition, fetchOffset, partitionMaxBytes);
            }
        }

        if (version >= 7)
        {
            int forgotten = body.ReadArrayCount(); // forgotten_topics_data: no sessions, nothing to forget
            for (int f = 0; f < forgotten; f++)
            {
                body.SkipString();
                int partitions = body.ReadArrayCount();
                for (int p = 0; p < partitions; p++)
                {
                    _ = body.ReadInt32();
                }
            }
        }

        if (version >= 11)
        {
            body.SkipString(); // rack_id
        }

        if (state is not null)
        {
            var options = request.Broker.Options;
            state.MaxWait = maxWait < options.MaximumFetchWait ? maxWait : options.MaximumFetchWait;
            state.MinBytes = minBytes;
            state.MaxBytes = Math.Min(maxBytes, options.MaximumFetchResponseSize);
        }
    }

    /// <summary>
    /// Reads on for one partition. The first pass checks the fetch offset and takes the partition's reader; every pass
    /// then adds the batches that fit (KIP-74: the response's first batch always does, so a consumer makes progress).
    /// Pooled: awaited once, it allocates no state machine when a read waits for the disk.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask ReadAsync(
        FetchPartition result, bool first, FetchState state, FetchReaders readers, CancellationToken cancellationToken)
    {
        if (result.Log is not { } partition)
        {
            result.Error = ErrorCode.UnknownTopicOrPartition;
            return;
        }

        var log = partition.Log;
        result.HighWatermark = log.DurableEndOffset;
        result.LogStartOffset = log.StartOffset;
        long offset = result.FetchOffset;
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
                int room = state.Bytes == 0
                    ? int.MaxValue
                    : Math.Min(result.MaxBytes - result.Bytes, state.MaxBytes - state.Bytes);
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
                state.Bytes += batch.Length;
            }
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or LogTruncatedException or LogCorruptedException)
        {
            // Retention deleted the segment under the reader, a truncation removed what it had returned (a replica
            // rolled back), or a batch is corrupt. The partition answers with an error and no batches; the reader
            // is dropped (the next fetch opens a new one and checks the offset again).
            readers.Forget(partition);
            state.Bytes -= result.Bytes;
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

    private static KafkaWriter Write(RequestContext request, FetchState state)
    {
        short version = request.Version;
        var w = state.Writer;
        w.Restart(request.Header.CorrelationId);
        w.WriteInt32(0); // throttle_time_ms
        if (version >= 7)
        {
            w.WriteError(ErrorCode.None);
            w.WriteInt32(0); // session_id: no session
        }

        w.WriteArrayCount(state.TopicCount);
        for (int t = 0; t < state.TopicCount; t++)
        {
            var topic = state.Topics[t];
            w.WriteString(topic.Name);
            w.WriteArrayCount(topic.PartitionCount);
            for (int p = 0; p < topic.PartitionCount; p++)
            {
                WritePartition(w, version, topic.Partitions[p]);
            }
        }

        return w;
    }

    private static void WritePartition(KafkaWriter w, short version, FetchPartition result)
    {
        w.WriteInt32(result.Partition);
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
