using AppendLog.Buffers;
using AppendLog.Diagnostics;
using AppendLog.Io;
using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>The outcome of an append attempt that must not block.</summary>
internal enum AppendStatus
{
    /// <summary>Accepted: offsets assigned, bytes copied into the log's chunks.</summary>
    Accepted,

    /// <summary>The buffer pool's budget is spent; retry after <c>RentAsync</c> has provided a chunk.</summary>
    NeedChunk,

    /// <summary>The segment needs more reserved space; retry after the allocation completes.</summary>
    NeedSpace,

    /// <summary>A suffix truncation is in progress; retry after <c>LogWriter.Unfrozen</c> completes.</summary>
    Frozen,
}

/// <summary>
/// The write pipeline of one log (docs/internals.md, section 3). Appends copy encoded batches into pooled aligned chunks;
/// a full chunk is written at once without waiting for earlier writes (out-of-order dispatch, on
/// <see cref="IoWorkers"/>); a flush writes the partial chunk, waits for every write below its target, runs one
/// fdatasync and completes, in offset order, every append it covers (group commit).
/// <para>
/// Watermarks, as positions in the log's byte sequence (<see cref="Segment.GlobalStart"/>), one chain, owned and
/// asserted by <see cref="SyncScheduler"/>: <c>durable ≤ written ≤ head</c>.
/// <c>head</c>: end of the bytes accepted (appended). <c>written</c>: end of the contiguous prefix whose writes are
/// Done. <c>durable</c>: end of the prefix covered by a completed fdatasync. Every decision about syncs is the
/// scheduler's; this class carries its actions out (<c>DriveUnsynchronized</c>).
/// In offsets: <c>DurableOffset ≤ _nextOffset</c>, both exclusive ends (<see cref="DurableWaiters"/> maps bytes to
/// offsets). Readers see up to <c>DurableOffset</c>.
/// Every field is guarded by <see cref="_lock"/>; waiters are completed after releasing it.
/// </para>
/// </summary>
internal sealed partial class LogWriter
{
    private readonly Lock _lock = new();
    private readonly IStorage _storage;
    private readonly string _directory;
    private readonly LogOptions _options;
    private readonly LogBufferPool _pool;
    private readonly IIoExecutor _io;
    private readonly TimeProvider _time;
    private readonly List<Segment> _segments;
    private readonly Stack<AlignedChunk> _spare = new();
    private readonly HashSet<ChunkSlot> _liveSlots = new();
    private readonly Stack<ChunkSlot> _freeSlots = new();
    private readonly Queue<WriteOp> _writes = new();
    private readonly Stack<WriteOp> _freeWrites = new();

    private Segment _active;
    private ChunkSlot? _current;
    private byte[]? _idleTail;
    private long _idleTailFileStart;
    private long _lastAppendTimestamp;
    private long _nextOffset;
    private readonly SyncScheduler _sync;
    private int _ioInFlight;
    private LogFaultedException? _fault;
    private bool _closing;

    public LogWriter(IStorage storage, LogOptions options, IIoExecutor io, List<Segment> segments, Segment active, CheckpointFile checkpoint)
    {
        _checkpoint = checkpoint;
        _storage = storage;
        _options = options;
        _directory = options.Directory;
        _pool = options.BufferPool ?? LogBufferPool.Shared;
        _io = io;
        _time = options.TimeProvider ?? TimeProvider.System;
        _segments = segments;
        _active = active;
        _nextOffset = active.EndOffset;
        _waiters = new DurableWaiters(active.EndOffset, active.GlobalEnd);
        _sync = new SyncScheduler(options.FlushPolicy ?? FlushPolicy.Default, options.Tuning.SyncsInFlightMax, _time.TimestampFrequency, active.GlobalEnd);
        _allocationStep = options.PreallocationMinimumStep;

        // The first claim waits a whole interval too: a burst right after an open (a restart of many logs) does not
        // pay for a checkpoint write per log on the shared I/O workers.
        _lastCheckpointTimestamp = _time.GetTimestamp();
        _timer = _time.CreateTimer(static s => ((LogWriter)s!).OnFlushTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    private long HeadGlobal => _sync.Head;

    private long WrittenGlobal => _sync.Written;

    private long DurableGlobal => _sync.Durable;

    /// <summary>Guards the segment list too (shared with the read side).</summary>
    public Lock SyncRoot => _lock;

    public long NextOffset
    {
        get
        {
            lock (_lock)
            {
                return _nextOffset;
            }
        }
    }

    public long DurableOffset
    {
        get
        {
            lock (_lock)
            {
                return _waiters.DurableOffset;
            }
        }
    }

    public LogFaultedException? Fault
    {
        get
        {
            lock (_lock)
            {
                return _fault;
            }
        }
    }

    /// <summary>
    /// Keeps the partial last block of the active segment (bytes [AlignDown(Size), Size), read by recovery) without
    /// holding a chunk: the next append rents one and copies these bytes in first, so the next write of that block
    /// rewrites them instead of zeroing them. An idle log thus holds at most 4 KiB, not a chunk.
    /// </summary>
    public void InitializeTail(ReadOnlySpan<byte> partialBlock)
    {
        lock (_lock)
        {
            Invariant.Assert(partialBlock.Length == _active.Size - Alignment.AlignDown(_active.Size), "the tail prefix is the partial last block");
            _idleTail = partialBlock.IsEmpty ? null : partialBlock.ToArray();
            _idleTailFileStart = Alignment.AlignDown(_active.Size);
        }
    }

    /// <summary>
    /// Returns the log's chunks to the pool when nothing was appended for <paramref name="idleFor"/> and everything is
    /// durable, keeping only the partial last block (at most 4 KiB). True when a chunk was released.
    /// </summary>
    public bool ReleaseIdleBuffers(TimeSpan idleFor)
    {
        lock (_lock)
        {
            if (_fault is not null || _closing || _frozen is not null || DurableGlobal != HeadGlobal
                || _time.GetElapsedTime(_lastAppendTimestamp) < idleFor)
            {
                return false;
            }

            bool released = ReleaseRetainedUnsynchronized();
            while (_spare.TryPop(out var spare))
            {
                _pool.Return(spare);
                released = true;
            }

            var slot = _current;
            if (slot is null || slot.WriteBusy || slot.Deferred is not null || slot.Fill != slot.DispatchedTo)
            {
                return released;
            }

            int keepFrom = (int)Alignment.AlignDown(slot.Fill);
            _idleTail = slot.Fill == keepFrom ? null : slot.Chunk.Span[keepFrom..slot.Fill].ToArray();
            _idleTailFileStart = slot.FileStart + keepFrom;
            _current = null;
            slot.Closed = true;
            MaybeReleaseSlotUnsynchronized(slot);
            ReleaseRetainedUnsynchronized();
            return true;
        }
    }

    /// <summary>
    /// Appends one encoded batch (its base offset is patched here) without blocking. On
    /// <see cref="AppendStatus.Accepted"/>, <paramref name="baseOffset"/> is the batch's first offset and, when
    /// <paramref name="waiter"/> was requested, a waiter for its durability is registered in the same critical section.
    /// </summary>
    /// <exception cref="LogFaultedException">The log is faulted.</exception>
    /// <exception cref="ObjectDisposedException">The log is closing.</exception>
    public AppendStatus TryAppend(
        Span<byte> batch,
        int recordCount,
        long maxTimestampMs,
        bool wantWaiter,
        CancellationToken cancellationToken,
        out long baseOffset,
        out DurableWaiter? waiter)
    {
        var toComplete = RentCompletionList();
        try
        {
            return TryAppendUnsynchronized(batch, recordCount, maxTimestampMs, wantWaiter, cancellationToken, toComplete, out baseOffset, out waiter);
        }
        finally
        {
            // Also when the append failed: a roll that faulted the log collected every waiter to fail.
            if (toComplete.Count > 0)
            {
                CompleteWaiters(toComplete, Fault);
            }
        }
    }

    private AppendStatus TryAppendUnsynchronized(
        Span<byte> batch,
        int recordCount,
        long maxTimestampMs,
        bool wantWaiter,
        CancellationToken cancellationToken,
        List<DurableWaiter> toComplete,
        out long baseOffset,
        out DurableWaiter? waiter)
    {
        baseOffset = -1;
        waiter = null;
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            if (_frozen is not null)
            {
                return AppendStatus.Frozen;
            }

            EnsureActiveFileUnsynchronized();
            int length = batch.Length;
            if (ShouldRollUnsynchronized(length))
            {
                RollUnsynchronized(toComplete);
            }

            if (_active.Size + length > _active.AllocatedEnd)
            {
                StartAllocationUnsynchronized(_active.Size + length);
                return AppendStatus.NeedSpace;
            }

            if (!EnsureSpareChunksUnsynchronized(length))
            {
                return AppendStatus.NeedChunk;
            }

            baseOffset = _nextOffset;
            long now = _time.GetTimestamp();
            _lastAppendTimestamp = now;
            Format.RecordBatchEncoder.PatchBaseOffset(batch, baseOffset);
            CopyIntoChunksUnsynchronized(batch, _active.Size);
            _active.Index.MaybeAdd(baseOffset, _active.Size, maxTimestampMs, _options.IndexIntervalBytes);
            _active.Index.ObserveEpoch(baseOffset, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(batch[Format.RecordBatch.PartitionLeaderEpochOffset..]));
            _active.Size += length;
            _active.MaxTimestampMs = Math.Max(_active.MaxTimestampMs, maxTimestampMs);
            _sync.Accepted(HeadGlobal + length, now);
            _nextOffset += recordCount;
            _active.EndOffset = _nextOffset;
            Invariant.Assert(_active.GlobalEnd == HeadGlobal, "the active segment ends at the head");
            _waiters.BatchAccepted(HeadGlobal, _nextOffset);
            if (wantWaiter)
            {
                waiter = DurableWaiter.Rent(_nextOffset, baseOffset, _options.Tuning.InlineContinuations, cancellationToken, null);
                waiter.AcceptedTimestamp = AppendLogMetrics.AppendAccepted();
                _waiters.Add(waiter);
            }

            MaybePreallocateUnsynchronized();
            DriveUnsynchronized(toComplete, now);
            if (_spare.Count > 0 && _pool.WaitingRenters > 0)
            {
                // Appenders under backpressure each bring one chunk and may need fewer: surplus spares go back to
                // the pool's queue (first come, first served) instead of idling here while others wait for buffers.
                while (_spare.TryPop(out var surplus))
                {
                    _pool.Return(surplus);
                }

                ReleaseRetainedUnsynchronized();
            }
        }

        return AppendStatus.Accepted;
    }

    /// <summary>
    /// Reserves the first (small) step ahead of the head: at the open of an empty log, which is about to be written.
    /// A reopened log with data reserves at its first append instead, so idle logs hold no reserve.
    /// </summary>
    public Task ReserveFirstStep()
    {
        lock (_lock)
        {
            StartAllocationUnsynchronized(_active.Size);
            return _allocation?.Completion.Task ?? Task.CompletedTask;
        }
    }

    /// <summary>Takes a chunk rented while waiting (backpressure) as a spare for the next attempt.</summary>
    public void AddSpare(AlignedChunk chunk)
    {
        lock (_lock)
        {
            if (_closing || _fault is not null)
            {
                _pool.Return(chunk);
                return;
            }

            _spare.Push(chunk);
        }
    }

    /// <summary>The pool appenders wait on under backpressure (close returns every chunk, so such a wait always ends).</summary>
    public LogBufferPool Pool => _pool;

    private void ThrowIfUnusableUnsynchronized()
    {
        if (_fault is not null)
        {
            throw _fault;
        }

        ObjectDisposedException.ThrowIf(_closing, typeof(SegmentedLog));
    }

    private bool EnsureSpareChunksUnsynchronized(int length)
    {
        int available = _current is not null ? _current.Chunk.Size - _current.Fill
            : _idleTail is not null ? _pool.ChunkSize - _idleTail.Length
            : 0;
        int needed = length <= available ? 0 : (int)((length - available + (long)_pool.ChunkSize - 1) / _pool.ChunkSize);
        if (_current is null && _idleTail is not null)
        {
            needed++; // the chunk that takes the kept tail block back
        }
        while (_spare.Count < needed)
        {
            if (!_pool.TryRent(out var chunk))
            {
                // Retained chunks (kept readable for tailing readers) yield to appends: back to the pool, and again.
                if (ReleaseOldestRetainedUnsynchronized())
                {
                    continue;
                }

                return false;
            }

            _spare.Push(chunk);
        }

        return true;
    }

    private void CopyIntoChunksUnsynchronized(ReadOnlySpan<byte> batch, long filePosition)
    {
        while (!batch.IsEmpty)
        {
            if (_current is null && _idleTail is not null)
            {
                // Resume after an idle release (or an open): the block holding the tail comes back first.
                Invariant.Assert(_spare.Count > 0, "spare chunks were reserved before copying");
                Invariant.Assert(_idleTailFileStart + _idleTail.Length == filePosition, "the kept tail ends at the head");
                var resumed = NewSlotUnsynchronized(_spare.Pop(), _idleTailFileStart);
                _idleTail.CopyTo(resumed.Chunk.Span);
                resumed.Fill = resumed.DispatchedTo = _idleTail.Length;
                _idleTail = null;
                _current = resumed;
            }
            else if (_current is null)
            {
                Invariant.Assert(_spare.Count > 0, "spare chunks were reserved before copying");
                _current = NewSlotUnsynchronized(_spare.Pop(), filePosition);
            }

            var slot = _current;
            int room = slot.Chunk.Size - slot.Fill;
            int take = Math.Min(room, batch.Length);
            batch[..take].CopyTo(slot.Chunk.Span[slot.Fill..]);
            slot.Fill += take;
            batch = batch[take..];
            filePosition += take;
            if (slot.Fill == slot.Chunk.Size)
            {
                // Out-of-order dispatch: a full chunk goes to disk now, whatever earlier writes are doing.
                CreateWriteUnsynchronized(slot, close: true);
                _current = null;
            }
        }
    }

    private ChunkSlot NewSlotUnsynchronized(AlignedChunk chunk, long fileStart)
    {
        Invariant.Assert(Alignment.IsAligned(fileStart), "a chunk maps to a block-aligned file range");
        var slot = _freeSlots.Count > 0 ? _freeSlots.Pop() : new ChunkSlot();
        slot.Chunk = chunk;
        slot.Segment = _active;
        slot.FileStart = fileStart;
        slot.Fill = slot.DispatchedTo = 0;
        slot.WriteBusy = slot.Closed = false;
        slot.Deferred = null;
        _liveSlots.Add(slot);
        return slot;
    }
}
