using System.Collections.Concurrent;
using FASTER.core;

namespace AppendLog.LoadGen.Engines;

/// <summary>
/// FasterLog driven the way its own samples drive it for throughput (PEERS.md, "Open loop, fairly"): an append
/// is <see cref="FasterLog.Enqueue(ReadOnlySpan{byte})"/>, a synchronous copy into FasterLog's in-memory page
/// on the caller's thread, plus a registration of (record address, completion); one commit tracker commits
/// while the tail is ahead of the committed address and completes every registered append whose address
/// <c>CommittedUntilAddress</c> has passed (a commit always ends at a record boundary, the tail it was issued
/// for, so address &lt; committed means the whole record is durable). One commit wait serves every record it
/// covers, instead of one awaited commit per record.
/// </summary>
/// <remarks>
/// Registrations arrive out of address order (two producers enqueue, the later address registers first), so
/// the tracker keeps them in a priority queue by address and never holds a committed record behind an
/// uncommitted one. Completions run their continuations asynchronously, never on the tracker. A failed commit
/// faults the instance: every waiting and later append fails with the same exception. The commit-stall
/// watchdog of PEERS.md runs beside it (<see cref="FasterCommitWatchdog"/>).
/// </remarks>
internal sealed class FasterLogTrackerEngine : IEngine
{
    /// <summary>How long the tracker sleeps when nothing is enqueued; an append wakes it sooner.</summary>
    private static readonly TimeSpan s_idleWaitMax = TimeSpan.FromMilliseconds(1);

    private static readonly TimeSpan s_stopWaitMax = TimeSpan.FromSeconds(30);

    private readonly IDevice _device;
    private readonly FasterLog _log;
    private readonly FasterCommitWatchdog _watchdog;
    private readonly ConcurrentQueue<(long Address, TaskCompletionSource Done)> _registered = new();

    /// <summary>The tracker's own: registered appends not yet committed, by address.</summary>
    private readonly PriorityQueue<TaskCompletionSource, long> _waiting = new();

    /// <summary>Released by an append that finds the tracker idle; a surplus release only causes a spare look.</summary>
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly Task _tracker;
    private int _trackerIdle;
    private volatile bool _stopping;
    private volatile Exception? _fault;
    private long _commitCalls;
    private long _acks;

    public FasterLogTrackerEngine(string directory, FasterCommitDriver driver, bool preallocateFile)
    {
        (_device, _log) = FasterLogFactory.Create(directory, preallocateFile, autoCommit: false);
        _watchdog = new FasterCommitWatchdog(_log);
        if (driver == FasterCommitDriver.TrackerSpin)
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var thread = new Thread(() => TrackSpinning(done)) { IsBackground = true, Name = "fasterlog-tracker" };
            thread.Start();
            _tracker = done.Task;
        }
        else
        {
            _tracker = Task.Run(TrackAsync);
        }
    }

    public long? SyncCalls => null; // FASTER's O_SYNC writes happen inside its device: count them with strace.

    public IReadOnlyDictionary<string, long> Counters => new Dictionary<string, long>
    {
        ["commitCalls"] = Interlocked.Read(ref _commitCalls),
        ["trackerAcks"] = Interlocked.Read(ref _acks),
        ["watchdogKicks"] = _watchdog.Kicks,
        ["watchdogReadsPending"] = _watchdog.ReadsPending,
    };

    public ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
    {
        if (_fault is Exception fault)
        {
            return ValueTask.FromException(fault);
        }
        ObjectDisposedException.ThrowIf(_stopping, this);
        // Spins inside FasterLog when its in-memory log is full, as it does for its own samples' producers.
        long address = _log.Enqueue(payload.Span);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _registered.Enqueue((address, done));
        if (_fault is Exception late)
        {
            done.TrySetException(late); // the tracker faulted after the check above and may not see this one
        }
        if (Volatile.Read(ref _trackerIdle) == 1 && Interlocked.Exchange(ref _trackerIdle, 0) == 1)
        {
            _wake.Release();
        }
        return new ValueTask(done.Task);
    }

    /// <summary>Takes new registrations, completes what is committed; true when a commit is due.</summary>
    private bool Settle()
    {
        while (_registered.TryDequeue(out (long Address, TaskCompletionSource Done) r))
        {
            _waiting.Enqueue(r.Done, r.Address);
        }
        long committed = _log.CommittedUntilAddress;
        while (_waiting.TryPeek(out TaskCompletionSource? done, out long address) && address < committed)
        {
            _waiting.Dequeue();
            done.TrySetResult();
            Interlocked.Increment(ref _acks);
        }
        return _log.TailAddress > committed;
    }

    /// <summary>
    /// Announces that the tracker is about to sleep, then looks once more: an append that enqueued before the
    /// announcement is seen here, one after it sees the flag and wakes the tracker. False when there is work.
    /// </summary>
    private bool GoIdle()
    {
        Volatile.Write(ref _trackerIdle, 1);
        if (_registered.IsEmpty && _log.TailAddress <= _log.CommittedUntilAddress && !_stopping)
        {
            return true;
        }
        Volatile.Write(ref _trackerIdle, 0);
        return false;
    }

    /// <summary>True when the tracker may stop: asked to, and nothing is left to acknowledge.</summary>
    private bool Finished => _stopping && _waiting.Count == 0 && _registered.IsEmpty;

    private void TrackSpinning(TaskCompletionSource stopped)
    {
        try
        {
            while (!Finished)
            {
                if (Settle())
                {
                    _log.Commit(spinWait: true);
                    Interlocked.Increment(ref _commitCalls);
                    continue;
                }
                if (GoIdle())
                {
                    _wake.Wait(s_idleWaitMax);
                    Volatile.Write(ref _trackerIdle, 0);
                }
            }
            stopped.TrySetResult();
        }
        catch (Exception e) // a failed commit faults this instance; the run reports it
        {
            Fault(e);
            stopped.TrySetResult();
        }
    }

    private async Task TrackAsync()
    {
        try
        {
            while (!Finished)
            {
                if (Settle())
                {
                    await _log.CommitAsync();
                    Interlocked.Increment(ref _commitCalls);
                    continue;
                }
                if (GoIdle())
                {
                    await _wake.WaitAsync(s_idleWaitMax);
                    Volatile.Write(ref _trackerIdle, 0);
                }
            }
        }
        catch (Exception e) // a failed commit faults this instance; the run reports it
        {
            Fault(e);
        }
    }

    private void Fault(Exception e)
    {
        _fault = e;
        while (_registered.TryDequeue(out (long Address, TaskCompletionSource Done) r))
        {
            _waiting.Enqueue(r.Done, r.Address);
        }
        while (_waiting.TryDequeue(out TaskCompletionSource? done, out _))
        {
            done.TrySetException(e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stopping)
        {
            return;
        }
        _stopping = true;
        _wake.Release();
        // The tracker acknowledges what is registered, then ends; a commit that never returns must not hang the run.
        bool trackerStopped = true;
        try
        {
            await _tracker.WaitAsync(s_stopWaitMax);
        }
        catch (TimeoutException)
        {
            trackerStopped = false;
        }
        bool watchdogStopped = _watchdog.Stop(s_stopWaitMax);
        if (!trackerStopped || !watchdogStopped)
        {
            throw new TimeoutException($"FasterLog commit tracker or watchdog did not stop within {s_stopWaitMax}");
        }
        _log.Dispose();
        _device.Dispose();
        _wake.Dispose();
    }
}
