using System.Runtime.Versioning;
using AppendLog.Diagnostics;
using AppendLog.Io.Uring;
using Microsoft.Win32.SafeHandles;

namespace AppendLog.Appender;

/// <summary>
/// An I/O loop for many logs: one dedicated thread owns an io_uring ring, takes the writes and data syncs that every
/// log of a <see cref="LogManager"/> posts, submits all that waited in one <c>io_uring_enter</c>, and runs their
/// completion handlers as the completions come back, in batches. An O_DIRECT write then holds no thread of ours while
/// the device works (with <see cref="IoWorkers"/> each write holds one for 55-100 µs), and writes of many logs reach
/// the block layer in one call. Every other work (allocation, preparation, seal, retention, and any write or sync
/// whose <see cref="IRingWork.BeginRing"/> answers none) goes to the fallback executor unchanged.
/// </summary>
/// <remarks>
/// <para><b>Posting.</b> Another thread adds the work to a list under a lock and signals the loop's eventfd only
/// when the loop sleeps in the kernel (<see cref="IoUringWakeup"/>); a loop that is awake takes the list on its next
/// turn. Work posted by a completion handler (a log's next sync once its write completed) is kept on the loop's own
/// list and goes out with the next submission, no lock and no signal.</para>
/// <para><b>Completions.</b> Reaped in batches; the handlers run on the loop thread (under each log's lock, as on an
/// I/O worker), and the appends they complete, across logs, share thread-pool work items of up to 16 waiters, queued
/// after each pass.</para>
/// <para><b>Bounds.</b> At most as many operations in flight as the ring's completion entries; works beyond that
/// wait on the loop's list (each log bounds its own writes by its chunks and its syncs by
/// <see cref="PipelineTuning.SyncsInFlightMax"/>).</para>
/// <para><b>Failure.</b> An operation's error (−errno) is the work's error, reported to its log as the system call's
/// would be. Should the ring itself fail (io_uring_enter refusing), the loop stops using it: works in flight are
/// completed with EIO (their logs fault), and every later work runs on the fallback.</para>
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed class RingIoLoop : IIoExecutor, IDisposable
{
    private const ulong WakeTag = ulong.MaxValue;
    private const int EIO = 5;

    private readonly IIoExecutor _fallback;
    private readonly Lock _gate = new();
    private readonly int _entries;
    private readonly Thread _thread;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private List<IIoWork> _incoming = []; // guarded by _gate
    private bool _sleeping;               // guarded: the loop waits in the kernel for a completion or a signal
    private bool _stopping;               // guarded
    private bool _broken;                 // guarded: the ring failed; every work goes to the fallback

    // Loop-thread state.
    private List<IIoWork> _taken = [];
    private readonly List<IIoWork> _local = []; // posted on the loop thread, or waiting for room in the ring
    private (IRingWork Work, SafeFileHandle Handle)[] _slots = [];
    private readonly Stack<int> _freeSlots = new();
    private int _loopThreadId;
    private IoUringWakeup? _wakeup;

    private long _enters;
    private long _signals;
    private long _writes;
    private long _dataSyncs;

    private RingIoLoop(string name, int entries, IIoExecutor fallback)
    {
        _entries = entries;
        _fallback = fallback;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>System calls that submitted or waited (io_uring_enter): the loop's wake-ups are at most this many.</summary>
    public long Enters => Volatile.Read(ref _enters);

    /// <summary>Writes handed to the kernel through the ring.</summary>
    public long Writes => Volatile.Read(ref _writes);

    /// <summary>Data syncs handed to the kernel through the ring.</summary>
    public long DataSyncs => Volatile.Read(ref _dataSyncs);

    /// <summary>Signals sent by posters to a sleeping loop.</summary>
    public long Signals => Interlocked.Read(ref _signals);

    /// <summary>
    /// Starts a loop, or answers why not: io_uring missing or refused here (<see cref="IoUringSupport.Probe"/>), or the
    /// ring could not be set up. Blocks until the loop's thread has its ring (a few hundred microseconds).
    /// </summary>
    /// <param name="name">The thread's name.</param>
    /// <param name="fallback">Where works that are not ring operations run.</param>
    /// <param name="reason">Why no loop was started, when null is returned.</param>
    /// <param name="entries">Submission entries of the ring.</param>
    public static RingIoLoop? TryStart(string name, IIoExecutor fallback, out string? reason, int entries = 256)
    {
        var probe = IoUringSupport.Probe();
        if (!probe.IsSupported)
        {
            reason = probe.Reason;
            return null;
        }

        var loop = new RingIoLoop(name, entries, fallback);
        try
        {
            loop._ready.Task.GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            loop._thread.Join();
            reason = e.Message;
            return null;
        }

        reason = null;
        return loop;
    }

    /// <inheritdoc/>
    public void Post(IIoWork work)
    {
        if (Environment.CurrentManagedThreadId == _loopThreadId)
        {
            _local.Add(work); // a completion handler's next work: out with the next submission
            return;
        }

        bool accepted;
        bool signal = false;
        lock (_gate)
        {
            accepted = !_broken && !_stopping;
            if (accepted)
            {
                _incoming.Add(work);
                signal = _sleeping;
                _sleeping = false;
            }
        }

        if (!accepted)
        {
            _fallback.Post(work);
        }
        else if (signal)
        {
            Interlocked.Increment(ref _signals);
            _wakeup!.Signal();
        }
    }

    /// <summary>Stops the loop once the works in flight completed; later posts run on the fallback.</summary>
    public void Dispose()
    {
        bool signal;
        lock (_gate)
        {
            if (_stopping)
            {
                return;
            }
            _stopping = true;
            signal = _sleeping;
            _sleeping = false;
        }
        if (signal)
        {
            _wakeup!.Signal();
        }
        if (Environment.CurrentManagedThreadId != _loopThreadId)
        {
            _thread.Join();
        }
    }

    private void Run()
    {
        _loopThreadId = Environment.CurrentManagedThreadId;
        LogWriter.BatchCompletionsOnThisThread();
        IoUring ring;
        try
        {
            ring = new IoUring(_entries);
            _wakeup = new IoUringWakeup(WakeTag);
        }
        catch (Exception e)
        {
            _ready.SetException(e);
            return;
        }

        _slots = new (IRingWork, SafeFileHandle)[ring.CompletionEntries];
        for (int i = _slots.Length - 1; i >= 0; i--)
        {
            _freeSlots.Push(i);
        }
        _ready.SetResult();

        var completions = new IoUringCompletion[Math.Min(ring.CompletionEntries, 1024)];
        try
        {
            while (true)
            {
                bool stop;
                lock (_gate)
                {
                    (_taken, _incoming) = (_incoming, _taken);
                    stop = _stopping && _taken.Count == 0;
                }

                _local.AddRange(_taken);
                _taken.Clear();
                PrepareWaiting(ring);
                int inFlight = ring.InFlight + ring.Prepared - (_wakeup.IsArmed ? 1 : 0);
                if (stop && _local.Count == 0 && inFlight == 0)
                {
                    break;
                }

                // Works still waiting mean the ring is full: a completion will come, no signal is needed. Otherwise
                // sleep until a completion or a post's signal, unless a post arrived meanwhile.
                bool wait = true;
                if (_local.Count == 0)
                {
                    _wakeup.TryArm(ring); // a free entry is always kept for it (PrepareWaiting)
                    lock (_gate)
                    {
                        wait = _incoming.Count == 0 && (inFlight > 0 || !_stopping);
                        _sleeping = wait;
                    }
                }

                int prepared = ring.Prepared;
                if (prepared > 0 || wait)
                {
                    Volatile.Write(ref _enters, _enters + 1); // the loop is the only writer of its counters
                    ring.SubmitAndWait(wait ? 1 : 0);
                }

                if (wait)
                {
                    lock (_gate)
                    {
                        _sleeping = false;
                    }
                }

                int reaped;
                while ((reaped = ring.Reap(completions)) > 0)
                {
                    for (int i = 0; i < reaped; i++)
                    {
                        Complete(completions[i]);
                    }
                }

                LogWriter.FlushCompletionBatch(); // the waiters this pass completed, across logs, in groups
            }

            _wakeup.Release();
            while (_wakeup.IsArmed)
            {
                ring.SubmitAndWait(1);
                int reaped = ring.Reap(completions);
                for (int i = 0; i < reaped; i++)
                {
                    _ = _wakeup.TryConsume(completions[i]);
                }
            }
            ring.Dispose();
            _wakeup.Dispose();
        }
        catch (Exception e)
        {
            _ = e; // the works' own errors (EIO) carry the failure to their logs
            Break();
        }
        finally
        {
            LogWriter.FlushCompletionBatch();
        }
    }

    /// <summary>Prepares the loop's waiting works in order while the ring has room, keeping one entry for the wake-up read.</summary>
    private void PrepareWaiting(IoUring ring)
    {
        int next = 0;
        for (; next < _local.Count; next++)
        {
            var work = _local[next];
            if (work is not IRingWork ringWork)
            {
                _fallback.Post(work);
                continue;
            }

            if (ring.FreeEntries <= 1 || _freeSlots.Count == 0)
            {
                break;
            }

            if (!TryPrepare(ring, ringWork))
            {
                _fallback.Post(work);
            }
        }

        _local.RemoveRange(0, next);
    }

    private unsafe bool TryPrepare(IoUring ring, IRingWork work)
    {
        RingOperation op;
        try
        {
            op = work.BeginRing();
        }
        catch (Exception)
        {
            return false; // Execute runs it and reports whatever fails there
        }
        if (op.Kind == RingOperationKind.None || op.Handle is null)
        {
            return false;
        }

        bool added = false;
        try
        {
            op.Handle.DangerousAddRef(ref added); // the descriptor stays open (and its number unused) until the completion
        }
        catch (ObjectDisposedException)
        {
        }
        if (!added)
        {
            _ = work.CompleteRing(-EIO); // BeginRing's bookkeeping is undone through the normal error path
            return true;
        }

        int slot = _freeSlots.Pop();
        _slots[slot] = (work, op.Handle);
        int fd = (int)op.Handle.DangerousGetHandle();
        bool prepared = op.Kind == RingOperationKind.Write
            ? ring.TryPrepareWrite(fd, (byte*)op.Buffer, op.Length, op.Position, (ulong)slot, linkNext: false)
            : ring.TryPrepareDataSync(fd, (ulong)slot, linkNext: false);
        Invariant.Assert(prepared, "the ring had room for the operation (checked before BeginRing)");
        if (op.Kind == RingOperationKind.Write)
        {
            Volatile.Write(ref _writes, _writes + 1);
        }
        else
        {
            Volatile.Write(ref _dataSyncs, _dataSyncs + 1);
        }
        return true;
    }

    private void Complete(IoUringCompletion completion)
    {
        if (_wakeup!.TryConsume(completion))
        {
            return;
        }

        int slot = (int)completion.UserData;
        var (work, handle) = _slots[slot];
        _slots[slot] = default;
        _freeSlots.Push(slot);
        handle.DangerousRelease();
        bool done;
        try
        {
            done = work.CompleteRing(completion.Result);
        }
        catch (Exception)
        {
            done = true; // CompleteRing reports to its owner and does not throw; a bug must not stop the loop
        }
        if (!done)
        {
            _fallback.Post(work);
        }
    }

    /// <summary>The ring failed: works in flight complete with EIO, waiting and later works go to the fallback.</summary>
    private void Break()
    {
        List<IIoWork> waiting;
        lock (_gate)
        {
            _broken = true;
            waiting = [.. _local, .. _incoming];
            _local.Clear();
            _incoming.Clear();
        }

        for (int slot = 0; slot < _slots.Length; slot++)
        {
            if (_slots[slot] is ({ } work, { } handle))
            {
                _slots[slot] = default;
                handle.DangerousRelease();
                try
                {
                    if (!work.CompleteRing(-EIO))
                    {
                        _fallback.Post(work);
                    }
                }
                catch (Exception)
                {
                }
            }
        }

        foreach (var work in waiting)
        {
            _fallback.Post(work);
        }
    }
}
