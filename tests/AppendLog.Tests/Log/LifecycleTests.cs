using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Log;

/// <summary>Suffix truncation, raw batch forwarding and tailing readers.</summary>
[TestFixture(DirectIoMode.Preferred)]
[TestFixture(DirectIoMode.Disabled)]
public sealed class LifecycleTests(DirectIoMode mode)
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private LogOptions Options(string name = "log") => new()
    {
        Directory = _dir.File(name),
        DirectIo = mode,
        SegmentSize = 1024 * 1024,
        MaximumBatchSize = 64 * 1024,
        PreallocationMinimumStep = 256 * 1024,
        PreallocationMaximumStep = 256 * 1024,
    };

    private static byte[] Value(long i, int size = 3000)
    {
        var bytes = new byte[size];
        new Random((int)i).NextBytes(bytes);
        return bytes;
    }

    private static async Task<List<LogRecord>> ReadAll(SegmentedLog log, long from = 0)
    {
        var list = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(from))
        {
            list.Add(r);
        }

        return list;
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(150)]
    [TestCase(333)]
    [TestCase(399)]
    [TestCase(400)]
    public async Task TruncateSuffix_RemovesEverythingFromTheOffset_ThenAppendsContinueThere(int cut)
    {
        var options = Options();
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 400; i++)
            {
                await log.AppendAsync(Value(i));
            }

            Assert.That(log.SegmentCount, Is.GreaterThan(1), "the cut must be able to cross segments");
            await log.TruncateSuffixAsync(cut);
            Assert.That(log.EndOffset, Is.EqualTo(cut));
            Assert.That(log.DurableEndOffset, Is.EqualTo(cut));
            Assert.That(await log.AppendAsync(Value(1_000_000)), Is.EqualTo(cut));
            var all = await ReadAll(log);
            Assert.That(all, Has.Count.EqualTo(cut + 1));
            Assert.That(all[^1].Value, Is.EqualTo(Value(1_000_000)));
            for (int i = 0; i < cut; i++)
            {
                Assert.That(all[i].Value, Is.EqualTo(Value(i)), $"offset {i}");
            }
        }

        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            Assert.That(log.EndOffset, Is.EqualTo(cut + 1), "the truncation and the later append survive reopen");
            var all = await ReadAll(log);
            Assert.That(all[^1].Value, Is.EqualTo(Value(1_000_000)));
        }
    }

    [Test]
    public async Task TruncateSuffix_InsideABatch_IsRejected_AndChangesNothing()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        await log.AppendBatchAsync(new[] { new AppendRecord(Value(0)), new AppendRecord(Value(1)), new AppendRecord(Value(2)) });
        Assert.ThrowsAsync<ArgumentException>(async () => await log.TruncateSuffixAsync(1));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.TruncateSuffixAsync(4));
        Assert.That(log.EndOffset, Is.EqualTo(3));
        Assert.That(await log.AppendAsync(Value(3)), Is.EqualTo(3));
    }

    [Test]
    public async Task RawBatches_ForwardedToAnotherLog_KeepBytesEpochsAndGetTheTargetsOffsets()
    {
        await using var source = await SegmentedLog.OpenAsync(Options("a"));
        await using var target = await SegmentedLog.OpenAsync(Options("b"));
        await target.AppendAsync(Value(42));
        for (int i = 0; i < 20; i++)
        {
            await source.AppendBatchAsync(new[] { new AppendRecord(Value(i)), new AppendRecord(Value(i + 100)) }, leaderEpoch: 7);
        }

        long expected = 1;
        await foreach (var batch in source.ReadBatchesAsync(0))
        {
            Assert.That(batch.LeaderEpoch, Is.EqualTo(7));
            Assert.That(await target.AppendRawBatchAsync(batch.Bytes), Is.EqualTo(expected));
            expected += batch.RecordCount;
        }

        var copied = await ReadAll(target, 1);
        var original = await ReadAll(source);
        Assert.That(copied.Select(r => r.Value), Is.EqualTo(original.Select(r => r.Value)));
        Assert.That(copied.Select(r => r.LeaderEpoch), Is.All.EqualTo(7));
        Assert.That(copied[0].Offset, Is.EqualTo(1));
    }

    [Test]
    public async Task RawBatch_WithAFlippedBit_IsRejected()
    {
        await using var source = await SegmentedLog.OpenAsync(Options("a"));
        await using var target = await SegmentedLog.OpenAsync(Options("b"));
        await source.AppendAsync(Value(1));
        byte[] bytes = [];
        await foreach (var batch in source.ReadBatchesAsync(0))
        {
            bytes = batch.Bytes.ToArray();
        }

        bytes[100] ^= 0x01;
        var ex = Assert.Throws<InvalidRecordBatchException>(() => target.AppendRawBatchAsync(bytes));
        Assert.That(ex!.FailedCheck, Is.EqualTo("crc"));
        Assert.That(target.EndOffset, Is.Zero);
    }

    [Test]
    public async Task TailingReader_UnderConcurrentAppends_ReceivesEveryRecordOnceInOrder()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        const int Total = 2000;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var received = new List<long>();
        var identities = new HashSet<long>();
        var reader = Task.Run(async () =>
        {
            await foreach (var r in log.TailAsync(0, cts.Token))
            {
                received.Add(r.Offset);
                long id = BitConverter.ToInt64(r.Value);
                Assert.That(identities.Add(id), Is.True, $"record {id} delivered twice");
                Assert.That(r.Value.AsSpan(8).ToArray(), Is.EqualTo(Value(id, 192)), "payload intact");
                if (received.Count == Total)
                {
                    return;
                }
            }
        });
        var writers = Enumerable.Range(0, 8).Select(async w =>
        {
            for (int i = 0; i < Total / 8; i++)
            {
                long id = (w * 100_000) + i;
                await log.AppendAsync(BitConverter.GetBytes(id).Concat(Value(id, 192)).ToArray());
            }
        });
        await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(60));
        await reader.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.That(received, Is.EqualTo(Enumerable.Range(0, Total).Select(i => (long)i)), "every offset once, in order");
        Assert.That(identities, Has.Count.EqualTo(Total));
    }

    [Test]
    public async Task TailingReader_EndsCleanly_WhenCancelled()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        await log.AppendAsync(Value(0));
        using var cts = new CancellationTokenSource();
        int seen = 0;
        var reader = Task.Run(async () =>
        {
            await foreach (var _ in log.TailAsync(0, cts.Token))
            {
                seen++;
            }
        });
        await Task.Delay(100);
        cts.Cancel();
        Assert.That(async () => await reader.WaitAsync(TimeSpan.FromSeconds(10)), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(seen, Is.EqualTo(1));
    }
}

/// <summary>Retention, prefix truncation and time lookups, driven by a fake clock.</summary>
public sealed class RetentionAndTimeTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private LogOptions Options(TimeProvider time, long? retentionBytes = null, TimeSpan? retentionAge = null) => new()
    {
        Directory = _dir.File("log"),
        SegmentSize = 1024 * 1024,
        MaximumBatchSize = 64 * 1024,
        PreallocationMinimumStep = 256 * 1024,
        PreallocationMaximumStep = 256 * 1024,
        TimeProvider = time,
        RetentionBytes = retentionBytes,
        RetentionAge = retentionAge,
    };

    [Test]
    public async Task FindOffsetAsync_AgreesWithAScanOfTheTimestamps()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_000_000));
        await using var log = await SegmentedLog.OpenAsync(Options(time));
        var stamps = new List<long>();
        var random = new Random(Seeds.Get());
        for (int i = 0; i < 1500; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(random.Next(0, 3)));
            await log.AppendAsync(new byte[2000]);
            stamps.Add(time.GetUtcNow().ToUnixTimeMilliseconds());
        }

        Assert.That(log.SegmentCount, Is.GreaterThan(2));
        for (int probe = 0; probe < 200; probe++)
        {
            long t = 1_000_000 + random.Next(-10, (int)(stamps[^1] - 1_000_000) + 10);
            int expected = stamps.FindIndex(s => s >= t);
            long found = await log.FindOffsetAsync(DateTimeOffset.FromUnixTimeMilliseconds(t));
            Assert.That(found, Is.EqualTo(expected < 0 ? 1500 : expected), $"timestamp {t}");
        }
    }

    [Test]
    public async Task RetentionBySize_DeletesWholeSegmentsFromTheHead_AndKeepsTheRestReadable()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var options = Options(time, retentionBytes: 2 * 1024 * 1024);
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 2000; i++)
            {
                await log.AppendAsync(BitConverter.GetBytes(i).Concat(new byte[3000]).ToArray());
            }

            Assert.That(log.ApplyRetention(), Is.GreaterThanOrEqualTo(0));
            long start = log.StartOffset;
            Assert.That(start, Is.GreaterThan(0), "old segments were deleted");
            long bytes = Directory.GetFiles(options.Directory, "*.log").Sum(f => new FileInfo(f).Length);
            Assert.That(bytes, Is.LessThanOrEqualTo((2 * 1024 * 1024) + (2 * 1024 * 1024)), "within the limit plus the active segment's reservation");
            await foreach (var r in log.ReadAsync(start))
            {
                Assert.That(BitConverter.ToInt32(r.Value), Is.EqualTo((int)r.Offset));
            }
        }

        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            Assert.That(log.EndOffset, Is.EqualTo(2000));
            Assert.That(log.StartOffset, Is.GreaterThan(0), "the deleted head stays deleted after reopen");
        }
    }

    [Test]
    public async Task TruncatePrefix_DeletesOnlySegmentsEntirelyBelowTheOffset()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var log = await SegmentedLog.OpenAsync(Options(time));
        for (int i = 0; i < 1000; i++)
        {
            await log.AppendAsync(new byte[3000]);
        }

        int segments = log.SegmentCount;
        int deleted = log.TruncatePrefix(500);
        Assert.That(deleted, Is.GreaterThan(0));
        Assert.That(log.SegmentCount, Is.EqualTo(segments - deleted));
        Assert.That(log.StartOffset, Is.LessThanOrEqualTo(500));
        Assert.That(log.StartOffset, Is.GreaterThan(0));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.ReadAsync(0).GetAsyncEnumerator().MoveNextAsync());
    }

    [Test]
    public async Task RetentionByAge_DeletesSegmentsWhoseNewestRecordIsTooOld()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(5_000_000));
        await using var log = await SegmentedLog.OpenAsync(Options(time, retentionAge: TimeSpan.FromHours(1)));
        for (int i = 0; i < 600; i++)
        {
            await log.AppendAsync(new byte[3000]);
        }

        time.Advance(TimeSpan.FromHours(2));
        for (int i = 0; i < 400; i++)
        {
            await log.AppendAsync(new byte[3000]);
        }

        log.ApplyRetention();
        // Segments sealed with only old records are gone; the one active across the jump also holds new records
        // (its newest timestamp is recent), so it stays: the start lands inside [1, 600].
        Assert.That(log.StartOffset, Is.GreaterThan(0));
        Assert.That(log.StartOffset, Is.LessThanOrEqualTo(600));
        Assert.That(log.EndOffset, Is.EqualTo(1000));
    }
}

public sealed class CompressionTests
{
    [Test]
    public async Task Lz4Batches_AreSmallerOnDisk_AndReadBackIdentically()
    {
        using var dir = new TempDirectory();
        var text = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("order placed; order paid; order shipped. ", 200)));
        var records = Enumerable.Range(0, 20).Select(i => new AppendRecord(BitConverter.GetBytes(i), text)).ToArray();
        foreach (var codec in new[] { CompressionCodec.None, CompressionCodec.Lz4 })
        {
            await using var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = dir.File(codec.ToString()), Compression = codec });
            await log.AppendBatchAsync(records);
            long batchBytes = 0;
            await foreach (var batch in log.ReadBatchesAsync(0))
            {
                batchBytes += batch.Bytes.Length;
            }

            var read = new List<LogRecord>();
            await foreach (var r in log.ReadAsync(0))
            {
                read.Add(r);
            }

            Assert.That(read.Select(r => BitConverter.ToInt32(r.Key)), Is.EqualTo(Enumerable.Range(0, 20)));
            Assert.That(read.Select(r => r.Value), Is.All.EqualTo(text));
            TestContext.Out.WriteLine($"{codec}: {batchBytes} bytes");
            if (codec == CompressionCodec.Lz4)
            {
                Assert.That(batchBytes, Is.LessThan(text.Length * 20 / 10), "LZ4 shrinks repetitive text tenfold or more");
            }
        }
    }
}
