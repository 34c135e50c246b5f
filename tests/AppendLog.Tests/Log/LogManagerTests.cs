using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Log;

public sealed class LogManagerTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    [CancelAfter(120_000)]
    public async Task OpenAll_OpensEveryLogUnderTheRoot_Concurrently_AndEachResumesWhereItWas()
    {
        var options = new LogManagerOptions { RootDirectory = _dir.File("root"), MaximumConcurrentOpens = 8 };
        await using (var manager = LogManager.Create(options))
        {
            var created = await manager.OpenAsync(Enumerable.Range(0, 40).Select(i => $"p-{i:D2}"));
            Assert.That(created.Select(l => l.Directory), Is.EqualTo(Enumerable.Range(0, 40).Select(i => Path.Combine(options.RootDirectory, $"p-{i:D2}"))), "in the order asked");
            await Task.WhenAll(created.Select((log, i) => log.AppendAsync(BitConverter.GetBytes(i)).AsTask()));
        }

        // Every log's reserve was given back at the clean close: each file holds its data only.
        foreach (string segment in Directory.GetFiles(options.RootDirectory, "*.log", SearchOption.AllDirectories))
        {
            Assert.That(new FileInfo(segment).Length, Is.LessThan(4096), segment);
        }

        await using (var manager = LogManager.Create(options))
        {
            int descriptorsBefore = Directory.GetFiles("/proc/self/fd").Length;
            var all = await manager.OpenAllAsync();
            Assert.That(all, Has.Count.EqualTo(40));
            Assert.That(Directory.GetFiles("/proc/self/fd").Length - descriptorsBefore, Is.LessThanOrEqualTo(8), "a reopened idle log holds no descriptor (no lock file of its own, its active segment closed)");
            Assert.That(manager.OpenLogNames, Has.Count.EqualTo(40));
            for (int i = 0; i < all.Count; i++)
            {
                Assert.That(all[i].EndOffset, Is.EqualTo(1), all[i].Directory);
                Assert.That(await all[i].AppendAsync(BitConverter.GetBytes(100 + i)), Is.EqualTo(1));
            }

            Assert.That(await manager.OpenAsync(["p-03", "p-03"]), Is.EqualTo(new[] { all[3], all[3] }), "an open log is returned as it is");
            Assert.ThrowsAsync<ArgumentException>(async () => await manager.OpenAsync(["p-01", ".hidden"]));
        }
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task OpenMany_WhenOneLogIsDamaged_OpensTheOthers_AndThrowsTheDamage()
    {
        var options = new LogManagerOptions { RootDirectory = _dir.File("root"), MaximumConcurrentOpens = 4 };
        await using (var manager = LogManager.Create(options))
        {
            foreach (var log in await manager.OpenAsync(["a", "b", "c"]))
            {
                await log.AppendAsync(new byte[100]);
            }
        }

        // b's segment is gone although its checkpoint says its data was durable: LogCorruptedException.
        string b = Path.Combine(options.RootDirectory, "b");
        File.Delete(Path.Combine(b, "00000000000000000000.log"));
        await using (var manager = LogManager.Create(options))
        {
            var ex = Assert.ThrowsAsync<LogCorruptedException>(async () => await manager.OpenAllAsync());
            Assert.That(ex!.FilePath, Is.EqualTo(b));
            Assert.That(manager.OpenLogNames.Order(), Is.EqualTo(new[] { "a", "c" }), "the healthy logs are open");
        }
    }

    [Test]
    public async Task ManyLogs_ShareOnePool_AndIdleLogsReturnTheirBuffers()
    {
        using var pool = new LogBufferPool(budgetBytes: 32 * 1024 * 1024, chunkSize: 64 * 1024);
        await using var manager = LogManager.Create(new LogManagerOptions
        {
            RootDirectory = _dir.File("root"),
            BufferPool = pool,
            HousekeepingInterval = TimeSpan.FromMilliseconds(50),
            // Long enough that no log is idle before the first check even on a loaded machine (at 100 ms, housekeeping
            // released the first logs' chunks while the last ones still appended).
            IdleBufferRelease = TimeSpan.FromSeconds(2),
        });
        var logs = new List<SegmentedLog>();
        for (int i = 0; i < 50; i++)
        {
            logs.Add(await manager.GetOrOpenAsync($"orders-{i}"));
        }

        Assert.That(await manager.GetOrOpenAsync("orders-7"), Is.SameAs(logs[7]), "one instance per name");
        await Task.WhenAll(logs.Select((log, i) => log.AppendAsync(BitConverter.GetBytes(i)).AsTask()));
        Assert.That(pool.RentedBytes, Is.EqualTo(50L * 64 * 1024), "each log holds its partial chunk while active");

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (pool.RentedBytes > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.That(pool.RentedBytes, Is.Zero, "idle logs returned their chunks");

        // A released log resumes exactly where it was: the kept tail block is written back with the next record.
        for (int i = 0; i < 50; i++)
        {
            Assert.That(await logs[i].AppendAsync(BitConverter.GetBytes(1000 + i)), Is.EqualTo(1));
        }

        await manager.CloseLogAsync("orders-3");
        var reopened = await manager.GetOrOpenAsync("orders-3");
        var values = new List<int>();
        await foreach (var r in reopened.ReadAsync(0))
        {
            values.Add(BitConverter.ToInt32(r.Value));
        }

        Assert.That(values, Is.EqualTo(new[] { 3, 1003 }));
        Assert.That(manager.ListLogNames(), Has.Count.EqualTo(50));
    }

    [TestCase("")]
    [TestCase(".hidden")]
    [TestCase("a/b")]
    [TestCase("..")]
    public void InvalidNames_AreRejected(string name)
    {
        using var pool = new LogBufferPool(8 * 1024 * 1024);
        var manager = LogManager.Create(new LogManagerOptions { RootDirectory = _dir.File("root"), BufferPool = pool });
        Assert.ThrowsAsync<ArgumentException>(async () => await manager.GetOrOpenAsync(name));
    }
}
