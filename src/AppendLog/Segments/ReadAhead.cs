using AppendLog.Diagnostics;
using AppendLog.Io;

namespace AppendLog.Segments;

/// <summary>
/// A sequential reader's reads in flight ahead of its <see cref="ReadWindow"/>: up to <see cref="ReadsInFlightMax"/>
/// background reads of consecutive runs of chunks, queued in file order, each a thread-pool task reading its chunks
/// with one scatter read (<see cref="IDirectFile.ReadScatter"/>, aligned, O_DIRECT when the file has it: one request of
/// up to 512 KiB at the default <see cref="LogOptions.MaximumReadAhead"/>). The disk serves one 64 KiB O_DIRECT read at a time far below its rate
/// (measured with fio: 64 KiB reads reach about 1 GB/s at queue depth 8, against 1.5 GB/s for 1 MiB at depth 1), so a
/// cold scan needs several requests outstanding. Chunks come from the shared pool without waiting
/// (<see cref="LogBufferPool.TryRentForRead"/>): when the budget is spent a read stops early and the queue behind it is
/// dropped, so read-ahead never holds more than the pool can spare. Not thread-safe: one reader owns it.
/// </summary>
internal sealed class ReadAhead
{
    /// <summary>
    /// The most background reads in flight for one reader. Each blocks a thread-pool thread in pread for its duration
    /// (the .NET file API on Unix), so depth is bounded well below what the disk could take (fio shows little gain past
    /// 8 for 64 KiB reads on the measured disk).
    /// </summary>
    public const int ReadsInFlightMax = 8;

    private readonly LogBufferPool _pool;
    private readonly Queue<Pending> _queue = new();

    public ReadAhead(LogBufferPool pool)
    {
        _pool = pool;
    }

    /// <summary>The reads in flight.</summary>
    public int Count => _queue.Count;

    /// <summary>One past the last file position the queued reads cover (valid when <see cref="Count"/> &gt; 0).</summary>
    public long End { get; private set; }

    /// <summary>
    /// How the lookahead of <paramref name="pieces"/> chunks is split: as many reads as half its chunks, at most
    /// <see cref="ReadsInFlightMax"/>, each of an equal share (1 chunk: 1 read; 16 chunks: 8 reads of 2; 64: 8 of 8).
    /// </summary>
    public static (int Reads, int PiecesPerRead) Shape(int pieces)
    {
        int reads = Math.Clamp(pieces / 2, 1, ReadsInFlightMax);
        return (reads, (pieces + reads - 1) / reads);
    }

    /// <summary>
    /// Queues reads from <paramref name="fileStart"/> (where the window or the queue ends) until the queue covers
    /// <paramref name="until"/> or holds its <paramref name="reads"/>, none reading at or past <paramref name="limit"/>.
    /// </summary>
    public void TopUp(IDirectFile file, long fileStart, long until, long limit, int reads, int piecesPerRead)
    {
        Invariant.Assert(_queue.Count == 0 || fileStart == End, "read-ahead stays contiguous");
        long runBytes = (long)piecesPerRead * _pool.ChunkSize;
        while (_queue.Count < reads && fileStart < until && fileStart < limit)
        {
            long start = fileStart;
            int count = piecesPerRead;
            var pool = _pool;
            _queue.Enqueue(new Pending(start, count, Task.Run(() => ReadWindow.Read(pool, file, start, count, limit, foreground: false))));
            fileStart += runBytes;
            End = fileStart;
        }
    }

    /// <summary>
    /// Takes the oldest read when it starts at <paramref name="fileStart"/>: its pieces (possibly fewer than asked, when
    /// the pool's budget ran out, or a short last one at the readable end), else empty. When the read came back
    /// incomplete or failed, the reads behind it are dropped (they would not continue the window).
    /// </summary>
    public async ValueTask<List<ReadWindow.Piece>> TakeAsync(long fileStart)
    {
        if (_queue.Count == 0 || _queue.Peek().Start != fileStart)
        {
            await ClearAsync().ConfigureAwait(false);
            return [];
        }

        var head = _queue.Dequeue();
        List<ReadWindow.Piece> pieces;
        try
        {
            pieces = await head.Read.ConfigureAwait(false);
        }
        catch (IOException)
        {
            pieces = []; // read again in the foreground, where an error is this reader's
        }

        bool whole = pieces.Count == head.Count && pieces[^1].Length == _pool.ChunkSize;
        if (!whole)
        {
            await ClearAsync().ConfigureAwait(false);
        }

        return pieces;
    }

    /// <summary>Waits for every queued read and returns its chunks to the pool.</summary>
    public async ValueTask ClearAsync()
    {
        while (_queue.TryDequeue(out var pending))
        {
            try
            {
                ReadWindow.Return(_pool, await pending.Read.ConfigureAwait(false));
            }
            catch (IOException)
            {
                // A failed read-ahead is not this reader's error: the bytes it needed are read again in the foreground.
            }
        }
    }

    private readonly record struct Pending(long Start, int Count, Task<List<ReadWindow.Piece>> Read);
}
