using System.Threading.Tasks.Sources;
using AppendLog.Diagnostics;
using Microsoft.Extensions.ObjectPool;

namespace AppendLog.Appender;

/// <summary>
/// The completion of one append (or one wait) that finishes when the durable end offset passes
/// <see cref="Target"/>. Uncancellable waits use pooled instances (zero allocation in steady state);
/// a cancellable wait gets a fresh one, because a pooled source could be reused while a late cancellation
/// still refers to it. Continuations always run asynchronously, never on the I/O thread that completes them.
/// </summary>
internal sealed class DurableWaiter : IValueTaskSource<long>
{
    private static readonly ObjectPool<DurableWaiter> s_pool =
        new DefaultObjectPool<DurableWaiter>(new Policy(), maximumRetained: 4096);

    private ManualResetValueTaskSourceCore<long> _core;
    private int _completed;
    private bool _pooled;
    private CancellationTokenRegistration _registration;

    /// <summary>The durable end offset this waiter needs (exclusive: completes when DurableEndOffset ≥ Target).</summary>
    public long Target { get; private set; }

    /// <summary>The value the awaiting caller gets (the first offset of its batch).</summary>
    public long Result { get; private set; }

    public short Version => _core.Version;

    /// <summary>
    /// When an awaited append was accepted (<see cref="System.Diagnostics.Stopwatch"/> ticks), for
    /// <c>appendlog.append.duration</c>; 0 when the wait is not an append or nobody listens.
    /// </summary>
    public long AcceptedTimestamp { get; set; }

    /// <summary>
    /// A reader's wait (not an append's): a suffix truncation completes it early, so the reader looks at the log again
    /// (and learns about the cut) instead of waiting for offsets that may be reassigned.
    /// </summary>
    public bool WakeOnCut { get; set; }

    /// <param name="target">The durable end offset to wait for.</param>
    /// <param name="result">The value the caller gets.</param>
    /// <param name="inlineContinuations">
    /// True: continuations run inline on the thread that completes the waiter, which is always a thread-pool work item
    /// of <c>LogWriter.CompleteWaiters</c> (never an I/O thread, never under a lock) or a cancellation callback.
    /// False: each continuation is queued to the thread pool on its own (<see cref="PipelineTuning.InlineContinuations"/>).
    /// </param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <param name="onCancel">Called once the wait was cancelled.</param>
    public static DurableWaiter Rent(long target, long result, bool inlineContinuations, CancellationToken cancellationToken, Action<DurableWaiter>? onCancel)
    {
        DurableWaiter waiter;
        if (cancellationToken.CanBeCanceled)
        {
            waiter = new DurableWaiter();
            waiter.Init(target, result, inlineContinuations, pooled: false);
            waiter._registration = cancellationToken.UnsafeRegister(
                static (state, token) =>
                {
                    var (w, cancel) = ((DurableWaiter, Action<DurableWaiter>?))state!;
                    if (w.TrySetException(new OperationCanceledException(token)))
                    {
                        cancel?.Invoke(w);
                    }
                },
                (waiter, onCancel));
        }
        else
        {
            waiter = s_pool.Get();
            waiter.Init(target, result, inlineContinuations, pooled: true);
        }

        return waiter;
    }

    /// <summary>True once completed (by success, failure or cancellation).</summary>
    public bool IsCompleted => Volatile.Read(ref _completed) != 0;

    public bool TrySetResult()
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return false;
        }

        _registration.Dispose();
        AppendLogMetrics.AppendCompleted(AcceptedTimestamp);
        _core.SetResult(Result);
        return true;
    }

    public bool TrySetException(Exception exception)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return false;
        }

        _core.SetException(exception);
        return true;
    }

    public long GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            if (_pooled)
            {
                _core.Reset();
                s_pool.Return(this);
            }
            else
            {
                _registration.Dispose();
            }
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    private void Init(long target, long result, bool inlineContinuations, bool pooled)
    {
        _core.RunContinuationsAsynchronously = !inlineContinuations;
        Target = target;
        Result = result;
        _pooled = pooled;
        _completed = 0;
        _registration = default;
        AcceptedTimestamp = 0;
        WakeOnCut = false;
    }

    private sealed class Policy : PooledObjectPolicy<DurableWaiter>
    {
        public override DurableWaiter Create() => new();

        public override bool Return(DurableWaiter obj) => true;
    }
}
