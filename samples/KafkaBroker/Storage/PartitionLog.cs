using System.Buffers.Binary;
using AppendLog;
using KafkaBroker.Protocol;

namespace KafkaBroker.Storage;

/// <summary>
/// One topic-partition: an AppendLog <see cref="SegmentedLog"/> (named <c>{topic}-{partition}</c> in the broker's
/// <see cref="LogManager"/>), the idempotent producers' state, and a signal that wakes fetches waiting at the tail.
/// Consumers see only durable records: the high watermark is <see cref="SegmentedLog.DurableEndOffset"/>.
/// </summary>
internal sealed class PartitionLog
{
    private readonly Lock _lock = new();
    private readonly Dictionary<long, ProducerState> _producers = [];
    private TaskCompletionSource _appended = NewSignal();

    private PartitionLog(string topic, int partition, SegmentedLog log)
    {
        Topic = topic;
        Partition = partition;
        Log = log;
    }

    public string Topic { get; }

    public int Partition { get; }

    public SegmentedLog Log { get; }

    /// <summary>
    /// In a replicated cluster, the partition's Raft member: produce goes through it, and <see cref="Log"/> holds what
    /// it applied (rebuilt by replay at every start). Null on a single broker.
    /// </summary>
    public PartitionReplica? Replica { get; set; }

    /// <summary>
    /// Appends the log did not accept inside the call (its buffers were spent, or appends started earlier were still
    /// waiting: diagnostics, tests check that a backpressure case really met backpressure). Changed under the lock.
    /// </summary>
    public long DeferredAppends { get; private set; }

    /// <summary>The log name of a topic-partition.</summary>
    public static string LogName(string topic, int partition) => $"{topic}-{partition}";

    /// <summary>
    /// Opens the partition's log and rebuilds the producers' state from the batches it holds (Kafka keeps snapshots
    /// for this; a sample can afford the scan). The scan lends each batch from the reader's reused arrays and releases
    /// it at once (only the header is read): ReadBatchesAsync would allocate every batch, a whole partition's bytes of
    /// garbage at every start, collected while the first consumers fetch.
    /// </summary>
    public static async Task<PartitionLog> OpenAsync(
        LogManager manager, string topic, int partition, CancellationToken cancellationToken)
    {
        var log = await manager.GetOrOpenAsync(LogName(topic, partition), cancellationToken).ConfigureAwait(false);
        var partitionLog = new PartitionLog(topic, partition, log);
        var reader = log.OpenBatchReader(log.StartOffset);
        await using (reader.ConfigureAwait(false))
        {
            while (true)
            {
                var bytes = await reader.ReadAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                if (bytes.IsEmpty)
                {
                    break; // the durable end: after recovery, the log's end
                }

                var batch = RecordBatchView.OfStored(bytes);
                if (batch.ProducerId >= 0)
                {
                    long baseOffset = BinaryPrimitives.ReadInt64BigEndian(bytes.Span); // base_offset: the batch's first field
                    partitionLog.StateFor(batch).Remember(batch, Task.FromResult(baseOffset));
                }

                reader.Release();
            }
        }

        return partitionLog;
    }

    /// <summary>
    /// A task that completes at the next append made durable (take it before reading, so none is missed).
    /// </summary>
    public Task WhenAppended => Volatile.Read(ref _appended).Task;

    /// <summary>
    /// Stores the batches of one produce request for this partition, in order; each batch's producer sequence is
    /// checked first, and a retried batch gets the offset it got the first time. Completes when every batch is
    /// durable, with the base offset of the first.
    /// </summary>
    public async Task<(ErrorCode Error, long BaseOffset)> AppendAsync(
        List<RecordBatchView> batches, CancellationToken cancellationToken)
    {
        if (Replica is { } replica)
        {
            // Each batch is proposed now, in order (ReplicateAsync queues it before it first waits).
            var replications = batches.Select(b => replica.ReplicateAsync(b, cancellationToken)).ToArray();
            var outcomes = await Task.WhenAll(replications).ConfigureAwait(false);
            var failed = Array.Find(outcomes, o => o.Error != ErrorCode.None);
            return failed.Error != ErrorCode.None ? (failed.Error, -1) : (ErrorCode.None, outcomes[0].BaseOffset);
        }

        var appends = new List<Task<long>>(batches.Count);
        lock (_lock)
        {
            foreach (var batch in batches)
            {
                var error = StartAppendUnsynchronized(batch, appends, cancellationToken);
                if (error != ErrorCode.None)
                {
                    // Only an idempotent producer's check fails here, and such a request holds one batch
                    // (ProduceHandler makes sure), so nothing of this request was started.
                    return (error, -1);
                }
            }
        }

        long baseOffset = appends.Count == 1
            ? await appends[0].ConfigureAwait(false) // an idempotent producer's request: no WhenAll for one batch
            : (await Task.WhenAll(appends).ConfigureAwait(false))[0];
        Notify();
        return (ErrorCode.None, baseOffset);
    }

    /// <summary>
    /// Applies one batch committed by the partition's Raft group (on every member, in commit order): the idempotent
    /// producer's check, then the append to <see cref="Log"/>, which assigns the Kafka offsets. Answers as soon as the
    /// local log has accepted the batch: the batch is already durable on a quorum's Raft logs, and the local log is
    /// rebuilt from them at start. Never throws for a bad batch (an exception would stop the Raft member).
    /// </summary>
    public async Task<(ErrorCode Error, long BaseOffset)> ApplyCommittedAsync(
        ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        var batch = RecordBatchView.OfStored(bytes);
        var appends = new List<Task<long>>(1);
        ErrorCode error;
        long endBefore;
        bool acceptedNow;
        try
        {
            lock (_lock)
            {
                endBefore = Log.EndOffset;
                error = StartAppendUnsynchronized(batch, appends, cancellationToken);
                acceptedNow = error == ErrorCode.None && Log.EndOffset != endBefore;
            }
        }
        catch (ArgumentException)
        {
            return (ErrorCode.CorruptMessage, -1); // AppendLog's own check refused it (the leader checked it first)
        }

        if (error != ErrorCode.None)
        {
            return (error, -1);
        }

        var append = appends[0];
        _ = append.ContinueWith(
            static (_, self) => ((PartitionLog)self!).Notify(),
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return acceptedNow ? (ErrorCode.None, endBefore) : (ErrorCode.None, await append.ConfigureAwait(false));
    }

    private ErrorCode StartAppendUnsynchronized(
        RecordBatchView batch, List<Task<long>> appends, CancellationToken cancellationToken)
    {
        if (batch.ProducerId < 0)
        {
            appends.Add(StartRawAppendUnsynchronized(batch, cancellationToken));
            return ErrorCode.None;
        }

        _producers.TryGetValue(batch.ProducerId, out var state);
        if (state is not null && batch.ProducerEpoch < state.Epoch)
        {
            return ErrorCode.InvalidProducerEpoch;
        }

        if (state is null || batch.ProducerEpoch > state.Epoch)
        {
            state = new ProducerState(batch.ProducerEpoch);
        }

        var error = state.Check(batch, out var duplicateOf);
        if (error != ErrorCode.None)
        {
            return error;
        }

        if (duplicateOf is not null)
        {
            appends.Add(duplicateOf);
            return ErrorCode.None;
        }

        // The sequence was checked in order (a connection starts its requests in the order they came), and the batch
        // reaches the log in that order too (StartRawAppendUnsynchronized).
        var append = StartRawAppendUnsynchronized(batch, cancellationToken);
        state.Remember(batch, append);
        _producers[batch.ProducerId] = state;
        appends.Add(append);
        return ErrorCode.None;
    }

    /// <summary>
    /// Starts storing one batch. Batches reach the log in the order they are started, even when the log pushes back:
    /// AppendRawBatchAsync accepts a batch (assigns its offsets) inside the call unless its buffers are spent (or a
    /// segment roll or preallocation is pending), and then queues it, and every later call behind it, in call order
    /// (the log's own guarantee); only this partition's lock appends to the log, so call order is the order the
    /// producers' sequences were checked in. A batch not accepted inside the call (EndOffset did not move past it) is
    /// counted in <see cref="DeferredAppends"/>.
    /// </summary>
    private Task<long> StartRawAppendUnsynchronized(RecordBatchView batch, CancellationToken cancellationToken)
    {
        long endBefore = Log.EndOffset;
        var append = Log.AppendRawBatchAsync(batch.Bytes, cancellationToken).AsTask();
        if (!append.IsCompleted && Log.EndOffset != endBefore + batch.LastOffsetDelta + 1)
        {
            DeferredAppends++;
        }

        return append;
    }

    private ProducerState StateFor(RecordBatchView batch)
    {
        if (!_producers.TryGetValue(batch.ProducerId, out var state) || state.Epoch != batch.ProducerEpoch)
        {
            state = new ProducerState(batch.ProducerEpoch);
            _producers[batch.ProducerId] = state;
        }

        return state;
    }

    private void Notify() => Interlocked.Exchange(ref _appended, NewSignal()).TrySetResult();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
