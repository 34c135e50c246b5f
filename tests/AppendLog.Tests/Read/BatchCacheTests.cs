using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// The batch cache's scan resistance: batches read twice (the hot tail that several readers share) survive a scan of
/// any length; a sequential scan's batches (<see cref="BatchAdmission.Scan"/>) evict nothing; the budget holds under
/// any sequence of operations. A plain LRU fails the first two properties at the first scan of one cache size.
/// </summary>
public sealed class BatchCacheTests
{
    private const long Budget = 1024 * 1024;

    private static LogBatch Batch(int size) => new(0, 1, 0, 0, new byte[size]);

#pragma warning disable NUnit1027 // FsCheck generates the arguments; NUnit.Analyzers does not know that

    /// <summary>
    /// Property: hot batches that were found once after being added (as a tailing reader's batches are, by the readers
    /// behind the first) stay resident while 1 to 4 cache sizes of cold batches, each read once, go through the cache
    /// with normal admission (a reader that seeks, or one whose read-ahead never grew), in any sizes.
    /// </summary>
    [FsCheck.NUnit.Property(MaxTest = 100)]
    public bool HotBatches_SurviveAScanOfSeveralCacheSizes(byte hotCount, ushort[] coldSizes, byte scanCacheSizes)
    {
        var cache = new BatchCache(Budget);
        int hot = (hotCount % 40) + 1; // up to 40 × 16 KiB = 640 KiB, within the protected 80%
        for (int i = 0; i < hot; i++)
        {
            cache.Add(1, i, Batch(16 * 1024));
            if (!cache.TryGet(1, i, out _))
            {
                return false;
            }
        }

        long scanBytes = ((scanCacheSizes % 4) + 1) * Budget;
        long scanned = 0;
        var sizes = coldSizes is { Length: > 0 } ? coldSizes : [1000];
        for (int i = 0; scanned < scanBytes; i++)
        {
            int size = (sizes[i % sizes.Length] % 60_000) + 100;
            Assert.That(cache.TryGet(2, i, out _), Is.False, "a cold batch is read once");
            cache.Add(2, i, Batch(size));
            scanned += size;
        }

        return Enumerable.Range(0, hot).All(i => cache.Contains(1, i)) && cache.CachedBytes <= Budget;
    }

    /// <summary>
    /// Property: batches added once and never found again (a single tailing reader's probation entries) are not
    /// evicted by any amount of scan-admitted batches; scan batches fill only the room that is free.
    /// </summary>
    [FsCheck.NUnit.Property(MaxTest = 100)]
    public bool ScanAdmission_EvictsNothing(byte warmCount, ushort[] scanSizes)
    {
        var cache = new BatchCache(Budget);
        int warm = warmCount % 64;
        for (int i = 0; i < warm; i++)
        {
            cache.Add(1, i, Batch(8 * 1024));
        }

        var sizes = scanSizes is { Length: > 0 } ? scanSizes : [1000];
        for (int i = 0; i < 4 * Budget / 1024; i++)
        {
            long before = cache.CachedBytes;
            int size = (sizes[i % sizes.Length] % 60_000) + 100;
            bool expected = cache.WouldKeep(size, BatchAdmission.Scan);
            cache.Add(2, i, Batch(size), BatchAdmission.Scan);
            if (cache.Contains(2, i) != expected || (expected && cache.CachedBytes != before + size + BatchCache.EntryOverheadBytes))
            {
                return false;
            }
        }

        return Enumerable.Range(0, warm).All(i => cache.Contains(1, i)) && cache.CachedBytes <= Budget;
    }

    /// <summary>Property: under any sequence of adds (either admission) and lookups, the cache stays within its budget and its share.</summary>
    [FsCheck.NUnit.Property(MaxTest = 100)]
    public bool AnySequence_StaysWithinTheBudget((byte Op, byte Key, ushort Size)[] operations)
    {
        var cache = new BatchCache(Budget);
        foreach (var (op, key, size) in operations ?? [])
        {
            switch (op % 3)
            {
                case 0:
                    cache.Add(0, key, Batch((size * 4) + 1), BatchAdmission.Normal);
                    break;
                case 1:
                    cache.Add(0, key, Batch((size * 4) + 1), BatchAdmission.Scan);
                    break;
                default:
                    cache.TryGet(0, key, out _);
                    break;
            }

            if (cache.CachedBytes > Budget || cache.Count > 256)
            {
                return false;
            }
        }

        return true;
    }

#pragma warning restore NUnit1027

    [Test]
    public void AHit_PromotesTheBatch_SoFirstTouchesEvictOnlyOtherFirstTouches()
    {
        var cache = new BatchCache(Budget);
        int size = 64 * 1024;
        cache.Add(1, 0, Batch(size));
        cache.TryGet(1, 0, out _);
        for (int i = 1; i < 64; i++)
        {
            cache.Add(1, i, Batch(size));
        }

        Assert.Multiple(() =>
        {
            Assert.That(cache.Contains(1, 0), Is.True, "found once: protected");
            Assert.That(cache.Contains(1, 1), Is.False, "the oldest first touch went first");
            Assert.That(cache.Contains(1, 63), Is.True, "the newest first touch stays");
        });
    }

    [Test]
    public void TheProtectedSegment_KeepsItsShare_DemotingItsOldest()
    {
        var cache = new BatchCache(Budget);
        int size = 64 * 1024;
        for (int i = 0; i < 15; i++)
        {
            cache.Add(1, i, Batch(size));
            cache.TryGet(1, i, out _);
        }

        // 15 × (64 KiB + overhead) exceed 80% of 1 MiB: the oldest hits were demoted to probation, where a new first
        // touch that overflows the budget evicts them before any protected batch.
        cache.Add(1, 100, Batch(size));
        Assert.Multiple(() =>
        {
            Assert.That(cache.CachedBytes, Is.LessThanOrEqualTo(Budget));
            Assert.That(cache.Contains(1, 0), Is.False, "the oldest hit, demoted, went first");
            Assert.That(cache.Contains(1, 14), Is.True, "the newest hit stays protected");
            Assert.That(cache.Contains(1, 100), Is.True);
        });
    }

    /// <summary>
    /// Through logs: a hot log's batches, read twice, stay cached while a cold log four times the cache's size is
    /// scanned once beside them (records without copies): the third read of the hot log is all hits.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task AColdScanOfAnotherLog_LeavesTheHotLogCached()
    {
        using var dir = new TempDirectory("appendlog-cache");
        var cache = new BatchCache(Budget);
        LogOptions Options(string name) => new() { Directory = dir.File(name), BatchCache = cache, DirectIo = DirectIoMode.Preferred };
        await using var hot = await SegmentedLog.OpenAsync(Options("hot"));
        await using var cold = await SegmentedLog.OpenAsync(Options("cold"));
        var appends = new List<Task<long>>();
        for (int i = 0; i < 100; i++)
        {
            appends.Add(hot.AppendAsync(new byte[1000]).AsTask());
        }

        for (int i = 0; i < 4 * 1024; i++)
        {
            appends.Add(cold.AppendAsync(new byte[1000]).AsTask());
        }

        await Task.WhenAll(appends);
        int hotBatches = await CountBatchesAsync(hot);
        await CountBatchesAsync(hot); // found again: protected

        long coldRecords = 0;
        await foreach (var view in cold.ReadViewsAsync(0))
        {
            coldRecords += view.Value.Length == 1000 ? 1 : 0;
        }

        long hitsBefore = cache.Hits;
        Assert.That(await CountBatchesAsync(hot), Is.EqualTo(hotBatches));
        Assert.That(coldRecords, Is.EqualTo(4 * 1024));
        Assert.That(cache.Hits - hitsBefore, Is.EqualTo(hotBatches), "every hot batch is still cached");
    }

    private static async Task<int> CountBatchesAsync(SegmentedLog log)
    {
        int n = 0;
        await foreach (var unused in log.ReadBatchesAsync(0))
        {
            n++;
        }

        return n;
    }
}
