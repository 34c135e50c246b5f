using AppendLog.Appender;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// Where a reader's batches come from (<c>SegmentedLog.BatchSources</c>: cache, the writer's in-memory tail, disk),
/// counted apart so that a tailing reader served from the writer's buffers is not reported as a cache miss that read
/// the disk; and the hot tail of the active segment admitted to the cache even by a reader that reads ahead.
/// </summary>
[CancelAfter(60_000)]
public sealed class ReadSourceTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-read-source");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public async Task BatchesFromTheWritersTail_TheCache_AndTheDisk_AreCountedApart()
    {
        var options = new LogOptions { Directory = _dir.File("log"), BatchCache = new BatchCache(8 * 1024 * 1024) };
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 3; i++)
            {
                await log.AppendAsync(new byte[5000]); // 3 × ~5 KB: after a reopen the writer keeps only the last 4 KiB block
            }

            Assert.That(await CountAsync(log), Is.EqualTo(3));
            Assert.That(log.BatchSources, Is.EqualTo((0L, 3L, 0L)), "just durable: still in the writer's chunk");
            Assert.That(await CountAsync(log), Is.EqualTo(3));
            Assert.That(log.BatchSources, Is.EqualTo((3L, 3L, 0L)), "then cached");
        }

        await using (var reopened = await SegmentedLog.OpenAsync(options with { BatchCache = new BatchCache(0) }))
        {
            Assert.That(await CountAsync(reopened), Is.EqualTo(3));
            Assert.That(reopened.BatchSources, Is.EqualTo((0L, 0L, 3L)), "reopened, no cache: the disk");
        }
    }

    /// <summary>
    /// One reader scans a log of about 12 MiB (one active segment, nothing in the writer's memory after a reopen) with a
    /// cache of 8 MiB: once the cache is full its read-ahead batches are scan admissions (free room only), except in the
    /// last eighth of the budget before the durable end, which later tailing readers will read: those are cached.
    /// </summary>
    [Test]
    public async Task AScanningReader_CachesTheHotTailOfTheActiveSegment_ButNotTheColdMiddle()
    {
        const int Records = 12_000;
        var options = new LogOptions { Directory = _dir.File("log"), SegmentSize = 64L * 1024 * 1024 };
        await using (var writer = await SegmentedLog.OpenAsync(options))
        {
            await Task.WhenAll(Enumerable.Range(0, Records).Select(i => writer.AppendAsync(new byte[1000]).AsTask()));
        }

        await using var log = await SegmentedLog.OpenAsync(options with { BatchCache = new BatchCache(8 * 1024 * 1024) });
        Assert.That(log.SegmentCount, Is.EqualTo(1));
        Assert.That(await CountAsync(log), Is.EqualTo(Records));
        var before = log.BatchSources;
        Assert.That(before.Disk + before.Writer, Is.EqualTo(Records));
        Assert.That(before.Disk, Is.GreaterThanOrEqualTo(Records - 4), "the scan read every batch from disk but those in the kept last block");

        Assert.That(await CountAsync(log, from: Records - 100), Is.EqualTo(100));
        var tail = log.BatchSources;
        Assert.That(tail.Disk - before.Disk, Is.Zero, "the last batches (within 1 MiB of the end) were cached by the scan");
        Assert.That(tail.Cache - before.Cache, Is.GreaterThanOrEqualTo(100 - 4), "(a seek walks from the index entry before the offset, from the cache too)");

        Assert.That(await CountAsync(log, from: 9_000, count: 100), Is.EqualTo(100));
        Assert.That(log.BatchSources.Disk - tail.Disk, Is.GreaterThanOrEqualTo(100), "the middle (past the full cache, before the hot tail) was not");
    }

    /// <summary>
    /// Four readers miss the same hot-tail batch at once (a reopened log: nothing in the writer's memory; the disk's
    /// reads held back until all four have missed): one reads it from disk, the three others wait for that read and
    /// take the batch from the cache (single flight), instead of four disk reads of one batch.
    /// </summary>
    [Test]
    public async Task ReadersMissingTheSameHotTailBatchTogether_ReadItFromDiskOnce(CancellationToken cancellationToken)
    {
        var storage = new SimulatedStorage(Seeds.Get());
        var cache = new BatchCache(8 * 1024 * 1024);
        var options = new LogOptions { Directory = "/sim/log", BatchCache = cache };
        var log = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, cancellationToken);
        for (int i = 0; i < 100; i++)
        {
            await log.AppendAsync(new byte[1000], cancellationToken);
        }

        await log.DisposeAsync();
        await using var reopened = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, cancellationToken);
        using var gate = new ManualResetEventSlim(false);
        storage.BeforeOperation = (operation, _) =>
        {
            if (operation == StorageOperation.Read)
            {
                gate.Wait(cancellationToken);
            }
        };

        long missesBefore = cache.Misses;
        var readers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            await foreach (var batch in reopened.ReadBatchesAsync(0, cancellationToken))
            {
                return batch.BaseOffset;
            }

            return -1L;
        }, cancellationToken)).ToArray();
        while (cache.Misses - missesBefore < 4)
        {
            await Task.Delay(1, cancellationToken);
        }

        await Task.Delay(100, cancellationToken); // each reader goes on from its miss to the disk or to the read in flight
        gate.Set();
        Assert.That(await Task.WhenAll(readers), Is.All.EqualTo(0L));
        Assert.That(reopened.BatchSources, Is.EqualTo((3L, 0L, 1L)), "one disk read, three waited for it");
    }

    private static async Task<int> CountAsync(SegmentedLog log, long from = 0, int count = int.MaxValue)
    {
        int n = 0;
        await foreach (var batch in log.ReadBatchesAsync(from))
        {
            if (++n == count)
            {
                break;
            }
        }

        return n;
    }
}
