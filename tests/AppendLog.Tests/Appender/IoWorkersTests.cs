using AppendLog.Appender;
using NUnit.Framework;

namespace AppendLog.Tests.Appender;

[CancelAfter(30_000)]
public sealed class IoWorkersTests
{
    [Test]
    public async Task AWorkThatThrows_LeavesTheWorkerRunning()
    {
        var workers = new IoWorkers(1, "test-io");
        workers.Post(new Throwing());
        var done = new Signal();
        workers.Post(done);
        Assert.That(await Task.WhenAny(done.Completion.Task, Task.Delay(TimeSpan.FromSeconds(10))), Is.SameAs(done.Completion.Task));
    }

    [Test]
    public async Task WorkPostedFromAWorker_RunsNextOnThatWorker_WithoutTheQueue()
    {
        var workers = new IoWorkers(2, "test-io");
        var second = new Signal();
        var first = new Chain(workers, second);
        workers.Post(first);
        await second.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(second.Thread, Is.SameAs(first.Thread), "the chained work ran on the worker that posted it");
        Assert.That(workers.HandedOnCount, Is.EqualTo(1));
        Assert.That(workers.QueuedCount, Is.EqualTo(1));
    }

    [Test]
    public async Task WorkWaitingWithNoIdleWorker_StartsAnother_UpToTheMaximum_AndIdleOnesEnd()
    {
        var workers = new IoWorkers(1, "test-io", maximumThreads: 4, idleExit: TimeSpan.FromMilliseconds(100));
        using var allRunning = new Barrier(4);
        var blocked = Enumerable.Range(0, 4).Select(_ => new Blocking(allRunning)).ToArray();
        foreach (var work in blocked)
        {
            workers.Post(work);
        }

        // Each work waits until all four run at once: only four threads make that happen.
        await Task.WhenAll(blocked.Select(static b => b.Completion.Task)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(blocked.Select(static b => b.Thread).Distinct().Count(), Is.EqualTo(4));
        Assert.That(workers.ThreadCount, Is.EqualTo(4));

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (workers.ThreadCount > 1 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.That(workers.ThreadCount, Is.EqualTo(1), "workers beyond the minimum end when idle");
        var after = new Signal();
        workers.Post(after);
        await after.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Test]
    public async Task AFixedSet_NeverGrows()
    {
        var workers = new IoWorkers(2, "test-io");
        var works = Enumerable.Range(0, 20).Select(_ => new Signal()).ToArray();
        foreach (var work in works)
        {
            workers.Post(work);
        }

        await Task.WhenAll(works.Select(static w => w.Completion.Task)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(workers.ThreadCount, Is.EqualTo(2));
    }

    private sealed class Blocking(Barrier allRunning) : Signal
    {
        public override void Execute()
        {
            Thread = Thread.CurrentThread;
            if (allRunning.SignalAndWait(TimeSpan.FromSeconds(5)))
            {
                Completion.TrySetResult();
            }
            else
            {
                Completion.TrySetException(new TimeoutException("the four works never ran at once"));
            }
        }
    }

    private sealed class Throwing : IIoWork
    {
        public void Execute() => throw new InvalidOperationException("a bug");
    }

    private class Signal : IIoWork
    {
        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Thread? Thread { get; protected set; }

        public virtual void Execute()
        {
            Thread = Thread.CurrentThread;
            Completion.SetResult();
        }
    }

    private sealed class Chain(IoWorkers workers, IIoWork next) : Signal
    {
        public override void Execute()
        {
            workers.Post(next);
            base.Execute();
        }
    }
}
