using System.Runtime.InteropServices;
using AppendLog.Buffers;
using AppendLog.Diagnostics;
using AppendLog.Io;
using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>Adaptive preallocation, segment roll and seal, and closing.</summary>
internal sealed partial class LogWriter
{
    /// <summary>Zeros are written in 256 KiB pieces: small enough that a sync queued behind one waits ~0.1 ms, not a whole step.</summary>
    private const int ZeroBufferSize = 256 * 1024;
    private static readonly unsafe nint s_zeros = CreateZeroBuffer();

    /// <summary>The first reservation after an open or an idle trim: small, so a log written once holds little.</summary>
    private const long ColdReservation = 64 * 1024;

    private long _allocationStep;
    private bool _reserveCold = true;
    private long _lastReservation;
    private AllocationWork? _allocation;
    private long _lastAllocationTimestamp;
    private int _sealsInFlight;
    private TaskCompletionSource? _idle;

    /// <summary>The allocation the caller should await after <see cref="AppendStatus.NeedSpace"/>.</summary>
    public Task PendingAllocation
    {
        get
        {
            lock (_lock)
            {
                return _allocation?.Completion.Task ?? Task.CompletedTask;
            }
        }
    }

    private static unsafe nint CreateZeroBuffer()
    {
        void* p = NativeMemory.AlignedAlloc(ZeroBufferSize, Alignment.BlockSize);
        NativeMemory.Clear(p, ZeroBufferSize);
        return (nint)p;
    }

    /// <summary>
    /// fallocate [start, start + length), then zero-fill it when the file is O_DIRECT and the tuning says so. Measured
    /// on ext4 (docs/internals.md, "Measured facts"): fdatasync after a write into fallocated-but-unwritten blocks
    /// commits an extent conversion (~115 µs) while a write into blocks that already hold data syncs in ~45 µs;
    /// zero-filling therefore reserves with fallocate (a clean ENOSPC before any data is at risk) and then writes zeros
    /// with O_DIRECT. Buffered files only fallocate: zeros written through the page cache would be flushed by the next
    /// fdatasync.
    /// </summary>
    private unsafe void Reserve(IDirectFile file, long start, long length)
    {
        file.Allocate(start, length);
        if (_options.Tuning.ZeroFillPreallocation && file.IsDirect)
        {
            var zeros = new ReadOnlySpan<byte>((void*)s_zeros, ZeroBufferSize);
            for (long at = start; at < start + length; at += ZeroBufferSize)
            {
                file.Write(zeros[..(int)Math.Min(ZeroBufferSize, start + length - at)], at);
            }
        }
    }

    private bool ShouldRollUnsynchronized(int length)
    {
        if (_active.Size == 0)
        {
            return false;
        }

        if (_active.Size + length > _options.SegmentSize)
        {
            return true;
        }

        return _options.SegmentMaxAge is { } age && _time.GetElapsedTime(_active.CreatedTimestamp) >= age;
    }

    /// <summary>
    /// Closes the active segment's chunk and starts a new segment at the next offset. The old segment is sealed in
    /// the background once the durable watermark passes its end.
    /// </summary>
    /// <exception cref="LogDiskFullException">No space to create the new segment file; nothing changed.</exception>
    /// <exception cref="LogFaultedException">Creating it failed otherwise; the log is faulted (waiters collected into <paramref name="toComplete"/>).</exception>
    private void RollUnsynchronized(List<DurableWaiter> toComplete)
    {
        // The new file first: when it cannot be created, nothing of the writer's state has changed yet.
        string path = SegmentNames.DataFile(_directory, _nextOffset);
        var prepared = TakePreparedUnsynchronized(path);
        IDirectFile file;
        try
        {
            file = prepared?.File ?? _storage.Open(path, FileCreation.CreateNew, _options.DirectIo);
        }
        catch (IOException e) when (IsDiskFull(e))
        {
            Log.DiskFull(_options, path, e);
            throw new LogDiskFullException(path, e);
        }
        catch (Exception e)
        {
            FaultUnsynchronized(e, toComplete);
            throw _fault!;
        }

        if (_current is not null)
        {
            CreateWriteUnsynchronized(_current, close: true);
            _current = null;
        }

        _idleTail = null; // the old segment's tail block is already on disk and durable
        var segment = new Segment(path, _nextOffset, HeadGlobal)
        {
            File = file,
            CreatedTimestamp = _time.GetTimestamp(),
            AllocatedEnd = prepared?.AllocatedEnd ?? 0,
        };
        _segments.Add(segment);
        _active = segment;
        TrimRetainedUnsynchronized(); // readers copy from the active segment's chunks only
        StartAllocationUnsynchronized(_options.PreallocationMinimumStep);
    }

    private void MaybePreallocateUnsynchronized()
    {
        MaybePrepareNextSegmentUnsynchronized();
        if (_allocation is null && _active.AllocatedEnd - _active.Size < Math.Min(_allocationStep, Math.Max(_lastReservation, ColdReservation)) / 2)
        {
            StartAllocationUnsynchronized(_active.Size);
        }
    }

    /// <summary>
    /// Reserves the next step ahead of the head. The step doubles when the previous one was used up within a second
    /// (fast appends: fewer, larger reservations) and halves when it lasted over ten seconds (slow appends: less disk
    /// held in reserve), between the options' minimum and maximum.
    /// </summary>
    private void StartAllocationUnsynchronized(long neededEnd)
    {
        if (_allocation is not null)
        {
            return;
        }

        long now = _time.GetTimestamp();
        if (_lastAllocationTimestamp != 0)
        {
            var since = _time.GetElapsedTime(_lastAllocationTimestamp, now);
            if (since < TimeSpan.FromSeconds(1))
            {
                _allocationStep = Math.Min(_allocationStep * 2, _options.PreallocationMaximumStep);
            }
            else if (since > TimeSpan.FromSeconds(10))
            {
                _allocationStep = Math.Max(_allocationStep / 2, _options.PreallocationMinimumStep);
            }
        }

        _lastAllocationTimestamp = now;

        // Reserve from the next block boundary: after recovery the file may end mid-block (at the logical end), and
        // that block holds data; the chunk that owns it writes the rest of it (zeros past the data).
        // Example: AllocatedEnd 10,000 → start 12,288.
        long start = Alignment.AlignUp(_active.AllocatedEnd);
        long step = _reserveCold ? Math.Min(ColdReservation, _allocationStep) : _allocationStep;
        _reserveCold = false;
        long end = Math.Max(start + step, Alignment.AlignUp(neededEnd));
        end = Math.Min(end, Alignment.AlignUp(_options.SegmentSize));
        end = Math.Max(end, Alignment.AlignUp(neededEnd));
        if (end <= start)
        {
            // The segment is reserved up to its maximum size already. After recovery the file can end mid-block
            // within its last 4 KiB (AllocatedEnd 1,047,576 of a 1 MiB segment): the rest of that block belongs to
            // the tail chunk, as in the example above, so count it as reserved; otherwise TryAppend answers
            // NeedSpace with no allocation to wait for and AppendSlowAsync retries forever.
            _active.AllocatedEnd = Math.Max(_active.AllocatedEnd, start);
            return;
        }

        _lastReservation = end - start;
        _allocation = new AllocationWork(this, _active, start, end - start);
        PostUnsynchronized(_allocation);
    }

    private void OnAllocationCompleted(AllocationWork work)
    {
        List<DurableWaiter> toComplete = RentCompletionList();
        Exception? failWith;
        lock (_lock)
        {
            _ioInFlight--;
            _allocation = null;
            try
            {
                if (work.Error is null)
                {
                    work.Segment.AllocatedEnd = Math.Max(work.Segment.AllocatedEnd, work.Start + work.Length);
                    MaybeSealUnsynchronized();
                }
                else if (!IsDiskFull(work.Error))
                {
                    FaultUnsynchronized(work.Error, toComplete);
                }
            }
            catch (Exception e)
            {
                FaultUnsynchronized(e, toComplete);
            }

            failWith = _fault;
            TrySignalIdleUnsynchronized();
        }

        CompleteWaiters(toComplete, failWith);
        if (work.Error is not null && IsDiskFull(work.Error))
        {
            Log.DiskFull(_options, work.Segment.Path, work.Error);
            work.Completion.SetException(new LogDiskFullException(work.Segment.Path, work.Error));
        }
        else if (work.Error is not null)
        {
            work.Completion.SetException(failWith ?? work.Error);
        }
        else
        {
            work.Completion.SetResult();
        }
    }

    /// <summary>
    /// Gives back the reserved space of a log that appended nothing for <paramref name="idleFor"/> and has everything
    /// durable: the active segment is cut to its data's last block and a prepared next segment is deleted, so an idle
    /// log holds at most 4 KiB beyond its data (docs/internals.md, section 5). The next append reserves afresh, small
    /// first (<see cref="ColdReservation"/>). True when something was given back.
    /// </summary>
    public bool TrimIdleReservation(TimeSpan idleFor)
    {
        lock (_lock)
        {
            if (_fault is not null || _closing || _frozen is not null || _allocation is not null || _preparing
                || DurableGlobal != HeadGlobal || _active.File is null || _time.GetElapsedTime(_lastAppendTimestamp) < idleFor)
            {
                return false;
            }

            long keep = Alignment.AlignUp(_active.Size);
            bool trim = _active.AllocatedEnd > keep;
            if (!trim && _prepared is null)
            {
                return false;
            }

            DiscardPreparedUnsynchronized();
            if (trim)
            {
                // Appends that do not fit below `keep` wait for this work (NeedSpace → PendingAllocation), then reserve.
                _active.AllocatedEnd = keep;
                _reserveCold = true;
                _allocationStep = _options.PreallocationMinimumStep;
                _lastAllocationTimestamp = 0;
                _allocation = new AllocationWork(this, _active, keep, 0, trim: true);
                PostUnsynchronized(_allocation);
            }

            return true;
        }
    }

    /// <summary>
    /// Closes the active segment's handle of a log idle for <paramref name="idleFor"/> with nothing in flight and
    /// everything durable (after a reopen, or once <see cref="TrimIdleReservation"/> has run): an idle log then holds
    /// one descriptor, its directory lock. The next append opens the file again. True when it closed the handle.
    /// </summary>
    public bool ReleaseIdleFile(TimeSpan idleFor)
    {
        lock (_lock)
        {
            if (_fault is not null || _closing || _frozen is not null || _allocation is not null || _preparing || _prepared is not null
                || _ioInFlight > 0 || _current is not null || _liveSlots.Count > 0 || DurableGlobal != HeadGlobal
                || !_active.DirectoryEntryDurable || _active.File is null || _active.AllocatedEnd > Alignment.AlignUp(_active.Size)
                || _time.GetElapsedTime(_lastAppendTimestamp) < idleFor)
            {
                return false;
            }

            _active.File.Dispose();
            _active.File = null;
            UncountActiveFileUnsynchronized();
            return true;
        }
    }

    private static bool IsDiskFull(Exception e) => e is IOException io && StorageErrors.IsDiskFull(io);

    /// <summary>Queues the seal of every rolled segment whose data is all durable.</summary>
    private void MaybeSealUnsynchronized()
    {
        foreach (var segment in _segments)
        {
            if (!ReferenceEquals(segment, _active) && segment.File is not null && !segment.IsSealing
                && segment.GlobalEnd <= DurableGlobal && segment.DirectoryEntryDurable && segment.SyncsReferencing == 0
                && !ReferenceEquals(_allocation?.Segment, segment))
            {
                segment.MoveTo(SegmentState.Sealing);
                _sealsInFlight++;
                PostUnsynchronized(new SealWork(this, segment));
            }
        }
    }

    private void OnSealCompleted(SealWork work)
    {
        List<DurableWaiter> toComplete = RentCompletionList();
        Exception? failWith;
        lock (_lock)
        {
            _ioInFlight--;
            _sealsInFlight--;
            try
            {
                if (work.Error is not null && IsDiskFull(work.Error))
                {
                    // ENOSPC writing the index: the segment's data is durable and untouched, so this is no reason to
                    // fault the log (the durability contract: appends succeed again once space is freed). The next
                    // completed sync or allocation calls MaybeSealUnsynchronized, which retries the seal.
                    work.Segment.MoveTo(SegmentState.Open);
                }
                else if (work.Error is not null)
                {
                    FaultUnsynchronized(work.Error, toComplete);
                }
                else
                {
                    work.Segment.File = null;
                    work.Segment.MoveTo(SegmentState.Sealed);
                    SegmentSealed?.Invoke();
                    if ((_options.RetentionBytes is not null || _options.RetentionAge is not null) && !_closing)
                    {
                        _sealsInFlight++;
                        PostUnsynchronized(new RetentionWork(this));
                    }
                }
            }
            catch (Exception e)
            {
                FaultUnsynchronized(e, toComplete);
            }

            failWith = _fault;
            TrySignalIdleUnsynchronized();
        }

        CompleteWaiters(toComplete, failWith);
    }

    /// <summary>
    /// Stops accepting appends, syncs everything accepted (unless faulted), waits for all I/O to finish and returns
    /// every chunk to the pool. Pending appends complete (durable) or fail (faulted); none is left waiting.
    /// </summary>
    public async Task CloseAsync()
    {
        Task idle;
        var toComplete = new List<DurableWaiter>();
        lock (_lock)
        {
            _closing = true;
            _sync.Close();
            DriveUnsynchronized(toComplete);
            _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            TrySignalIdleUnsynchronized();
            idle = _idle.Task;
        }

        CompleteWaiters(toComplete, Fault);
        await idle.ConfigureAwait(false);
        _timer.Dispose();
        _checkpointTimer?.Dispose();
        if (Fault is null)
        {
            // Quiescent: nothing in flight, everything accepted durable, no new work accepted.
            WriteCleanClose();
        }

        var orphans = new List<DurableWaiter>();
        lock (_lock)
        {
            // Everything accepted is durable now; a wait still queued is for offsets never appended (a tail reader
            // caught up with the log): it ends instead of waiting forever.
            _waiters.TakeAll(orphans);
            if (_current is not null)
            {
                _current.Closed = true;
                MaybeReleaseSlotUnsynchronized(_current);
                _current = null;
            }

            foreach (var slot in _liveSlots)
            {
                Invariant.Assert(!slot.WriteBusy, "no write is in flight after close");
                _pool.Return(slot.Chunk);
            }

            _liveSlots.Clear();
            ReleaseRetainedUnsynchronized();
            while (_spare.TryPop(out var chunk))
            {
                _pool.Return(chunk);
            }

            foreach (var segment in _segments)
            {
                segment.File?.Dispose();
                segment.File = null;
            }

            DiscardPreparedUnsynchronized();
            _checkpoint.Dispose();
        }

        CompleteWaiters(orphans, new ObjectDisposedException(nameof(SegmentedLog), "The log was closed while waiting for offsets that were never appended."));
    }

    /// <summary>Signals close once nothing is in flight and everything accepted is durable (or the log is faulted).</summary>
    private void TrySignalIdleUnsynchronized()
    {
        // Faulted or not, nothing may be in flight: the kernel may still be reading a chunk that close would free.
        if ((_idle is null && _drained is null) || _ioInFlight > 0)
        {
            return;
        }

        if (_fault is null && (!_sync.IsQuiet || _preparing || _allocation is not null || _sealsInFlight > 0 || DurableGlobal < HeadGlobal))
        {
            return;
        }

        _idle?.TrySetResult();
        _drained?.TrySetResult();
    }

    private sealed class AllocationWork : IIoWork
    {
        private readonly LogWriter _owner;

        private readonly bool _trim;

        public AllocationWork(LogWriter owner, Segment segment, long start, long length, bool trim = false)
        {
            _owner = owner;
            _trim = trim;
            Segment = segment;
            Start = start;
            Length = length;
            File = segment.File!;
        }

        public Segment Segment { get; }

        public IDirectFile File { get; }

        public long Start { get; }

        public long Length { get; }

        public Exception? Error { get; private set; }

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Execute()
        {
            try
            {
                if (_trim)
                {
                    File.Truncate(Start);
                }
                else
                {
                    _owner.Reserve(File, Start, Length);
                }
            }
            catch (Exception e)
            {
                Error = e;
            }

            _owner.OnAllocationCompleted(this);
        }
    }

    /// <summary>Retention runs on an I/O worker after each seal (a roll is when the head may have grown past a limit).</summary>
    private sealed class RetentionWork(LogWriter owner) : IIoWork
    {
        public void Execute()
        {
            List<DurableWaiter> toComplete = RentCompletionList();
            Exception? error = null;
            try
            {
                owner.ApplyRetention();
            }
            catch (Exception e)
            {
                error = e;
            }

            lock (owner._lock)
            {
                owner._ioInFlight--;
                owner._sealsInFlight--;
                if (error is not null)
                {
                    owner.FaultUnsynchronized(error, toComplete);
                }

                owner.TrySignalIdleUnsynchronized();
            }

            owner.CompleteWaiters(toComplete, owner._fault);
        }
    }

    private sealed class SealWork : IIoWork
    {
        private readonly LogWriter _owner;

        public SealWork(LogWriter owner, Segment segment)
        {
            _owner = owner;
            Segment = segment;
        }

        public Segment Segment { get; }

        public Exception? Error { get; private set; }

        /// <summary>Trim to the logical end (ftruncate + sync), write the index atomically, close the handle.</summary>
        public void Execute()
        {
            try
            {
                var file = Segment.File!;
                file.Truncate(Segment.Size);
                byte[] index = Segment.Index.Serialize(Segment.BaseOffset, Segment.EndOffset, Segment.Size, Segment.MaxTimestampMs);
                _owner._storage.WriteFileAtomic(SegmentNames.IndexFile(_owner._directory, Segment.BaseOffset), index);
                file.Dispose();
            }
            catch (Exception e)
            {
                Error = e;
            }

            _owner.OnSealCompleted(this);
        }
    }
}
