using AppendLog.Buffers;
using AppendLog.Diagnostics;
using AppendLog.Io;

namespace AppendLog.Segments;

/// <summary>
/// A reader's view of a run of one segment file: consecutive pieces, each one pooled aligned chunk holding the file's
/// bytes [k × chunk, (k + 1) × chunk) (O_DIRECT reads need aligned buffers, positions and lengths, and every read of
/// log data goes through the shared pool). Only the last piece may be short (the readable end when it was read).
/// The reader drops pieces behind it and appends read-ahead pieces in front, so a sequential scan reads each byte once
/// and holds at most its read-ahead in buffers. Not thread-safe: one reader owns it.
/// </summary>
internal sealed class ReadWindow : IDisposable
{
    private readonly LogBufferPool _pool;
    private readonly List<Piece> _pieces = new();

    public ReadWindow(LogBufferPool pool)
    {
        _pool = pool;
    }

    public bool IsEmpty => _pieces.Count == 0;

    /// <summary>The first file position held (valid when not empty).</summary>
    public long Start => _pieces[0].FileStart;

    /// <summary>One past the last file position held (valid when not empty).</summary>
    public long End => _pieces[^1].FileStart + _pieces[^1].Length;

    /// <summary>True when the last piece is whole, so more pieces can follow it.</summary>
    public bool CanExtend => !IsEmpty && _pieces[^1].Length == _pool.ChunkSize;

    /// <summary>True when every byte of [position, position + length) is held.</summary>
    public bool Covers(long position, long length) => !IsEmpty && position >= Start && position + length <= End;

    /// <summary>Copies the held bytes from <paramref name="position"/> into <paramref name="destination"/> (which <see cref="Covers"/>).</summary>
    public void CopyTo(long position, Span<byte> destination)
    {
        Invariant.Assert(Covers(position, destination.Length), "a copy stays inside the window");
        int chunkSize = _pool.ChunkSize;
        int index = (int)((position - Start) / chunkSize);
        while (!destination.IsEmpty)
        {
            var piece = _pieces[index++];
            int from = (int)(position - piece.FileStart);
            int take = Math.Min(piece.Length - from, destination.Length);
            piece.Chunk.Span.Slice(from, take).CopyTo(destination);
            destination = destination[take..];
            position += take;
        }
    }

    /// <summary>Returns the pieces wholly before <paramref name="position"/> to the pool.</summary>
    public void DropBefore(long position)
    {
        int drop = 0;
        while (drop < _pieces.Count && _pieces[drop].FileStart + _pieces[drop].Length <= position && _pieces[drop].Length == _pool.ChunkSize)
        {
            _pool.Return(_pieces[drop].Chunk);
            drop++;
        }

        _pieces.RemoveRange(0, drop);
    }

    /// <summary>Drops a short last piece (read at an earlier readable end) so the window can be extended from its start.</summary>
    public void DropShortEnd()
    {
        if (!IsEmpty && _pieces[^1].Length < _pool.ChunkSize)
        {
            _pool.Return(_pieces[^1].Chunk);
            _pieces.RemoveAt(_pieces.Count - 1);
        }
    }

    /// <summary>Appends pieces read by <see cref="Read"/>; they must start where the window ends.</summary>
    public void Append(List<Piece> pieces)
    {
        if (pieces.Count > 0)
        {
            Invariant.Assert(IsEmpty || pieces[0].FileStart == End, "read-ahead pieces continue the window");
            Invariant.Assert(IsEmpty || CanExtend, "only a window ending in a whole piece is extended");
        }

        _pieces.AddRange(pieces);
    }

    /// <summary>Returns every piece to the pool.</summary>
    public void Clear()
    {
        foreach (var p in _pieces)
        {
            _pool.Return(p.Chunk);
        }

        _pieces.Clear();
    }

    public void Dispose() => Clear();

    /// <summary>
    /// Reads up to <paramref name="count"/> pieces from the chunk-aligned <paramref name="fileStart"/>, keeping no byte at or
    /// past <paramref name="limit"/> (the readable end when the read starts); stops after a short piece. The chunks are
    /// rented first and read with one scatter read (<see cref="IDirectFile.ReadScatter"/>: one preadv of up to
    /// count × 64 KiB), since the disk serves one large request much faster than as many 64 KiB ones (ReadBench's
    /// O_DIRECT baseline on this machine kind: 1 MiB at depth 1 ≈ 1.2 GB/s, 64 KiB at depth 1 ≈ 0.5 GB/s). When the
    /// pool's budget is spent, a foreground read (<paramref name="foreground"/>) takes chunks outside it (it never waits:
    /// see <see cref="LogBufferPool.RentOutsideBudget"/>), a background read-ahead reads only the chunks it got.
    /// </summary>
    /// <exception cref="IOException">The read failed (the chunks are returned first).</exception>
    public static List<Piece> Read(LogBufferPool pool, IDirectFile file, long fileStart, int count, long limit, bool foreground)
    {
        Invariant.Assert(fileStart % pool.ChunkSize == 0, "pieces start at chunk boundaries");
        // Chunks needed to reach the limit: (limit - fileStart) rounded up, e.g. 100 KiB left = 2 chunks of 64 KiB.
        long left = limit - fileStart;
        int wanted = left <= 0 ? 0 : (int)Math.Min(count, (left + pool.ChunkSize - 1) / pool.ChunkSize);
        var chunks = new List<AlignedChunk>(wanted);
        try
        {
            for (int i = 0; i < wanted; i++)
            {
                if (!pool.TryRentForRead(out var chunk))
                {
                    if (!foreground)
                    {
                        break;
                    }

                    chunk = pool.RentOutsideBudget();
                }

                chunks.Add(chunk);
            }

            var pieces = new List<Piece>(chunks.Count);
            if (chunks.Count == 0)
            {
                return pieces;
            }

            var buffers = new Memory<byte>[chunks.Count];
            for (int i = 0; i < buffers.Length; i++)
            {
                buffers[i] = chunks[i].Memory;
            }

            int read = file.ReadScatter(buffers, fileStart);
            AppendLogMetrics.Read(read);
            long kept = Math.Min(read, left);
            long position = fileStart;
            int used = 0;
            while (used < chunks.Count && kept > 0)
            {
                int length = (int)Math.Min(kept, pool.ChunkSize);
                pieces.Add(new Piece(chunks[used++], position, length));
                position += length;
                kept -= length;
                if (length < pool.ChunkSize)
                {
                    break;
                }
            }

            for (int i = used; i < chunks.Count; i++)
            {
                pool.Return(chunks[i]);
            }

            return pieces;
        }
        catch
        {
            foreach (var c in chunks)
            {
                pool.Return(c);
            }

            throw;
        }
    }

    /// <summary>Returns pieces that were read but not appended.</summary>
    public static void Return(LogBufferPool pool, List<Piece> pieces)
    {
        foreach (var p in pieces)
        {
            pool.Return(p.Chunk);
        }

        pieces.Clear();
    }

    /// <summary>One chunk holding <see cref="Length"/> bytes of the file from <see cref="FileStart"/>.</summary>
    internal readonly record struct Piece(AlignedChunk Chunk, long FileStart, int Length);
}
