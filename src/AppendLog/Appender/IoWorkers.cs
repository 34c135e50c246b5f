using AppendLog.Diagnostics;

namespace AppendLog.Appender;

/// <summary>A unit of blocking I/O (pwrite, fdatasync, fallocate, seal) run on an <see cref="IoWorkers"/> thread.</summary>
internal interface IIoWork
{
    /// <summary>Performs the system calls, then reports back to its owner. Must not throw.</summary>
    void Execute();
}

/// <summary>
/// A small set of dedicated threads that perform every blocking system call of every log in the process.
/// Dedicated rather than the .NET thread pool because the pool also runs the appenders' continuations: a
/// pwrite queued behind a burst of continuations would add their run time to every append's latency, and
/// blocking pool threads makes the pool inject more. The queue is unbounded in type but bounded in practice:
/// each log has at most <c>LogOptions.MaximumWritesInFlight</c> writes plus one sync and one allocation queued.
/// </summary>
internal sealed class IoWorkers
{
    private readonly object _lock = new(); // Monitor.Wait/Pulse need a plain object
    private readonly Queue<IIoWork> _queue = new();
    private int _idle;

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

    /// <summary>Queues <paramref name="work"/>; a waiting thread picks it up at once.</summary>
    public void Post(IIoWork work)
    {
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

            work.Execute();
        }
    }
}
