using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// The writer's in-memory tail that tailing readers copy from: a chunk whose write completed stays readable after the
/// sync that makes its last batches durable (that sync ends after the write, so a chunk returned to the pool at the
/// write's end left those batches to the disk), within a bound, yielding to appenders short of chunks, and never
/// past the durable end.
/// </summary>
[CancelAfter(60_000)]
public sealed class WriterTailTests
{
    /// <summary>1,000-byte values: with the batch's header about 1,070 bytes, 61 batches fill a 64 KiB chunk.</summary>
    private const int ValueSize = 1000;

    private TempDirectory _dir = null!;
    private LogBufferPool _pool = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory("appendlog-writer-tail");
        _pool = new LogBufferPool(64L * 1024 * 1024);
    }

    [TearDown]
    public void TearDown()
    {
        _dir.Dispose();
        _pool.Dispose();
    }

    private LogOptions Options(LogBufferPool? pool = null) => new()
    {
        Directory = _dir.File("log"),
        BufferPool = pool ?? _pool,
        BatchCache = new BatchCache(0), // every batch is then the writer's or the disk's
    };

    /// <summary>
    /// About 4.3 chunks appended one durable record at a time: every batch, including those in the chunks whose writes
    /// completed before their last sync, reads from memory.
    /// </summary>
    [Test]
    public async Task BatchesOfChunksWrittenBeforeTheirSync_AreReadFromMemory(CancellationToken cancellationToken)
    {
        const int Records = 260;
        await using var log = await SegmentedLog.OpenAsync(Options());
        for (int i = 0; i < Records; i++)
        {
            await log.AppendAsync(new byte[ValueSize], cancellationToken);
        }

        Assert.That(await CountAsync(log, cancellationToken), Is.EqualTo(Records));
        Assert.That(log.BatchSources, Is.EqualTo((0L, (long)Records, 0L)), "every batch from the writer's memory");
        Assert.That(log.RetainedWriterChunks, Is.EqualTo(4), "four chunks closed and written, all durable: within the bound");
    }

    /// <summary>
    /// Tailing readers woken together by each sync (the next record is appended only once all of them returned the
    /// last): none reads a batch from disk, also the batches that end a chunk or straddle two.
    /// </summary>
    [Test]
    public async Task TailReadersWokenTogether_ReadEveryBatchFromMemory(CancellationToken cancellationToken)
    {
        const int Records = 300;
        const int Readers = 4;
        await using var log = await SegmentedLog.OpenAsync(Options());
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var seen = new long[Readers];
        var readers = Enumerable.Range(0, Readers).Select(r => Task.Run(async () =>
        {
            await foreach (var record in log.TailAsync(0, stop.Token))
            {
                Volatile.Write(ref seen[r], record.Offset + 1);
                if (record.Offset + 1 == Records)
                {
                    return;
                }
            }
        })).ToArray();

        for (int i = 0; i < Records; i++)
        {
            await log.AppendAsync(new byte[ValueSize], cancellationToken);
            while (seen.Any(s => Volatile.Read(ref s) < i + 1))
            {
                await Task.Delay(1, cancellationToken);
            }
        }

        await Task.WhenAll(readers);
        var sources = log.BatchSources;
        Assert.That(sources.Disk, Is.Zero, "no tail reader went to disk");
        Assert.That(sources.Writer, Is.EqualTo((long)Records * Readers));
    }

    /// <summary>
    /// Twenty-one chunks' worth, all durable, one record per sync: only the last <c>RetainedDurableChunksMax</c> (16 of
    /// 64 KiB: 1 MiB) closed chunks stay, so a reader from the start reads the older ones from disk and the recent ones
    /// (and the chunk being filled) from memory.
    /// </summary>
    [Test]
    public async Task DurableChunksRetained_AreBounded_OlderOnesAreReadFromDisk(CancellationToken cancellationToken)
    {
        const int Records = 21 * 61;
        await using var log = await SegmentedLog.OpenAsync(Options());
        for (int i = 0; i < Records; i++)
        {
            await log.AppendAsync(new byte[ValueSize], cancellationToken);
        }

        Assert.That(log.RetainedWriterChunks, Is.EqualTo(16));
        Assert.That(await CountAsync(log, cancellationToken), Is.EqualTo(Records));
        var sources = log.BatchSources;
        Assert.That(sources.Disk + sources.Writer, Is.EqualTo(Records));
        Assert.That(sources.Writer, Is.InRange(16 * 61, 18 * 61), "sixteen retained chunks and the partial current one");
        Assert.That(sources.Disk, Is.GreaterThan(3 * 61), "the first four chunks went back to the pool");
    }

    /// <summary>
    /// A pool of six chunks (the smallest a log with 64 KiB batches accepts): the log keeps appending, its retained
    /// chunks go back to the pool whenever more than half of it is rented (three chunks: at most two retained beside
    /// the chunk being filled, where an unpressed pool keeps sixteen), and what was appended reads back whole.
    /// </summary>
    [Test]
    public async Task RetainedChunks_YieldToAppenders_WhenThePoolIsPressed(CancellationToken cancellationToken)
    {
        const int Records = 400;
        using var small = new LogBufferPool(6 * LogBufferPool.DefaultChunkSize);
        await using var log = await SegmentedLog.OpenAsync(Options(small) with { MaximumBatchSize = 64 * 1024 });
        for (int i = 0; i < Records; i++)
        {
            await log.AppendAsync(new byte[ValueSize], cancellationToken);
            Assert.That(log.RetainedWriterChunks, Is.LessThanOrEqualTo(2), "retention stops at half of the pool");
        }

        Assert.That(await CountAsync(log, cancellationToken), Is.EqualTo(Records));
    }

    /// <summary>
    /// With manual flushes, chunks written but not yet synced are retained, yet a tailing reader gets only the records
    /// made durable, and the rest, from memory, once the flush makes them durable.
    /// </summary>
    [Test]
    public async Task RetainedChunksNotYetDurable_AreNotRead_UntilTheSync(CancellationToken cancellationToken)
    {
        const int Durable = 100;
        const int Pending = 200;
        await using var log = await SegmentedLog.OpenAsync(Options() with { FlushPolicy = FlushPolicy.Manual });
        var durable = Enumerable.Range(0, Durable).Select(_ => log.AppendAsync(new byte[ValueSize], cancellationToken).AsTask()).ToArray();
        await AcceptedAsync(log, Durable, cancellationToken);
        await log.FlushAsync(cancellationToken);
        await Task.WhenAll(durable);

        // Accepted (the chunks they fill are written), durable only at the next flush.
        var pending = Enumerable.Range(0, Pending).Select(_ => log.AppendAsync(new byte[ValueSize], cancellationToken).AsTask()).ToArray();
        await AcceptedAsync(log, Durable + Pending, cancellationToken);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var received = new List<long>();
        var firstDurable = new TaskCompletionSource();
        var tail = Task.Run(async () =>
        {
            await foreach (var record in log.TailAsync(0, stop.Token))
            {
                lock (received)
                {
                    received.Add(record.Offset);
                }

                if (record.Offset + 1 == Durable)
                {
                    firstDurable.SetResult();
                }

                if (record.Offset + 1 == Durable + Pending)
                {
                    return;
                }
            }
        });

        await firstDurable.Task.WaitAsync(cancellationToken);
        await Task.Delay(200, cancellationToken); // the pending chunks' writes complete meanwhile; the reader must not see them
        lock (received)
        {
            Assert.That(received, Has.Count.EqualTo(Durable), "nothing beyond the durable end");
        }

        Assert.That(log.DurableEndOffset, Is.EqualTo(Durable));
        Assert.That(log.RetainedWriterChunks, Is.GreaterThanOrEqualTo(3), "the pending chunks written meanwhile are retained");
        await log.FlushAsync(cancellationToken);
        await Task.WhenAll(pending);
        await tail;
        Assert.That(received, Is.EqualTo(Enumerable.Range(0, Durable + Pending).Select(i => (long)i)));
        Assert.That(log.BatchSources.Disk, Is.Zero);
    }

    /// <summary>Waits until the log has accepted <paramref name="count"/> records (an append may wait for reserved space first).</summary>
    private static async Task AcceptedAsync(SegmentedLog log, long count, CancellationToken cancellationToken)
    {
        while (log.EndOffset < count)
        {
            await Task.Delay(1, cancellationToken);
        }
    }

    private static async Task<int> CountAsync(SegmentedLog log, CancellationToken cancellationToken)
    {
        int n = 0;
        await foreach (var batch in log.ReadBatchesAsync(0, cancellationToken))
        {
            n++;
        }

        return n;
    }
}
