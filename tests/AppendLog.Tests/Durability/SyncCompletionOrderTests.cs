using AppendLog.Appender;
using AppendLog.Io;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Durability;

/// <summary>
/// Two syncs of one log in flight, the earlier one failing but reported after the later one succeeded: nothing may
/// become durable. After a failed fdatasync the kernel may have dropped the pages it could not write, so the later
/// sync's success says nothing about the earlier range (the durability contract, docs/internals.md section 2).
/// Drives the real writer, scheduler and I/O threads over the simulator, holding the failed sync's completion.
/// </summary>
[CancelAfter(60_000)]
public sealed class SyncCompletionOrderTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private static readonly IoWorkers s_io = new(4, "sync-order-io");

    [Test]
    public async Task ALaterSyncSucceedingFirst_AcknowledgesNothing_WhenTheEarlierSyncFails()
    {
        var storage = new SimulatedStorage(seed: 7);
        var options = new LogOptions { Directory = "/sim/order", FlushPolicy = FlushPolicy.GroupCommit };
        await using var log = await SegmentedLog.OpenAsync(options, storage, s_io, CancellationToken.None).AsTask().WaitAsync(Bound);
        await log.AppendAsync(Payload.Create(0, 500)).AsTask().WaitAsync(Bound); // the file and its entry are durable
        long durableBefore = log.DurableEndOffset;

        using var firstFailed = new ManualResetEventSlim();
        using var releaseFirst = new ManualResetEventSlim();
        using var secondDone = new ManualResetEventSlim();
        int syncs = 0;
        storage.AfterOperation = (operation, _, failure) =>
        {
            if (operation != StorageOperation.SyncData)
            {
                return;
            }

            int n = Interlocked.Increment(ref syncs);
            if (n == 1)
            {
                Assert.That(failure, Is.Not.Null, "the first sync is the one made to fail");
                firstFailed.Set();
                releaseFirst.Wait(); // its completion reaches the log only after the second sync's
            }
            else if (n == 2)
            {
                secondDone.Set();
            }
        };
        storage.InjectError(StorageOperation.SyncData, 1);

        Task first, second, flush;
        try
        {
            first = log.AppendAsync(Payload.Create(1, 500)).AsTask();
            Assert.That(firstFailed.Wait(Bound), Is.True, "the first sync ran and failed");

            second = log.AppendAsync(Payload.Create(2, 500)).AsTask();
            flush = log.FlushAsync().AsTask(); // a flush request starts an overlapping sync at once
            Assert.That(secondDone.Wait(Bound), Is.True, "the second sync ran while the first was held");
            await Task.Delay(200); // the second sync's completion has been processed by now

            Assert.That(second.IsCompleted, Is.False, "nothing past a sync still running is acknowledged");
            Assert.That(first.IsCompleted, Is.False);
            Assert.That(log.DurableEndOffset, Is.EqualTo(durableBefore), "durability did not move past the held sync");
        }
        finally
        {
            releaseFirst.Set(); // whatever failed above, the held I/O thread goes on (disposal waits for it)
        }

        var fault = Assert.ThrowsAsync<LogFaultedException>(async () => await second.WaitAsync(Bound));
        Assert.ThrowsAsync<LogFaultedException>(async () => await first.WaitAsync(Bound));
        Assert.ThrowsAsync<LogFaultedException>(async () => await flush.WaitAsync(Bound));
        Assert.That(fault!.InnerException, Is.InstanceOf<StorageIOException>());
        Assert.That(log.DurableEndOffset, Is.EqualTo(durableBefore));
    }
}
