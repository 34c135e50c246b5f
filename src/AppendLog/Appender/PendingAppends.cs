using AppendLog.Diagnostics;

namespace AppendLog.Appender;

/// <summary>
/// The appends of one log that could not be accepted at once (no buffer, space being reserved, a maintenance freeze),
/// admitted strictly in the order they were started. While any waits here, later appends queue behind it instead of
/// trying the writer: a producer that pipelines batches (a Kafka partition's produce requests) gets offsets in the
/// order of its calls. One drain task at a time retries the head; each append's own token cancels its wait.
/// </summary>
internal sealed class PendingAppends
{
    private readonly LogWriter _writer;
    private readonly object _lock = new();
    private readonly Queue<Pending> _queue = new();
    private bool _draining;
    private int _count;

    public PendingAppends(LogWriter writer) => _writer = writer;

    /// <summary>True when no append waits: a new one may try the writer directly.</summary>
    public bool IsEmpty => Volatile.Read(ref _count) == 0;

    /// <summary>
    /// Queues an append behind every waiting one. <paramref name="status"/> is why its own attempt failed, or null when it
    /// did not try (others were waiting).
    /// </summary>
    /// <returns>The record's first offset, once durable.</returns>
    public ValueTask<long> Enqueue(byte[] batch, int recordCount, long maxTimestampMs, AppendStatus? status, CancellationToken cancellationToken)
    {
        var pending = new Pending(batch, recordCount, maxTimestampMs, status, cancellationToken);
        if (cancellationToken.CanBeCanceled)
        {
            // Cancelled while queued behind others: it leaves now, not when it reaches the head.
            pending.Registration = cancellationToken.Register(static p => ((Pending)p!).Admitted.TrySetCanceled(), pending);
        }

        bool start;
        lock (_lock)
        {
            _queue.Enqueue(pending);
            _count++;
            start = !_draining;
            _draining = true;
        }

        if (start)
        {
            _ = Task.Run(DrainAsync);
        }

        return WaitAsync(pending);
    }

    private static async ValueTask<long> WaitAsync(Pending pending)
    {
        var waiter = await pending.Admitted.Task.ConfigureAwait(false);
        return await new ValueTask<long>(waiter, waiter.Version).ConfigureAwait(false);
    }

    private async Task DrainAsync()
    {
        while (true)
        {
            Pending head;
            lock (_lock)
            {
                if (_queue.Count == 0)
                {
                    _draining = false;
                    return;
                }

                head = _queue.Peek();
            }

            if (!head.Admitted.Task.IsCompleted)
            {
                try
                {
                    await AdmitAsync(head).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (head.Token.IsCancellationRequested)
                {
                    head.Admitted.TrySetCanceled(head.Token);
                }
                catch (Exception e)
                {
                    // The log's failures (faulted, disk full, disposed) go to this append's task; the next one tries on
                    // its own and learns its own outcome.
                    head.Admitted.TrySetException(e);
                }
            }

            head.Registration.Dispose();
            lock (_lock)
            {
                Invariant.Assert(ReferenceEquals(_queue.Peek(), head), "only the drain removes the head");
                _queue.Dequeue();
                _count--;
            }
        }
    }

    private async Task AdmitAsync(Pending head)
    {
        var status = head.Status ?? Attempt(head);
        while (status != AppendStatus.Accepted)
        {
            if (head.Admitted.Task.IsCompleted)
            {
                return; // cancelled while waiting
            }

            if (status == AppendStatus.NeedChunk)
            {
                var chunk = await _writer.Pool.RentAsync(head.Token).ConfigureAwait(false);
                _writer.AddSpare(chunk);
            }
            else if (status == AppendStatus.Frozen)
            {
                await _writer.Unfrozen.WaitAsync(head.Token).ConfigureAwait(false);
            }
            else
            {
                await _writer.PendingAllocation.WaitAsync(head.Token).ConfigureAwait(false);
            }

            status = Attempt(head);
        }
    }

    private AppendStatus Attempt(Pending head)
    {
        if (head.Admitted.Task.IsCompleted)
        {
            return AppendStatus.Accepted; // cancelled meanwhile: nothing to append
        }

        var status = _writer.TryAppend(head.Batch, head.RecordCount, head.MaxTimestampMs, wantWaiter: true, head.Token, out _, out var waiter);
        if (status == AppendStatus.Accepted)
        {
            // Accepted: from here the append is in the log whatever happens to the caller's token (the waiter honours it).
            head.Admitted.TrySetResult(waiter!);
        }

        return status;
    }

    private sealed class Pending(byte[] batch, int recordCount, long maxTimestampMs, AppendStatus? status, CancellationToken token)
    {
        public byte[] Batch { get; } = batch;

        public int RecordCount { get; } = recordCount;

        public long MaxTimestampMs { get; } = maxTimestampMs;

        public AppendStatus? Status { get; } = status;

        public CancellationToken Token { get; } = token;

        public CancellationTokenRegistration Registration { get; set; }

        public TaskCompletionSource<DurableWaiter> Admitted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
