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

    private sealed class Throwing : IIoWork
    {
        public void Execute() => throw new InvalidOperationException("a bug");
    }

    private class Signal : IIoWork
    {
        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Thread? Thread { get; private set; }

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
