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
/// A small set of dedicated threads that perform every blocking system call of every log in the process.
/// Dedicated rather than the .NET thread pool because the pool also runs the appenders' continuations: a
/// pwrite queued behind a burst of continuations would add their run time to every append's latency, and
/// blocking pool threads makes the pool inject more. The queue is unbounded in type but bounded in practice: a log
/// has at most one write per chunk it holds (the pool's budget bounds chunks), <c>PipelineTuning.SyncsInFlightMax</c>
/// syncs, one allocation, one preparation and a seal per rolled segment queued.
/// <para>
/// Work posted while a worker runs a completion handler (a log's next sync once its last write is done, a deferred
/// write) is kept for that same worker to run next, so the common write → sync chain costs no thread hand-off; any
/// further work posted meanwhile goes through the queue to the other workers.
/// </para>
/// </summary>
internal sealed class IoWorkers
{
    private readonly object _lock = new(); // Monitor.Wait/Pulse need a plain object
    private readonly Queue<IIoWork> _queue = new();
    private int _idle;
    private long _handedOn;
    private long _queued;

    /// <summary>The workers this thread belongs to, when it is one of them.</summary>
    [ThreadStatic]
    private static IoWorkers? t_owner;

    /// <summary>The work this worker runs next without going through the queue.</summary>
    [ThreadStatic]
    private static IIoWork? t_next;

    /// <summary>Creates <paramref name="threadCount"/> background threads.</summary>
    public IoWorkers(int threadCount, string name)
    {
        Invariant.Assert(threadCount >= 1, "at least one I/O worker");
        for (int i = 0; i < threadCount; i++)
        {
            var thread = new Thread(Run) { IsBackground = true, Name = $"{name}-{i}" };
            thread.Start();
        }
    }

    /// <summary>
    /// The process-wide workers: twice the core count, at least 4, at most 16. Threads wait in syscalls most of
    /// the time; 4 lets a sync overlap the writes of the next group on this 2-core machine.
    /// </summary>
    public static IoWorkers Shared { get; } = new(Math.Clamp(Environment.ProcessorCount * 2, 4, 16), "AppendLog-io");

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
            if (_idle > 0)
            {
                Monitor.Pulse(_lock);
            }
        }
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
                    Monitor.Wait(_lock);
                    _idle--;
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
