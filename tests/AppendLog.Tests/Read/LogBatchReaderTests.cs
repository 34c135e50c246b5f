using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// <see cref="LogBatchReader"/>: the batches of <see cref="SegmentedLog.ReadBatchesAsync"/>, byte for byte, from every
/// start, across segments, from disk (lent) or from the cache, with loans released between rounds; a batch larger
/// than the caller's limit is withheld without being consumed; a reader at the durable end returns the next batch once
/// it is durable; and a disk scan allocates no array per batch.
/// </summary>
[CancelAfter(60_000)]
public sealed class LogBatchReaderTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-batch-reader");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private LogOptions Options(long cacheBytes) => new()
    {
        Directory = _dir.File("log"),
        DirectIo = DirectIoMode.Preferred,
        SegmentSize = 1024 * 1024,
        MaximumBatchSize = 128 * 1024,
        BatchCache = new BatchCache(cacheBytes),
    };

    /// <summary>Batches of 1 to 30 records of 10 to 2,000 bytes, so that they cross several segments.</summary>
    private static async Task FillAsync(SegmentedLog log, int seed, int batches)
    {
        var random = new Random(seed);
        for (int b = 0; b < batches; b++)
        {
            var records = new AppendRecord[random.Next(1, 31)];
            for (int i = 0; i < records.Length; i++)
            {
                var value = new byte[random.Next(10, 2000)];
                random.NextBytes(value);
                records[i] = new AppendRecord(value);
            }

            await log.AppendBatchAsync(records);
        }
    }

    private static async Task<List<byte[]>> ExpectedAsync(SegmentedLog log, long from)
    {
        var batches = new List<byte[]>();
        await foreach (var batch in log.ReadBatchesAsync(from))
        {
            batches.Add(batch.Bytes.ToArray());
        }

        return batches;
    }

    [Test]
    public async Task Batches_EqualReadBatchesAsync_FromEveryStart_WithLoansReleasedEachRound(
        [Values(0L, 64L * 1024 * 1024)] long cacheBytes)
    {
        await using var log = await SegmentedLog.OpenAsync(Options(cacheBytes));
        await FillAsync(log, Seeds.Get(), batches: 250);
        long end = log.DurableEndOffset;
        var random = new Random(Seeds.Get());
        for (int start = 0; start < 12; start++)
        {
            long from = start == 0 ? 0 : random.NextInt64(0, end + 1);
            var expected = await ExpectedAsync(log, from);
            await using var reader = log.OpenBatchReader(from);
            var actual = new List<byte[]>();
            int round = 0;
            while (true)
            {
                var batch = await reader.ReadAsync();
                if (batch.IsEmpty)
                {
                    break;
                }

                actual.Add(batch.ToArray());
                if (++round % 3 == 0)
                {
                    reader.Release(); // a server's round: the loans end once the answer is sent
                }
            }

            Assert.That(reader.NextOffset, Is.EqualTo(end), $"from {from}");
            Assert.That(actual, Is.EqualTo(expected), $"from {from}");
        }
    }

    [Test]
    public async Task ABatchAboveTheLimit_IsWithheld_AndReturnedByTheNextCallThatAllowsIt()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(0));
        await log.AppendBatchAsync(new[] { new AppendRecord(new byte[100]) });
        await log.AppendBatchAsync(new[] { new AppendRecord(new byte[5000]), new AppendRecord(new byte[5000]) });
        var expected = await ExpectedAsync(log, 0);
        await using var reader = log.OpenBatchReader(0);

        var first = await reader.ReadAsync(maximumSize: 1000);
        Assert.That(first.ToArray(), Is.EqualTo(expected[0]));
        Assert.That((await reader.ReadAsync(maximumSize: 1000)).IsEmpty, Is.True, "the 10 KB batch exceeds 1,000 bytes");
        Assert.That(reader.NextOffset, Is.EqualTo(1), "withheld, not consumed");
        Assert.That((await reader.ReadAsync(maximumSize: expected[1].Length)).ToArray(), Is.EqualTo(expected[1]));
        Assert.That(reader.NextOffset, Is.EqualTo(3));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await reader.ReadAsync(maximumSize: 0));
    }

    [Test]
    public async Task AReaderAtTheEnd_ReturnsEmpty_ThenTheNextDurableBatch()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(0));
        await log.AppendAsync(new byte[] { 1 });
        await using var reader = log.OpenBatchReader(1);
        Assert.That((await reader.ReadAsync()).IsEmpty, Is.True);

        await log.AppendAsync(new byte[] { 2, 3 });
        var batch = await reader.ReadAsync();
        Assert.That(batch.ToArray(), Is.EqualTo((await ExpectedAsync(log, 1))[0]));
        Assert.That(reader.NextOffset, Is.EqualTo(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.OpenBatchReader(3));
    }

    /// <summary>
    /// 100 disk batches of about 64 KB, read and released one round at a time after a warm-up, allocate far less than
    /// one batch's size per batch: no array per batch (ReadBatchesAsync allocates each batch's size).
    /// </summary>
    [Test]
    [NonParallelizable]
    public async Task ADiskScan_AllocatesNoArrayPerBatch()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(0) with { SegmentSize = 64L * 1024 * 1024 });
        var value = new byte[1000];
        for (int b = 0; b < 120; b++)
        {
            await log.AppendBatchAsync(Enumerable.Range(0, 64).Select(_ => new AppendRecord(value)).ToArray());
        }

        await using var reader = log.OpenBatchReader(0);
        for (int b = 0; b < 20; b++)
        {
            Assert.That((await reader.ReadAsync()).IsEmpty, Is.False);
            reader.Release();
        }

        long before = GC.GetTotalAllocatedBytes(precise: true);
        long bytes = 0;
        for (int b = 0; b < 100; b++)
        {
            var batch = await reader.ReadAsync();
            bytes += batch.Length;
            reader.Release();
        }

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.That(bytes, Is.GreaterThan(100L * 64 * 1000));
        Assert.That(allocated, Is.LessThan(bytes / 20), $"{allocated} B allocated for {bytes} B of batches");
    }

    /// <summary>
    /// A server releases a round's loans on its sending thread, not the one that read: released on a new thread each
    /// round (whose own slot in the shared pool dies with it), the arrays are still reused, so 100 disk batches of
    /// about 64 KB allocate far less than one batch's size per batch.
    /// </summary>
    [Test]
    [NonParallelizable]
    public async Task ADiskScan_ReleasedOnOtherThreads_AllocatesNoArrayPerBatch()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(0) with { SegmentSize = 64L * 1024 * 1024 });
        var value = new byte[1000];
        for (int b = 0; b < 120; b++)
        {
            await log.AppendBatchAsync(Enumerable.Range(0, 64).Select(_ => new AppendRecord(value)).ToArray());
        }

        await using var reader = log.OpenBatchReader(0);
        void ReleaseOnNewThread()
        {
            var thread = new Thread(reader.Release);
            thread.Start();
            thread.Join();
        }

        for (int b = 0; b < 20; b++)
        {
            Assert.That((await reader.ReadAsync()).IsEmpty, Is.False);
            ReleaseOnNewThread();
        }

        long bytes = 0;
        long allocated = 0;
        for (int b = 0; b < 100; b++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            var batch = await reader.ReadAsync();
            allocated += GC.GetTotalAllocatedBytes(precise: true) - before;
            bytes += batch.Length;
            ReleaseOnNewThread(); // not counted: a thread's own objects
        }

        Assert.That(bytes, Is.GreaterThan(100L * 64 * 1000));
        Assert.That(allocated, Is.LessThan(bytes / 20), $"{allocated} B allocated for {bytes} B of batches");
    }
}
