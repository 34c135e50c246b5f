using AppendLog.Appender;
using AppendLog.Io;
using AppendLog.Segments;
using AppendLog.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// Deep read-ahead (<see cref="ReadAhead"/>): reads in flight together, taken in file order with the file's bytes, an
/// incomplete read (pool budget spent, readable end) dropping the queue behind it, every chunk back in the pool; and,
/// through a log, a sequential scan reading each chunk once while a lookup (a seek) reads one chunk, not the lookahead.
/// </summary>
[CancelAfter(60_000)]
public sealed class ReadAheadTests
{
    private const int Chunk = 4096;

    /// <summary>A read-only file whose byte at position p is a function of p; optionally holds each read at a gate.</summary>
    private sealed class PatternFile(long length, Action? onRead = null) : IDirectFile
    {
        public string Path => "pattern";

        public bool IsDirect => true;

        public int Alignment => Chunk;

        public long Length => length;

        public static byte At(long p) => (byte)((p * 31) ^ (p >> 12));

        public int Read(Span<byte> buffer, long position)
        {
            onRead?.Invoke();
            int n = (int)Math.Clamp(length - position, 0, buffer.Length);
            for (int i = 0; i < n; i++)
            {
                buffer[i] = At(position + i);
            }

            return n;
        }

        public void Write(ReadOnlySpan<byte> buffer, long position) => throw new NotSupportedException();

        public void Allocate(long position, long length) => throw new NotSupportedException();

        public void SyncData() => throw new NotSupportedException();

        public void Truncate(long length) => throw new NotSupportedException();

        public void Dispose()
        {
        }
    }

    [Test]
    public void ABackgroundRead_OfSeveralChunks_IsOneScatterRequest_StoppingAtTheLimit()
    {
        var file = new CountingFile(new PatternFile(64 * Chunk));
        using var pool = new LogBufferPool(64 * Chunk, Chunk);
        var pieces = ReadWindow.Read(pool, file, 8 * Chunk, count: 8, limit: (13 * Chunk) + 100, foreground: false);
        Assert.That(file.Requests, Is.EqualTo(1), "one request for all the chunks");
        Assert.That(file.LargestRequestBuffers, Is.EqualTo(6), "chunks up to the limit only: 5 whole and 1 partial");
        Assert.That(pieces.Select(p => p.Length), Is.EqualTo(new[] { Chunk, Chunk, Chunk, Chunk, Chunk, 100 }));
        AssertPieces(pieces, 8 * Chunk, 6);
        ReadWindow.Return(pool, pieces);
        Assert.That(pool.RentedBytes, Is.Zero);
    }

    /// <summary>Counts scatter requests, delegating the bytes to <paramref name="inner"/>.</summary>
    private sealed class CountingFile(IDirectFile inner) : IDirectFile
    {
        public int Requests { get; private set; }

        public int LargestRequestBuffers { get; private set; }

        public string Path => inner.Path;

        public bool IsDirect => inner.IsDirect;

        public int Alignment => inner.Alignment;

        public long Length => inner.Length;

        public int Read(Span<byte> buffer, long position)
        {
            Requests++;
            LargestRequestBuffers = Math.Max(LargestRequestBuffers, 1);
            return inner.Read(buffer, position);
        }

        public int ReadScatter(IReadOnlyList<Memory<byte>> buffers, long position)
        {
            Requests++;
            LargestRequestBuffers = Math.Max(LargestRequestBuffers, buffers.Count);
            return inner.ReadScatter(buffers, position);
        }

        public void Write(ReadOnlySpan<byte> buffer, long position) => throw new NotSupportedException();

        public void Allocate(long position, long length) => throw new NotSupportedException();

        public void SyncData() => throw new NotSupportedException();

        public void Truncate(long length) => throw new NotSupportedException();

        public void Dispose()
        {
        }
    }

    [TestCase(1, 1, 1)]
    [TestCase(2, 1, 2)]
    [TestCase(4, 2, 2)]
    [TestCase(16, 8, 2)]
    [TestCase(64, 8, 8)]
    [TestCase(1024, 8, 128)]
    public void Shape_SplitsTheLookaheadIntoAtMostEightReads(int pieces, int reads, int piecesPerRead) =>
        Assert.That(ReadAhead.Shape(pieces), Is.EqualTo((reads, piecesPerRead)));

    /// <summary>
    /// Four reads are queued; each read holds at a gate until four have started (or 10 s pass). Serialized reads would
    /// leave the gate waiting and the count below four.
    /// </summary>
    [Test]
    public async Task QueuedReads_AreInFlightTogether_AndAreTakenInFileOrder()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 16), io); // blocking reads on a 2-core machine: do not wait for injection
        int started = 0, maxInFlight = 0, inFlight = 0;
        using var allStarted = new ManualResetEventSlim();
        var file = new PatternFile(64 * Chunk, () =>
        {
            int now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref maxInFlight, now);
            if (Interlocked.Increment(ref started) >= 4)
            {
                allStarted.Set();
            }

            allStarted.Wait(TimeSpan.FromSeconds(10));
            Interlocked.Decrement(ref inFlight);
        });
        using var pool = new LogBufferPool(64 * Chunk, Chunk);
        var ahead = new ReadAhead(pool);
        ahead.TopUp(file, 0, until: 8 * Chunk, limit: file.Length, reads: 4, piecesPerRead: 2);
        Assert.That(ahead.Count, Is.EqualTo(4));
        Assert.That(ahead.End, Is.EqualTo(8 * Chunk));
        for (long start = 0; start < 8 * Chunk; start += 2 * Chunk)
        {
            var pieces = await ahead.TakeAsync(start);
            AssertPieces(pieces, start, 2);
            ReadWindow.Return(pool, pieces);
        }

        Assert.That(maxInFlight, Is.GreaterThanOrEqualTo(4), "four reads were in flight at once");
        Assert.That(pool.RentedBytes, Is.Zero);
    }

    /// <summary>
    /// Property: any sequence of top-ups (depth 1-8, 1-4 chunks per read, any readable limit) and in-order takes
    /// yields contiguous pieces holding the file's bytes, never past the limit, stops at the first incomplete read, and
    /// returns every chunk to the pool.
    /// </summary>
    [Test]
    public void AnyTopUpsAndTakes_YieldTheFilesBytesInOrder_AndLeakNoChunk()
    {
        var gen =
            from limitChunks in Gen.Choose(1, 80)
            from tail in Gen.Choose(0, Chunk - 1)
            from budgetChunks in Gen.Choose(1, 40)
            from steps in Gen.ArrayOf(Gen.Zip(Gen.Choose(1, 8), Gen.Choose(1, 4)), 12)
            select (limitChunks, tail, budgetChunks, steps);
        int seed = Seeds.Get();
        var config = Config.QuickThrowOnFailure.WithMaxTest(60)
            .WithReplay(Microsoft.FSharp.Core.FSharpOption<Replay>.Some(new Replay(new Rnd((ulong)(uint)seed), Microsoft.FSharp.Core.FSharpOption<int>.None)));
        Prop.ForAll(Arb.From(gen), c =>
        {
            long limit = ((long)c.limitChunks * Chunk) - c.tail;
            var file = new PatternFile(limit + (3 * Chunk)); // bytes past the limit exist but must not be kept
            using var pool = new LogBufferPool((long)c.budgetChunks * Chunk, Chunk);
            var ahead = new ReadAhead(pool);
            long next = 0;
            foreach (var (reads, per) in c.steps)
            {
                long from = ahead.Count > 0 ? ahead.End : next;
                ahead.TopUp(file, from, from + ((long)reads * per * Chunk), limit, reads, per);
                var pieces = ahead.TakeAsync(next).AsTask().GetAwaiter().GetResult();
                foreach (var p in pieces)
                {
                    Assert.That(p.FileStart, Is.EqualTo(next), "contiguous");
                    Assert.That(p.FileStart + p.Length, Is.LessThanOrEqualTo(limit), "never past the readable limit");
                    AssertBytes(p);
                    next += p.Length;
                }

                bool whole = pieces.Count > 0 && pieces[^1].Length == Chunk;
                ReadWindow.Return(pool, pieces);
                if (!whole)
                {
                    Assert.That(ahead.Count, Is.Zero, "an incomplete read drops the queue behind it");
                    break;
                }
            }

            ahead.ClearAsync().AsTask().GetAwaiter().GetResult();
            Assert.That(pool.RentedBytes, Is.Zero, "every chunk is back in the pool");
        }).Check(config);
    }

    [Test]
    public async Task TakingAtAnotherPosition_DropsEveryReadInFlight()
    {
        var file = new PatternFile(64 * Chunk);
        using var pool = new LogBufferPool(64 * Chunk, Chunk);
        var ahead = new ReadAhead(pool);
        ahead.TopUp(file, 8 * Chunk, until: 24 * Chunk, limit: file.Length, reads: 4, piecesPerRead: 4);
        var pieces = await ahead.TakeAsync(0); // the reader seeked back
        Assert.That(pieces, Is.Empty);
        Assert.That(ahead.Count, Is.Zero);
        Assert.That(pool.RentedBytes, Is.Zero);
    }

    /// <summary>
    /// Through a log on simulated storage: a sequential scan of 6 MiB with an 8 MiB lookahead reads every chunk once
    /// (the reads in flight are used, not thrown away and read again), in order; a lookup at a random offset (a new
    /// reader, as after a seek) reads a couple of chunks, not the lookahead.
    /// </summary>
    [Test]
    public async Task ThroughALog_AScanReadsEachChunkOnce_AndALookupReadsOneChunk()
    {
        var storage = new SimulatedStorage(Seeds.Get());
        var options = new LogOptions
        {
            Directory = "/sim/log",
            SegmentSize = 64L * 1024 * 1024,
            MaximumReadAhead = 8L * 1024 * 1024,
            BatchCache = new BatchCache(0),
        };
        var log = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default);
        var value = new byte[1000];
        var appends = new List<Task<long>>();
        for (int i = 0; i < 6 * 1024; i++)
        {
            value[0] = (byte)i;
            appends.Add(log.AppendAsync(value.ToArray()).AsTask());
        }

        await Task.WhenAll(appends);
        await log.DisposeAsync();
        await using var reopened = log = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default); // nothing left in the writer's memory
        long bytes = 0, expectedOffset = 0;
        long before = storage.GetOperationCount(StorageOperation.Read);
        await foreach (var batch in log.ReadBatchesAsync(0))
        {
            Assert.That(batch.BaseOffset, Is.EqualTo(expectedOffset), "in order, none skipped");
            expectedOffset = batch.LastOffset + 1;
            bytes += batch.Bytes.Length;
        }

        long scanReads = storage.GetOperationCount(StorageOperation.Read) - before;
        long chunks = (bytes + LogBufferPool.DefaultChunkSize - 1) / LogBufferPool.DefaultChunkSize;
        Assert.That(expectedOffset, Is.EqualTo(6 * 1024));
        Assert.That(scanReads, Is.InRange(chunks, chunks + 2), "each chunk read once");

        before = storage.GetOperationCount(StorageOperation.Read);
        await foreach (var batch in log.ReadBatchesAsync(3000))
        {
            Assert.That(batch.BaseOffset, Is.LessThanOrEqualTo(3000));
            break;
        }

        Assert.That(storage.GetOperationCount(StorageOperation.Read) - before, Is.InRange(1, 2), "a lookup reads one chunk (two when the batch straddles)");
    }

    /// <summary>
    /// Through a log: every other stretch of 256 records is in the cache, so a scan hops over them and seeks at each
    /// uncached stretch. A reader that seeks drops back to one chunk and ramps up again over the ~4 chunks of a stretch,
    /// so each stretch wastes only the few chunks it queued at its end. One that kept its grown lookahead would queue up
    /// to 8 MiB (128 chunks) at each stretch and drop it at the next hop.
    /// </summary>
    [Test]
    public async Task AReaderThatSeeks_DropsBackToOneChunk()
    {
        const int Records = 16 * 1024; // 16 MiB: room past each stretch for a kept lookahead to show
        var storage = new SimulatedStorage(Seeds.Get());
        var options = new LogOptions
        {
            Directory = "/sim/log",
            SegmentSize = 64L * 1024 * 1024,
            MaximumReadAhead = 8L * 1024 * 1024,
            BatchCache = new BatchCache(64L * 1024 * 1024),
        };
        var log = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default);
        var appends = new List<Task<long>>();
        for (int i = 0; i < Records; i++)
        {
            appends.Add(log.AppendAsync(new byte[1000]).AsTask());
        }

        await Task.WhenAll(appends);
        await log.DisposeAsync();
        await using var reopened = log = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default);
        const int Stretch = 256;
        for (long from = Stretch; from < Records; from += 2 * Stretch)
        {
            int n = 0;
            await foreach (var unused in log.ReadBatchesAsync(from))
            {
                if (++n == Stretch)
                {
                    break;
                }
            }
        }

        long before = storage.GetOperationCount(StorageOperation.Read);
        long uncachedBytes = 0, next = 0;
        await foreach (var batch in log.ReadBatchesAsync(0))
        {
            Assert.That(batch.BaseOffset, Is.EqualTo(next));
            next = batch.LastOffset + 1;
            if (batch.BaseOffset / Stretch % 2 == 0)
            {
                uncachedBytes += batch.Bytes.Length;
            }
        }

        long reads = storage.GetOperationCount(StorageOperation.Read) - before;
        long stretches = Records / Stretch / 2;
        long chunks = uncachedBytes / LogBufferPool.DefaultChunkSize;
        Assert.That(next, Is.EqualTo(Records));
        Assert.That(reads, Is.LessThanOrEqualTo(chunks + (16 * stretches)), $"{reads} reads for {chunks} uncached chunks in {stretches} stretches");
    }

    private static void AssertPieces(List<ReadWindow.Piece> pieces, long start, int count)
    {
        Assert.That(pieces, Has.Count.EqualTo(count));
        for (int i = 0; i < pieces.Count; i++)
        {
            Assert.That(pieces[i].FileStart, Is.EqualTo(start + ((long)i * Chunk)));
            AssertBytes(pieces[i]);
        }
    }

    private static void AssertBytes(ReadWindow.Piece piece)
    {
        var span = piece.Chunk.Span[..piece.Length];
        for (int i = 0; i < span.Length; i++)
        {
            if (span[i] != PatternFile.At(piece.FileStart + i))
            {
                Assert.Fail($"byte {piece.FileStart + i} differs");
            }
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
