using System.Collections.Concurrent;
using AppendLog.Appender;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Durability;

/// <summary>
/// Syncs shared by the logs of a manager (<see cref="LogManagerOptions.ShareFileSystemSync"/>): when several logs wait
/// for a sync at once, one syncfs serves them all. Over the simulator: what was acknowledged survives a power cut, a
/// failed syncfs faults every log it served (nothing acknowledged that it did not make durable), and a lone log keeps
/// its own fdatasyncs. On the real file system: a manager with the option appends, serves syncs, and reads back.
/// </summary>
[CancelAfter(120_000)]
public sealed class SharedSyncTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private static readonly IoWorkers s_io = new(4, "shared-sync-io");

    private static async Task<List<SegmentedLog>> OpenLogsAsync(SimulatedStorage storage, SharedSync? shared, int count)
    {
        var logs = new List<SegmentedLog>();
        for (int i = 0; i < count; i++)
        {
            var options = new LogOptions { Directory = $"/sim/log-{i}", SharedSync = shared };
            logs.Add(await SegmentedLog.OpenAsync(options, storage, s_io, CancellationToken.None).AsTask().WaitAsync(Bound));
        }

        return logs;
    }

    /// <summary>Appends <paramref name="perLog"/> records to each log, each log from its own task; returns the acknowledged ids per log.</summary>
    private static async Task<ConcurrentDictionary<int, List<long>>> AppendConcurrentlyAsync(List<SegmentedLog> logs, int perLog, bool stopAtFault = false)
    {
        var acknowledged = new ConcurrentDictionary<int, List<long>>();
        await Task.WhenAll(logs.Select((log, index) => Task.Run(async () =>
        {
            var mine = acknowledged.GetOrAdd(index, static _ => []);
            for (int n = 0; n < perLog; n++)
            {
                long id = (index * 1_000_000L) + n;
                try
                {
                    await log.AppendAsync(Payload.Create(id, 300)).AsTask().WaitAsync(Bound);
                    mine.Add(id);
                }
                catch (LogFaultedException) when (stopAtFault)
                {
                    return;
                }
            }
        }))).WaitAsync(Bound);
        return acknowledged;
    }

    private static async Task<List<long>> ReadIdsAsync(SimulatedStorage storage, int index)
    {
        var options = new LogOptions { Directory = $"/sim/log-{index}" };
        await using var log = await SegmentedLog.OpenAsync(options, storage, s_io, CancellationToken.None).AsTask().WaitAsync(Bound);
        var ids = new List<long>();
        await foreach (var record in log.ReadAsync(0).WithCancellation(CancellationToken.None))
        {
            Assert.That(Payload.Check(record.Value, out long id), Is.Null, $"log {index} offset {record.Offset} intact");
            ids.Add(id);
        }

        return ids;
    }

    private static async Task DisposeAllAsync(List<SegmentedLog> logs)
    {
        foreach (var log in logs)
        {
            try
            {
                await log.DisposeAsync().AsTask().WaitAsync(Bound);
            }
            catch (Exception e) when (e is LogFaultedException or IOException)
            {
                // The storage crashed under it, or it faulted: closing is all that is left.
            }
        }
    }

    /// <summary>Holds each per-file fdatasync a little, so that the other logs' syncs pile up and a syncfs serves them.</summary>
    private static void SlowPerFileSyncs(SimulatedStorage storage) =>
        storage.BeforeOperation = (operation, _) =>
        {
            if (operation == StorageOperation.SyncData)
            {
                Thread.Sleep(2);
            }
        };

    [Test]
    public async Task AcknowledgedAppendsOfManyLogs_SurviveAPowerCut_WhenASyncfsServedThem([Values(1, 2, 3)] int seed)
    {
        var storage = new SimulatedStorage(seed);
        storage.CreateDirectory("/sim");
        var shared = new SharedSync(storage.OpenFileSystemSync("/sim")!, "shared-sync-test");
        var logs = await OpenLogsAsync(storage, shared, 8);
        SlowPerFileSyncs(storage);

        var acknowledged = await AppendConcurrentlyAsync(logs, 60);
        long fileSystemSyncs = storage.GetOperationCount(StorageOperation.SyncFileSystem);
        Assert.That(fileSystemSyncs, Is.GreaterThan(0), "with 8 logs waiting at once, a syncfs served some of them");
        Assert.That(shared.FileSystemSyncs, Is.EqualTo(fileSystemSyncs));
        Assert.That(shared.Syncs, Is.GreaterThan(shared.Rounds), "a round serves several logs' syncs (fewer wake-ups than syncs)");

        var crashed = storage.Crash(seed); // power cut: the logs are not closed
        await DisposeAllAsync(logs);
        shared.Dispose();

        for (int i = 0; i < logs.Count; i++)
        {
            var ids = await ReadIdsAsync(crashed, i);
            Assert.That(ids.Take(acknowledged[i].Count), Is.EqualTo(acknowledged[i]), $"log {i}: every acknowledged record, in order, survived");
        }
    }

    [Test]
    public async Task AFailedSyncfs_FaultsEveryLogItServed_AndNothingAcknowledgedIsLost([Values(1, 2)] int seed)
    {
        var storage = new SimulatedStorage(seed);
        storage.CreateDirectory("/sim");
        var shared = new SharedSync(storage.OpenFileSystemSync("/sim")!, "shared-sync-test");
        var logs = await OpenLogsAsync(storage, shared, 8);
        SlowPerFileSyncs(storage);
        storage.InjectError(StorageOperation.SyncFileSystem, 2);

        var acknowledged = await AppendConcurrentlyAsync(logs, 60, stopAtFault: true);
        Assert.That(storage.GetOperationCount(StorageOperation.SyncFileSystem), Is.GreaterThanOrEqualTo(2), "the failing syncfs ran");
        int faulted = 0;
        foreach (var log in logs)
        {
            try
            {
                await log.AppendAsync(Payload.Create(42, 300)).AsTask().WaitAsync(Bound);
            }
            catch (LogFaultedException)
            {
                faulted++;
            }
        }

        Assert.That(faulted, Is.GreaterThanOrEqualTo(SharedSync.FileSystemSyncThreshold), "every log whose sync the failed syncfs covered is faulted");

        var crashed = storage.Crash(seed);
        await DisposeAllAsync(logs);
        shared.Dispose();
        for (int i = 0; i < logs.Count; i++)
        {
            var ids = await ReadIdsAsync(crashed, i);
            Assert.That(ids.Take(acknowledged[i].Count), Is.EqualTo(acknowledged[i]), $"log {i}: every acknowledged record survived");
        }
    }

    [Test]
    public async Task ALoneLog_RunsItsOwnFdatasync()
    {
        var storage = new SimulatedStorage(5);
        storage.CreateDirectory("/sim");
        using var shared = new SharedSync(storage.OpenFileSystemSync("/sim")!, "shared-sync-test");
        var logs = await OpenLogsAsync(storage, shared, 1);
        long syncs = storage.GetOperationCount(StorageOperation.SyncData);
        for (int n = 0; n < 50; n++)
        {
            await logs[0].AppendAsync(Payload.Create(n, 300)).AsTask().WaitAsync(Bound);
        }

        Assert.That(storage.GetOperationCount(StorageOperation.SyncFileSystem), Is.Zero, "one log waiting: fdatasync of its file, no syncfs");
        Assert.That(storage.GetOperationCount(StorageOperation.SyncData) - syncs, Is.GreaterThan(0));
        Assert.That(shared.Syncs, Is.GreaterThan(0), "its syncs went through the shared threads");
        await DisposeAllAsync(logs);
    }

    [Test]
    public async Task AManagerSharingSyncs_AppendsToManyLogs_AndReadsThemBack([Values] bool share)
    {
        using var temp = new TempDirectory();
        var options = new LogManagerOptions { RootDirectory = temp.Path, ShareFileSystemSync = share };
        var names = Enumerable.Range(0, 6).Select(static i => $"p{i}").ToArray();
        await using (var manager = LogManager.Create(options))
        {
            var logs = await manager.OpenAsync(names).AsTask().WaitAsync(Bound);
            await Task.WhenAll(logs.Select(log => Task.Run(async () =>
            {
                var pending = new List<Task>();
                for (int n = 0; n < 200; n++)
                {
                    pending.Add(log.AppendAsync(Payload.Create(n, 300)).AsTask());
                }

                await Task.WhenAll(pending);
            }))).WaitAsync(Bound);

            var (rounds, _, syncs) = manager.SharedSyncCounts;
            if (share && OperatingSystem.IsLinux())
            {
                Assert.That(syncs, Is.GreaterThan(0), "the logs' syncs went through the shared threads");
                Assert.That(rounds, Is.GreaterThan(0).And.LessThanOrEqualTo(syncs));
            }
            else if (!share)
            {
                Assert.That(syncs, Is.Zero, "off: each log syncs on its own");
            }
        }

        await using var reopened = LogManager.Create(options with { ShareFileSystemSync = false });
        foreach (string name in names)
        {
            var log = await reopened.GetOrOpenAsync(name).AsTask().WaitAsync(Bound);
            Assert.That(log.EndOffset, Is.EqualTo(200), $"{name}: every append is there after the close");
        }
    }
}
