using AppendLog.Diagnostics;

namespace AppendLog.Appender;

/// <summary>A unit of blocking I/O (pwrite, fdatasync, fallocate, seal) run on an <see cref="IoWorkers"/> thread.</summary>
internal interface IIoWork
{
    /// <summary>
    /// Performs the system calls, then reports back to its owner. Must not throw: failures of the call and of the
    /// owner's bookkeeping fault the owning log (a worker that sees an exception anyway keeps running).
    /// </summary>
    void Execute();
}

/// <summary>
/// Where a log's blocking I/O runs: <see cref="IoWorkers"/> in production; in tests a seeded executor that runs the
/// posted works one at a time, in an order drawn from a seed, on the test's thread (so a seed replays the exact order in
/// which writes, syncs, reservations and seals complete).
/// </summary>
internal interface IIoExecutor
{
    /// <summary>Runs <paramref name="work"/> later, on a thread of the executor's choosing. Never throws.</summary>
    void Post(IIoWork work);
}

/// <summary>
/// A small set of dedicated threads that perform every blocking system call of every log in the process.
/// Dedicated rather than the .NET thread pool because the pool also runs the appenders' continuations: a
/// pwrite queued behind a burst of continuations would add their run time to every append's latency, and
/// blocking pool threads makes the pool inject more. The queue is unbounded in type but bounded in practice: a log
/// has at most one write per chunk it holds (the pool's budget bounds chunks), <c>PipelineTuning.SyncsInFlightMax</c>
/// syncs, one allocation, one preparation and a seal per rolled segment queued.
/// <para>
/// Elastic between a minimum and a maximum: when work is queued and no worker is idle, another worker starts (up to
/// the maximum); a worker beyond the minimum that has waited a while (5 s by default) without work ends. A pwrite with
/// O_DIRECT holds its thread until the device has the data (about 60-90 µs here), so writes of many logs at once need
/// that many threads in flight to use the device's parallelism: measured with a C program over 1,000 files, 4 threads
/// made 23k 4 KiB writes/s, 16 threads 53k, 32 threads 74k. One busy log never needs more than a few (a write per
/// chunk it fills and its syncs), so the pool stays at its minimum for it.
/// </para>
/// <para>
/// Work posted while a worker runs a completion handler (a log's next sync once its last write is done, a deferred
/// write) is kept for that same worker to run next, so the common write → sync chain costs no thread hand-off; any
/// further work posted meanwhile goes through the queue to the other workers.
/// </para>
/// </summary>
internal sealed class IoWorkers : IIoExecutor
{
    private readonly object _lock = new(); // Monitor.Wait/Pulse need a plain object
    private readonly Queue<IIoWork> _queue = new();
    private readonly string _name;
    private readonly int _minimum;
    private readonly int _maximum;
    private readonly TimeSpan _idleExit;
    private int _threads;
    private int _started;
    private int _idle;

    // Pulses sent to idle workers that have not woken yet: an idle worker already pulsed cannot take more work, so a
    // post counts only the idle workers not yet woken (else posts in a burst would all pulse the same sleeper and
    // start no worker). Never more than _idle.
    private int _wakeups;
    private long _handedOn;
    private long _queued;

    /// <summary>The workers this thread belongs to, when it is one of them.</summary>
    [ThreadStatic]
    private static IoWorkers? t_owner;

    /// <summary>The work this worker runs next without going through the queue.</summary>
    [ThreadStatic]
    private static IIoWork? t_next;

    /// <summary>Creates <paramref name="threadCount"/> background threads, growing to <paramref name="maximumThreads"/> when work waits.</summary>
    /// <param name="threadCount">Workers kept at all times.</param>
    /// <param name="name">The threads' name prefix.</param>
    /// <param name="maximumThreads">The most workers while work waits; <paramref name="threadCount"/> when null (fixed).</param>
    /// <param name="idleExit">How long a worker beyond the minimum waits for work before it ends; 5 s when null.</param>
    public IoWorkers(int threadCount, string name, int? maximumThreads = null, TimeSpan? idleExit = null)
    {
        Invariant.Assert(threadCount >= 1, "at least one I/O worker");
        Invariant.Assert(maximumThreads is null || maximumThreads >= threadCount, "the maximum is at least the minimum");
        _name = name;
        _minimum = threadCount;
        _maximum = maximumThreads ?? threadCount;
        _idleExit = idleExit ?? TimeSpan.FromSeconds(5);
        lock (_lock)
        {
            for (int i = 0; i < threadCount; i++)
            {
                StartWorkerUnsynchronized();
            }
        }
    }

    /// <summary>
    /// The process-wide workers: twice the core count (at least 4, at most 16) always, up to 64 while work waits.
    /// Threads wait in syscalls most of the time; 4 lets a sync overlap the writes of the next group on this 2-core
    /// machine; many logs writing at once grow it.
    /// </summary>
    public static IoWorkers Shared { get; } = new(Math.Clamp(Environment.ProcessorCount * 2, 4, 16), "AppendLog-io", maximumThreads: 64);

    /// <summary>Workers running now.</summary>
    public int ThreadCount
    {
        get
        {
            lock (_lock)
            {
                return _threads;
            }
        }
    }

    /// <summary>Works run next by the worker that posted them, without a hand-off (for tests and the load generator).</summary>
    public long HandedOnCount => Interlocked.Read(ref _handedOn);

    /// <summary>Works that went through the queue.</summary>
    public long QueuedCount => Interlocked.Read(ref _queued);

    /// <summary>
    /// Queues <paramref name="work"/>; a waiting thread picks it up at once. Posted from one of these workers while it
    /// has nothing kept yet, the work is kept for that worker to run next instead.
    /// </summary>
    public void Post(IIoWork work)
    {
        if (ReferenceEquals(t_owner, this) && t_next is null)
        {
            t_next = work;
            Interlocked.Increment(ref _handedOn);
            return;
        }

        Interlocked.Increment(ref _queued);
        lock (_lock)
        {
            _queue.Enqueue(work);
            if (_idle > _wakeups)
            {
                _wakeups++;
                Monitor.Pulse(_lock);
            }
            else if (_threads < _maximum)
            {
                StartWorkerUnsynchronized();
            }
        }
    }

    private void StartWorkerUnsynchronized()
    {
        _threads++;
        var thread = new Thread(Run) { IsBackground = true, Name = $"{_name}-{_started++}" };
        thread.Start();
    }

    private void Run()
    {
        t_owner = this;
        while (true)
        {
            IIoWork work;
            lock (_lock)
            {
                while (_queue.Count == 0)
                {
                    _idle++;
                    bool signalled = Monitor.Wait(_lock, _idleExit);
                    _idle--;
                    _wakeups = signalled ? _wakeups - 1 : Math.Min(_wakeups, _idle);
                    if (!signalled && _queue.Count == 0 && _threads > _minimum)
                    {
                        _threads--;
                        t_owner = null;
                        return;
                    }
                }

                work = _queue.Dequeue();
            }

            while (true)
            {
                RunContained(work);
                if (t_next is not { } next)
                {
                    break;
                }

                t_next = null;
                work = next;
            }
        }
    }

    private static void RunContained(IIoWork work)
    {
        try
        {
            work.Execute();
        }
        catch (Exception)
        {
            // IIoWork.Execute does not throw; if a bug makes it, this worker must live on for every other log in the
            // process (an unhandled exception on this thread would end the host process). The owner's own handler
            // catches and faults its log, so nothing reaches here in a correct build.
        }
    }
}
