using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>What readers ask the writer: how far a segment is readable, and the durable tail still in its chunks.</summary>
internal sealed partial class LogWriter
{
    /// <summary>
    /// The bytes of durable retained chunks (<see cref="_retained"/>) kept beyond those the last sync made durable: the
    /// slack of a tailing reader that runs behind the durable end (woken late, one of several readers woken together,
    /// or still reading what a sync made durable when the next, pipelined one ends): 1 MiB, about 1 s of a log appended
    /// at 1,000 records of 1 KiB per second. Measured beside a cold scan on a loaded 2-core machine: tailing readers
    /// looked batches up as far as 1 MiB behind the durable end.
    /// </summary>
    internal const int RetainedDurableBytesMax = 1024 * 1024;

    /// <summary>
    /// <see cref="RetainedDurableBytesMax"/> in chunks, at least 4: 16 at the default chunk size of 64 KiB.
    /// </summary>
    internal int RetainedDurableChunksMax => Math.Max(4, RetainedDurableBytesMax / _pool.ChunkSize);

    /// <summary>
    /// Closed chunks of the active segment whose writes are done, in file order, kept readable for tailing readers
    /// until they are replaced: a chunk's write completes before the sync that makes its last batches durable, so
    /// without them a reader woken by that sync found those batches gone from memory and read them from disk; under a
    /// concurrent scan a sync takes long enough to cover several whole chunks (measured: most of a tailing reader's
    /// batches then came from disk). Every chunk not yet durable is kept (it is needed as soon as the sync ends), those
    /// the last sync made durable, and the last <see cref="RetainedDurableChunksMax"/> durable ones, within
    /// <see cref="RetainedChunksMax"/> and only while the pool is not pressed (<see cref="TrimRetainedUnsynchronized"/>); an appender short of chunks takes them back
    /// first. Readers copy from them only below the readable (durable) limit, as from every chunk.
    /// </summary>
    private readonly List<ChunkSlot> _retained = new();

    /// <summary>The durable end before the last sync completed (<see cref="NoteDurableAdvanceUnsynchronized"/>).</summary>
    private long _durableBeforeLastSync;

    /// <summary>The durable end the last sync reached.</summary>
    private long _durableAtLastSync;

    /// <summary>Notes that a sync moved the durable end to <paramref name="durable"/>, then trims the retained chunks.</summary>
    private void NoteDurableAdvanceUnsynchronized(long durable)
    {
        _durableBeforeLastSync = Math.Min(_durableAtLastSync, durable); // a truncation or reset restarts the positions lower
        _durableAtLastSync = durable;
        TrimRetainedUnsynchronized();
    }

    /// <summary>The most chunks one log retains: an eighth of the pool (as for one reader's read-ahead), at least <see cref="RetainedDurableChunksMax"/> + 1.</summary>
    private int RetainedChunksMax => (int)Math.Max(RetainedDurableChunksMax + 1, _pool.BudgetBytes / 8 / _pool.ChunkSize);

    /// <summary>Chunks retained now (tests).</summary>
    internal int RetainedChunkCount
    {
        get
        {
            lock (_lock)
            {
                return _retained.Count;
            }
        }
    }

    /// <summary>
    /// The end of the readable (durable) bytes of <paramref name="segment"/>: its size once sealed or behind the durable
    /// watermark, else the durable position inside it. Under <see cref="SyncRoot"/>.
    /// </summary>
    public long ReadableLimitUnsynchronized(Segment segment) =>
        Math.Clamp(DurableGlobal - segment.GlobalStart, 0, segment.Size);

    /// <summary>
    /// Copies the durable bytes [position, position + destination.Length) of the active segment from the chunks the
    /// writer still holds (the tail a tailing reader asks for was usually synced a moment ago and is still in memory),
    /// when every byte is there and the segment's content is still <paramref name="contentKey"/>. False otherwise (the
    /// reader then goes to the disk). The copy happens under the writer's lock: it is a memcpy of one batch.
    /// </summary>
    public bool TryCopyFromMemory(Segment segment, long contentKey, long position, Span<byte> destination)
    {
        lock (_lock)
        {
            if (!ReferenceEquals(segment, _active) || segment.ContentKey != contentKey
                || position + destination.Length > ReadableLimitUnsynchronized(segment))
            {
                return false;
            }

            while (!destination.IsEmpty)
            {
                if (!TryCopyPieceUnsynchronized(segment, position, destination, out int copied))
                {
                    return false;
                }

                destination = destination[copied..];
                position += copied;
            }

            return true;
        }
    }

    private bool TryCopyPieceUnsynchronized(Segment segment, long position, Span<byte> destination, out int copied)
    {
        if (_idleTail is not null && position >= _idleTailFileStart && position < _idleTailFileStart + _idleTail.Length)
        {
            int from = (int)(position - _idleTailFileStart);
            copied = Math.Min(_idleTail.Length - from, destination.Length);
            _idleTail.AsSpan(from, copied).CopyTo(destination);
            return true;
        }

        // The tail a reader asks for is nearly always in the chunk being filled; the chunks still being written are
        // searched only when it is not (there are few unless writes are backed up behind the disk).
        if (_current is { } current && Holds(current, segment, position))
        {
            return CopyFrom(current, position, destination, out copied);
        }

        foreach (var slot in _liveSlots)
        {
            if (Holds(slot, segment, position))
            {
                return CopyFrom(slot, position, destination, out copied);
            }
        }

        for (int i = _retained.Count - 1; i >= 0; i--)
        {
            if (Holds(_retained[i], segment, position))
            {
                return CopyFrom(_retained[i], position, destination, out copied);
            }
        }

        copied = 0;
        return false;

        static bool Holds(ChunkSlot slot, Segment segment, long position) =>
            ReferenceEquals(slot.Segment, segment) && position >= slot.FileStart && position < slot.FileStart + slot.Fill;

        static bool CopyFrom(ChunkSlot slot, long position, Span<byte> destination, out int copied)
        {
            int from = (int)(position - slot.FileStart);
            copied = Math.Min(slot.Fill - from, destination.Length);
            slot.Chunk.Span.Slice(from, copied).CopyTo(destination);
            return true;
        }
    }

    /// <summary>
    /// Keeps a closed chunk whose last write is done readable (<see cref="_retained"/>) instead of returning it to the
    /// pool at once, when it holds data of the active segment; else returns it.
    /// </summary>
    private void RetireSlotUnsynchronized(ChunkSlot slot)
    {
        if (_closing || _fault is not null || slot.Fill == 0 || !ReferenceEquals(slot.Segment, _active))
        {
            FreeSlotUnsynchronized(slot);
            return;
        }

        // Full chunks complete out of order: keep the list in file order (nearly always an append at the end).
        int at = _retained.Count;
        while (at > 0 && _retained[at - 1].FileStart > slot.FileStart)
        {
            at--;
        }

        _retained.Insert(at, slot);
        TrimRetainedUnsynchronized();
    }

    /// <summary>
    /// Returns retained chunks to the pool, oldest first, while the oldest is of an earlier segment; or more than
    /// <see cref="RetainedDurableChunksMax"/> retained chunks are durable and the oldest was durable before the last sync
    /// (the readers that sync woke have until the next one to copy what it made durable: a slow sync under load covers
    /// many chunks); or more than <see cref="RetainedChunksMax"/> are retained; or the pool is pressed (appenders wait
    /// for it, or more than half its budget is rented).
    /// </summary>
    private void TrimRetainedUnsynchronized()
    {
        while (_retained.Count > 0)
        {
            var oldest = _retained[0];
            bool release = !ReferenceEquals(oldest.Segment, _active)
                || _retained.Count > RetainedChunksMax
                || (_retained.Count > RetainedDurableChunksMax && EndGlobal(_retained[RetainedDurableChunksMax]) <= DurableGlobal
                    && EndGlobal(oldest) <= _durableBeforeLastSync)
                || _pool.WaitingRenters > 0
                || _pool.RentedBytes > _pool.BudgetBytes / 2;
            if (!release)
            {
                return;
            }

            _retained.RemoveAt(0);
            FreeSlotUnsynchronized(oldest);
        }

        static long EndGlobal(ChunkSlot slot) => slot.Segment.GlobalStart + slot.FileStart + slot.Fill;
    }

    /// <summary>Returns every retained chunk to the pool (idle, close, truncation, reset: the content they hold ends).</summary>
    private bool ReleaseRetainedUnsynchronized()
    {
        bool any = _retained.Count > 0;
        foreach (var slot in _retained)
        {
            FreeSlotUnsynchronized(slot);
        }

        _retained.Clear();
        return any;
    }

    /// <summary>The retained chunk, if any, returned to the pool so an appender can rent it. True when one was.</summary>
    private bool ReleaseOldestRetainedUnsynchronized()
    {
        if (_retained.Count == 0)
        {
            return false;
        }

        var oldest = _retained[0];
        _retained.RemoveAt(0);
        FreeSlotUnsynchronized(oldest);
        return true;
    }

    private void FreeSlotUnsynchronized(ChunkSlot slot)
    {
        _pool.Return(slot.Chunk);
        slot.Chunk = null!;
        slot.Segment = null!;
        _freeSlots.Push(slot);
    }

    /// <summary>Called (outside the lock) for each segment that left the log, so readers' caches close its handle.</summary>
    public Action<Segment>? SegmentRemoved { get; set; }

    /// <summary>The segment appends go to now.</summary>
    public Segment ActiveUnsynchronized => _active;
}
