using AppendLog.Diagnostics;
using AppendLog.Testing;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Log;

/// <summary>Where reads come from (cache, the writer's buffers, the disk), and what they do when the log changes under them.</summary>
public sealed class ReadPathTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public async Task TailReader_GetsFreshRecordsFromTheWritersBuffers_WithoutReadingTheDisk()
    {
        using var bytesRead = new MetricCollector<long>(AppendLogMetrics.BytesRead);
        await using var log = await SegmentedLog.OpenAsync(Options() with { BatchCache = new BatchCache(0) });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var received = new List<long>();
        var tail = Task.Run(async () =>
        {
            await foreach (var r in log.TailAsync(0, cts.Token))
            {
                received.Add(BitConverter.ToInt64(r.Value));
                if (received.Count == 200)
                {
                    return;
                }
            }
        });

        long before = bytesRead.GetMeasurementSnapshot().Sum(m => m.Value);
        for (long i = 0; i < 200; i++)
        {
            await log.AppendAsync(BitConverter.GetBytes(i));
        }

        await tail.WaitAsync(cts.Token);
        Assert.That(received, Is.EqualTo(Enumerable.Range(0, 200).Select(i => (long)i)));
        Assert.That(bytesRead.GetMeasurementSnapshot().Sum(m => m.Value) - before, Is.Zero, "every record came from the writer's chunks (the cache is disabled)");
    }

    [Test]
    public async Task SuffixTruncation_NeverLetsTheCacheServeTheOldContent()
    {
        var cache = new BatchCache(8 * 1024 * 1024);
        await using var log = await SegmentedLog.OpenAsync(Options() with { BatchCache = cache });
        for (int i = 0; i < 50; i++)
        {
            await log.AppendAsync(new[] { (byte)'a', (byte)i });
        }

        Assert.That(await ValuesAsync(log, 0), Has.Count.EqualTo(50));
        Assert.That(await ValuesAsync(log, 0), Has.Count.EqualTo(50));
        Assert.That(cache.Hits, Is.GreaterThanOrEqualTo(50), "the second read came from the cache");

        await log.TruncateSuffixAsync(20);
        for (int i = 20; i < 50; i++)
        {
            await log.AppendAsync(new[] { (byte)'b', (byte)i });
        }

        var values = await ValuesAsync(log, 0);
        Assert.That(values.Take(20).All(v => v[0] == 'a'), Is.True);
        Assert.That(values.Skip(20).All(v => v[0] == 'b'), Is.True, "records after the cut are the new ones, at the same positions");
        Assert.That(values.Select(v => (int)v[1]), Is.EqualTo(Enumerable.Range(0, 50)));
    }

    [Test]
    public async Task TailReader_PastTheCut_EndsWithLogTruncatedException_ButOneBeforeItContinues()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        for (int i = 0; i < 30; i++)
        {
            await log.AppendAsync(new[] { (byte)'a', (byte)i });
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var ahead = log.TailAsync(0, cts.Token).GetAsyncEnumerator(cts.Token);
        for (int i = 0; i < 30; i++)
        {
            Assert.That(await ahead.MoveNextAsync(), Is.True);
        }

        var behind = log.TailAsync(0, cts.Token).GetAsyncEnumerator(cts.Token);
        for (int i = 0; i < 10; i++)
        {
            Assert.That(await behind.MoveNextAsync(), Is.True);
        }

        await log.TruncateSuffixAsync(20);
        for (int i = 20; i < 40; i++)
        {
            await log.AppendAsync(new[] { (byte)'b', (byte)i });
        }

        var e = Assert.ThrowsAsync<LogTruncatedException>(async () => await ahead.MoveNextAsync());
        Assert.That(e!.ReaderOffset, Is.EqualTo(30));
        Assert.That(e.TruncatedFromOffset, Is.EqualTo(20));

        var seen = new List<byte[]>();
        for (int i = 10; i < 40; i++)
        {
            Assert.That(await behind.MoveNextAsync(), Is.True);
            Assert.That(behind.Current.Offset, Is.EqualTo(i));
            seen.Add(behind.Current.Value!);
        }

        Assert.That(seen.Take(10).All(v => v[0] == 'a'), Is.True);
        Assert.That(seen.Skip(10).All(v => v[0] == 'b'), Is.True, "the reader behind the cut sees the new records");
        await ahead.DisposeAsync();
        await behind.DisposeAsync();
    }

    [Test]
    public async Task SequentialScan_WithBatchesSpanningManyChunks_AndASpentPool_ReadsEverything()
    {
        // 16 KiB chunks and a pool barely larger than the writer's needs: batches of up to 200 KiB span up to 14
        // chunks, the read-ahead is refused, and readers go past the budget instead of waiting.
        using var pool = new LogBufferPool(budgetBytes: 320 * 1024, chunkSize: 16 * 1024);
        var options = Options() with { BufferPool = pool, BatchCache = new BatchCache(0), MaximumBatchSize = 256 * 1024 };
        var random = new Random(7);
        var written = new List<byte[]>();
        await using (var writer = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 60; i++)
            {
                var value = new byte[random.Next(1, 200 * 1024)];
                random.NextBytes(value);
                written.Add(value);
                await writer.AppendAsync(value);
            }
        }

        await using var log = await SegmentedLog.OpenAsync(options);
        var read = new List<byte[]>();
        await foreach (var r in log.ReadAsync(0))
        {
            read.Add(r.Value!);
        }

        Assert.That(read, Has.Count.EqualTo(written.Count));
        for (int i = 0; i < written.Count; i++)
        {
            Assert.That(read[i], Is.EqualTo(written[i]), $"record {i}");
        }

        // From the middle too (a seek, then sequential again).
        int from = 37;
        int n = from;
        await foreach (var r in log.ReadAsync(from))
        {
            Assert.That(r.Value, Is.EqualTo(written[n++]));
        }

        Assert.That(n, Is.EqualTo(written.Count));
        Assert.That(pool.RentedBytes, Is.LessThanOrEqualTo(pool.BudgetBytes));
    }

    [Test]
    public async Task LogManager_KeepsAtMostTheCapOfReadHandlesOpen_AndReadsStayCorrect()
    {
        await using var manager = LogManager.Create(new LogManagerOptions
        {
            RootDirectory = _dir.File("root"),
            MaximumOpenReadFiles = 2,
            BatchCache = new BatchCache(0),
            LogDefaults = new LogOptions { SegmentSize = 1024 * 1024, MaximumBatchSize = 64 * 1024 },
        });
        var value = new byte[32 * 1024];
        for (int l = 0; l < 3; l++)
        {
            var log = await manager.GetOrOpenAsync($"p-{l}");
            for (int i = 0; i < 100; i++)
            {
                value[0] = (byte)l;
                value[1] = (byte)i;
                await log.AppendAsync(value);
            }

            Assert.That(log.SegmentCount, Is.GreaterThanOrEqualTo(3));
        }

        for (int round = 0; round < 2; round++)
        {
            for (int l = 0; l < 3; l++)
            {
                var log = await manager.GetOrOpenAsync($"p-{l}");
                int i = 0;
                await foreach (var r in log.ReadAsync(0))
                {
                    Assert.That(r.Value![0], Is.EqualTo(l));
                    Assert.That(r.Value[1], Is.EqualTo((byte)i++));
                }

                Assert.That(i, Is.EqualTo(100));
                Assert.That(manager.OpenReadFileCount, Is.LessThanOrEqualTo(2), "cold handles are closed once no reader holds them");
            }
        }

        Assert.That(OpenFileDescriptorsUnder(_dir.File("root")), Is.LessThanOrEqualTo(2 + (3 * 3)), "read handles ≤ 2; each log also holds its active segment, a prepared next one and its lock file");
    }

    [Test]
    public async Task ReaderOverSegmentsDeletedUnderIt_FailsClearly_AndTheRestIsReadable()
    {
        var options = Options() with { SegmentSize = 1024 * 1024, MaximumBatchSize = 128 * 1024 };
        await using var log = await SegmentedLog.OpenAsync(options);
        var value = new byte[64 * 1024];
        for (int i = 0; i < 80; i++)
        {
            value[0] = (byte)i;
            await log.AppendAsync(value);
        }

        // Start a reader at 0, read one record, then delete the segments under it (as retention does).
        var reader = log.ReadAsync(0).GetAsyncEnumerator();
        Assert.That(await reader.MoveNextAsync(), Is.True);
        Assert.That(log.TruncatePrefix(50), Is.GreaterThanOrEqualTo(2));
        long start = log.StartOffset;
        Assert.That(start, Is.GreaterThan(0));

        // The reader keeps its open segment (a deleted file stays readable through its handle), then finds the records
        // after it gone: a clear error, not a silent skip.
        var e = Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () =>
        {
            while (await reader.MoveNextAsync())
            {
            }
        });
        Assert.That(e!.Message, Does.Contain("deleted"));
        await reader.DisposeAsync();

        int expected = (int)start;
        await foreach (var r in log.ReadAsync(start))
        {
            Assert.That(r.Value![0], Is.EqualTo((byte)expected++));
        }

        Assert.That(expected, Is.EqualTo(80));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.ReadAsync(start - 1).GetAsyncEnumerator().MoveNextAsync());
    }

    private static int OpenFileDescriptorsUnder(string root)
    {
        int n = 0;
        foreach (string fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                var target = new FileInfo(fd).LinkTarget;
                if (target is not null && target.StartsWith(root, StringComparison.Ordinal))
                {
                    n++;
                }
            }
            catch (IOException)
            {
                // Closed while listing.
            }
        }

        return n;
    }

    private static async Task<List<byte[]>> ValuesAsync(SegmentedLog log, long from)
    {
        var values = new List<byte[]>();
        await foreach (var r in log.ReadAsync(from))
        {
            values.Add(r.Value!);
        }

        return values;
    }

    private LogOptions Options() => new() { Directory = _dir.File("log") };
}
