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
    public async Task ManyLogs_ShareOnePool_AndIdleLogsReturnTheirBuffers()
    {
        using var pool = new LogBufferPool(budgetBytes: 32 * 1024 * 1024, chunkSize: 64 * 1024);
        await using var manager = LogManager.Create(new LogManagerOptions
        {
            RootDirectory = _dir.File("root"),
            BufferPool = pool,
            HousekeepingInterval = TimeSpan.FromMilliseconds(50),
            IdleBufferRelease = TimeSpan.FromMilliseconds(100),
        });
        var logs = new List<SegmentedLog>();
        for (int i = 0; i < 50; i++)
        {
            logs.Add(await manager.GetOrOpenAsync($"orders-{i}"));
        }

        Assert.That(await manager.GetOrOpenAsync("orders-7"), Is.SameAs(logs[7]), "one instance per name");
        await Task.WhenAll(logs.Select((log, i) => log.AppendAsync(BitConverter.GetBytes(i)).AsTask()));
        Assert.That(pool.RentedBytes, Is.EqualTo(50L * 64 * 1024), "each log holds its partial chunk while active");

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
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
