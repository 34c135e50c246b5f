using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Log;

/// <summary>Behaviour of the log on the real file system, once with O_DIRECT and once buffered.</summary>
[TestFixture(DirectIoMode.Preferred)]
[TestFixture(DirectIoMode.Disabled)]
public sealed class SegmentedLogTests(DirectIoMode mode)
{
    private static readonly global::AppendLog.Appender.IoWorkers s_queueIo = new(4, "segmentedlog-test-io");

    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private LogOptions Options(Func<LogOptions, LogOptions>? change = null)
    {
        var options = new LogOptions { Directory = _dir.File("log"), DirectIo = mode };
        return change is null ? options : change(options);
    }

    private static byte[] Value(int i, int size = 100)
    {
        var bytes = new byte[size];
        new Random(i).NextBytes(bytes);
        return bytes;
    }

    [Test]
    public async Task AppendAsync_AssignsDenseOffsetsFromZero_AndReadsBackEveryValue()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        for (int i = 0; i < 100; i++)
        {
            Assert.That(await log.AppendAsync(Value(i)), Is.EqualTo(i));
        }

        Assert.That(log.DurableEndOffset, Is.EqualTo(100));
        int n = 0;
        await foreach (var record in log.ReadAsync(0))
        {
            Assert.That(record.Offset, Is.EqualTo(n));
            Assert.That(record.Value, Is.EqualTo(Value(n)));
            n++;
        }

        Assert.That(n, Is.EqualTo(100));
    }

    [Test]
    public async Task ReadAsync_FromTheMiddle_StartsAtThatOffset()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        for (int i = 0; i < 50; i++)
        {
            await log.AppendAsync(Value(i));
        }

        var offsets = new List<long>();
        await foreach (var record in log.ReadAsync(37))
        {
            offsets.Add(record.Offset);
        }

        Assert.That(offsets, Is.EqualTo(Enumerable.Range(37, 13).Select(i => (long)i)));
    }

    [Test]
    public async Task ConcurrentAppends_AllBecomeDurable_WithUniqueOffsets()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        var tasks = Enumerable.Range(0, 64).Select(async t =>
        {
            var mine = new List<long>();
            for (int i = 0; i < 50; i++)
            {
                mine.Add(await log.AppendAsync(Value((t * 1000) + i, 1024)));
            }

            return mine;
        });
        var all = (await Task.WhenAll(tasks)).SelectMany(x => x).ToList();
        Assert.That(all, Is.Unique);
        Assert.That(all, Has.Count.EqualTo(64 * 50));
        Assert.That(all.Max(), Is.EqualTo((64 * 50) - 1));
        Assert.That(log.DurableEndOffset, Is.EqualTo(64 * 50));
    }

    [Test]
    public async Task Reopen_ReturnsExactlyTheAcknowledgedRecords_AndContinuesTheOffsets()
    {
        var options = Options();
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 300; i++)
            {
                await log.AppendAsync(Value(i, 700));
            }
        }

        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            Assert.That(log.EndOffset, Is.EqualTo(300));
            Assert.That(log.DurableEndOffset, Is.EqualTo(300));
            Assert.That(await log.AppendAsync(Value(300, 700)), Is.EqualTo(300));
            int n = 0;
            await foreach (var record in log.ReadAsync(0))
            {
                Assert.That(record.Value, Is.EqualTo(Value(n, 700)), $"offset {n}");
                n++;
            }

            Assert.That(n, Is.EqualTo(301));
        }
    }

    [Test]
    public async Task SegmentsRoll_AtTheConfiguredSize_AndSurviveReopen()
    {
        var options = Options(o => o with { SegmentSize = 1024 * 1024, MaximumBatchSize = 64 * 1024, PreallocationMinimumStep = 256 * 1024, PreallocationMaximumStep = 512 * 1024 });
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 1000; i++)
            {
                await log.AppendAsync(Value(i, 4000));
            }

            Assert.That(log.SegmentCount, Is.GreaterThanOrEqualTo(4));
        }

        var files = Directory.GetFiles(options.Directory, "*.log").Select(f => Path.GetFileName(f)).Order().ToList();
        Assert.That(files[0], Is.EqualTo("00000000000000000000.log"));
        foreach (string f in files.SkipLast(1))
        {
            Assert.That(new FileInfo(Path.Combine(options.Directory, f)).Length, Is.LessThanOrEqualTo(1024 * 1024), "sealed segments are trimmed to their logical end");
            Assert.That(File.Exists(Path.Combine(options.Directory, Path.ChangeExtension(f, ".index"))), Is.True, "sealed segments have an index");
        }

        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            Assert.That(log.EndOffset, Is.EqualTo(1000));
            int n = 0;
            await foreach (var record in log.ReadAsync(0))
            {
                Assert.That(record.Value, Is.EqualTo(Value(n, 4000)));
                n++;
            }

            Assert.That(n, Is.EqualTo(1000));
            var tail = new List<long>();
            await foreach (var record in log.ReadAsync(777))
            {
                tail.Add(record.Offset);
            }

            Assert.That(tail.First(), Is.EqualTo(777));
            Assert.That(tail, Has.Count.EqualTo(223));
        }
    }

    [Test]
    public async Task BatchAppend_KeepsKeysHeadersAndTombstones()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        var records = new[]
        {
            new AppendRecord("k1"u8.ToArray(), "v1"u8.ToArray(), [new RecordHeader("h", "x"u8.ToArray())]),
            AppendRecord.Tombstone("k2"u8.ToArray()),
            new AppendRecord("plain"u8.ToArray()),
        };
        Assert.That(await log.AppendBatchAsync(records), Is.EqualTo(0));
        var read = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(0))
        {
            read.Add(r);
        }

        Assert.That(read, Has.Count.EqualTo(3));
        Assert.That(read[0].Key, Is.EqualTo("k1"u8.ToArray()));
        Assert.That(read[0].Headers.Single().Key, Is.EqualTo("h"));
        Assert.That(read[1].Value, Is.Null);
        Assert.That(read[1].Key, Is.EqualTo("k2"u8.ToArray()));
        Assert.That(read[2].Key, Is.Null);
        Assert.That(read[2].Value, Is.EqualTo("plain"u8.ToArray()));
    }

    [Test]
    public async Task OversizedRecord_IsRejectedWithAClearException_AndTheLogStaysUsable()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(o => o with { MaximumBatchSize = 4096 }));
        var ex = Assert.ThrowsAsync<ArgumentException>(async () => await log.AppendAsync(new byte[5000]));
        Assert.That(ex!.Message, Does.Contain("MaximumBatchSize"));
        Assert.That(await log.AppendAsync(new byte[100]), Is.EqualTo(0));
    }

    [Test]
    public async Task EmptyValue_IsARecordOfItsOwn()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        await log.AppendAsync(ReadOnlyMemory<byte>.Empty);
        await foreach (var r in log.ReadAsync(0))
        {
            Assert.That(r.Value, Is.Empty);
        }
    }

    [Test]
    public async Task SecondOpenOfTheSameDirectory_ThrowsLogLockedException()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        Assert.ThrowsAsync<LogLockedException>(async () => await SegmentedLog.OpenAsync(Options()));
    }

    [Test]
    public async Task ReadAsync_OutsideTheReadableRange_Throws()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        await log.AppendAsync(Value(0));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.ReadAsync(5).GetAsyncEnumerator().MoveNextAsync());
    }

    [Test]
    public async Task UseAfterDispose_ThrowsObjectDisposedException_AndDisposeIsIdempotent()
    {
        var log = await SegmentedLog.OpenAsync(Options());
        await log.DisposeAsync();
        await log.DisposeAsync();
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await log.AppendAsync(Value(0)));
    }

    [Test]
    public async Task Dispose_WhileAppendsArePending_CompletesThemAllDurably()
    {
        var options = Options(o => o with { FlushPolicy = FlushPolicy.Manual });
        var log = await SegmentedLog.OpenAsync(options);
        var pending = Enumerable.Range(0, 20).Select(i => log.AppendAsync(Value(i)).AsTask()).ToList();
        Assert.That(log.EndOffset, Is.EqualTo(20), "all accepted at once: space was reserved at open");
        Assert.That(pending.Any(t => t.IsCompleted), Is.False, "manual policy: nothing is durable before a flush");
        await log.DisposeAsync();
        var offsets = await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(offsets, Is.EquivalentTo(Enumerable.Range(0, 20).Select(i => (long)i)));
    }

    [Test]
    public async Task TryAppend_ThenFlush_MakesEverythingDurable()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(o => o with { FlushPolicy = FlushPolicy.Manual }));
        for (int i = 0; i < 10; i++)
        {
            Assert.That(log.TryAppend(Value(i), out long offset), Is.True);
            Assert.That(offset, Is.EqualTo(i));
        }

        Assert.That(log.DurableEndOffset, Is.EqualTo(0));
        await log.FlushAsync();
        Assert.That(log.DurableEndOffset, Is.EqualTo(10));
    }

    [Test]
    public async Task PoolAccounting_ReturnsToZero_WhenEveryLogIsDisposed()
    {
        using var pool = new LogBufferPool(budgetBytes: 8 * 1024 * 1024, chunkSize: 16 * 1024);
        var logs = new List<SegmentedLog>();
        for (int i = 0; i < 3; i++)
        {
            logs.Add(await SegmentedLog.OpenAsync(new LogOptions { Directory = _dir.File($"log{i}"), DirectIo = mode, BufferPool = pool }));
        }

        await Task.WhenAll(logs.SelectMany(l => Enumerable.Range(0, 30).Select(i => l.AppendAsync(Value(i, 3000)).AsTask())));
        Assert.That(pool.RentedBytes, Is.GreaterThan(0), "open logs hold their partial chunks");
        foreach (var log in logs)
        {
            await log.DisposeAsync();
        }

        Assert.That(pool.RentedBytes, Is.Zero);
    }

    [Test]
    public async Task SmallPoolBudget_AppendsWaitForBuffers_InsteadOfFailing()
    {
        using var pool = new LogBufferPool(budgetBytes: 64 * 1024, chunkSize: 4096);
        await using var log = await SegmentedLog.OpenAsync(Options(o => o with { BufferPool = pool, MaximumBatchSize = 16 * 1024 }));
        var all = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => log.AppendAsync(Value(i, 3000)).AsTask()));
        Assert.That(all, Is.Unique);
        Assert.That(pool.AllocatedBytes, Is.LessThanOrEqualTo(64 * 1024));
    }

    [Test]
    public async Task UnderBackpressure_AppendsStartedInOrder_GetOffsetsInThatOrder([Values(0, 1, 2)] int round)
    {
        // A producer pipelining batches (a Kafka broker's partition) starts appends without awaiting each: the offsets
        // must follow the calls, even when the first ones wait for buffers and a later one could find room at once.
        using var pool = new LogBufferPool(budgetBytes: 64 * 1024, chunkSize: 4096);
        await using var log = await SegmentedLog.OpenAsync(Options(o => o with { BufferPool = pool, MaximumBatchSize = 16 * 1024 }));
        var pending = new List<Task<long>>();
        for (int i = 0; i < 300; i++)
        {
            pending.Add(log.AppendAsync(Value(i, 1000 + (((i * 7) + round) % 5 * 1000))).AsTask());
        }

        long[] offsets = await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.That(offsets, Is.EqualTo(Enumerable.Range(0, 300).Select(static i => (long)i)), "offset i for the i-th call");

        // TryAppend may not overtake appends still waiting either.
        var waiting = Enumerable.Range(300, 40).Select(i => log.AppendAsync(Value(i, 4000)).AsTask()).ToList();
        bool accepted = log.TryAppend(Value(999, 100), out long tried);
        await Task.WhenAll(waiting).WaitAsync(TimeSpan.FromSeconds(60));
        if (accepted)
        {
            Assert.That(tried, Is.GreaterThan(waiting.Max(static t => t.Result)), "an accepted TryAppend comes after the appends started before it");
        }
    }

    [Test]
    public async Task AnAppendQueuedBehindOthers_CancelledWhileWaiting_IsNotAppended_AndTheOthersKeepTheirOrder()
    {
        // Over the simulator with every write held back: no chunk comes back to the 16-chunk pool, so appends beyond
        // the first few must queue, and the cancelled one is certainly waiting when it is cancelled.
        var storage = new SimulatedStorage(seed: 11);
        using var pool = new LogBufferPool(budgetBytes: 64 * 1024, chunkSize: 4096);
        var options = new LogOptions { Directory = "/sim/queued", BufferPool = pool, MaximumBatchSize = 16 * 1024 };
        using var writes = new ManualResetEventSlim(false); // declared first: disposed after the log's close, which writes
        await using var log = await SegmentedLog.OpenAsync(options, storage, s_queueIo, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        storage.BeforeOperation = (operation, _) =>
        {
            if (operation == StorageOperation.Write)
            {
                writes.Wait(TimeSpan.FromSeconds(30));
            }
        };

        using var cancel = new CancellationTokenSource();
        var pending = new List<Task<long>>();
        for (int i = 0; i < 59; i++)
        {
            pending.Add(log.AppendAsync(Value(i, 4000)).AsTask());
        }

        var cancelled = log.AppendAsync(Value(59, 4000), cancel.Token).AsTask();
        cancel.Cancel();
        Assert.That(async () => await cancelled.WaitAsync(TimeSpan.FromSeconds(10)), Throws.InstanceOf<OperationCanceledException>(), "cancelled while queued, before any write completed");
        for (int i = 60; i < 100; i++)
        {
            pending.Add(log.AppendAsync(Value(i, 4000)).AsTask());
        }

        writes.Set();
        long[] offsets = await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.That(offsets, Is.EqualTo(Enumerable.Range(0, 99).Select(static i => (long)i)), "99 appends in call order; the cancelled one took no offset");
        Assert.That(log.EndOffset, Is.EqualTo(99));
    }

    [Test]
    public async Task TornTail_IsTruncatedAtRecovery_AndAppendsContinueAfterTheLastValidBatch()
    {
        var options = Options();
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 10; i++)
            {
                await log.AppendAsync(Value(i, 500));
            }
        }

        string file = Path.Combine(options.Directory, "00000000000000000000.log");
        long length = new FileInfo(file).Length;
        // Tear the last batch: overwrite its last 40 bytes with garbage (as a torn sector would).
        long tenth = FindBatchEnd(file, 10);
        using (var fs = new FileStream(file, FileMode.Open, FileAccess.Write))
        {
            fs.Position = tenth - 40;
            fs.Write(Enumerable.Repeat((byte)0xAB, 40).ToArray());
        }

        // A torn tail happens in a crash, before a checkpoint recorded the batch as durable: without the clean-close
        // record (docs/internals.md, section 5) recovery scans and cuts the tail. With it, the damage would be reported.
        File.Delete(Path.Combine(options.Directory, ".checkpoint"));
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            Assert.That(log.EndOffset, Is.EqualTo(9), "the torn 10th batch is dropped");
            Assert.That(await log.AppendAsync(Value(99, 500)), Is.EqualTo(9));
        }

        Assert.That(length, Is.GreaterThan(0));
    }

    /// <summary>End position of the n-th batch, following the Kafka length field (big-endian at byte 8).</summary>
    private static long FindBatchEnd(string file, int n)
    {
        var bytes = File.ReadAllBytes(file);
        long pos = 0;
        for (int i = 0; i < n; i++)
        {
            int length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan((int)pos + 8));
            pos += 12 + length;
        }

        return pos;
    }

    [Test]
    public async Task FlippedBitInASealedSegment_IsReportedAsCorruption_NamingFileAndPosition()
    {
        var options = Options(o => o with { SegmentSize = 1024 * 1024, MaximumBatchSize = 64 * 1024, PreallocationMinimumStep = 256 * 1024, PreallocationMaximumStep = 256 * 1024 });
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 400; i++)
            {
                await log.AppendAsync(Value(i, 4000));
            }
        }

        string first = Path.Combine(options.Directory, "00000000000000000000.log");
        using (var fs = new FileStream(first, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Position = 5000;
            int b = fs.ReadByte();
            fs.Position = 5000;
            fs.WriteByte((byte)(b ^ 0x10));
        }

        await using var reopened = await SegmentedLog.OpenAsync(options);
        var ex = Assert.ThrowsAsync<LogCorruptedException>(async () =>
        {
            await foreach (var _ in reopened.ReadAsync(0))
            {
            }
        });
        Assert.That(ex!.FilePath, Is.EqualTo(first));
        Assert.That(ex.Position, Is.LessThanOrEqualTo(5000));
    }

    [Test]
    public async Task CrashBetweenRollAndSeal_KeepsTheNextSegmentsAcknowledgedRecords()
    {
        var options = Options(o => o with { SegmentSize = 1024 * 1024, MaximumBatchSize = 64 * 1024, PreallocationMinimumStep = 256 * 1024, PreallocationMaximumStep = 256 * 1024 });
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 600; i++)
            {
                await log.AppendAsync(Value(i, 4000));
            }
        }

        // Undo the first segment's seal as a crash right after the roll would leave it: no index, and the
        // zero-filled reserved space still at its end (not yet trimmed).
        string first = Path.Combine(options.Directory, "00000000000000000000.log");
        File.Delete(Path.ChangeExtension(first, ".index"));
        using (var fs = new FileStream(first, FileMode.Open, FileAccess.Write))
        {
            fs.SetLength(fs.Length + (512 * 1024));
        }

        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            Assert.That(log.EndOffset, Is.EqualTo(600), "the later segments' acknowledged records are kept");
            int n = 0;
            await foreach (var record in log.ReadAsync(0))
            {
                Assert.That(record.Value, Is.EqualTo(Value(n, 4000)));
                n++;
            }

            Assert.That(n, Is.EqualTo(600));
        }

        Assert.That(File.Exists(Path.ChangeExtension(first, ".index")), Is.True, "recovery finished the seal");
    }
}
