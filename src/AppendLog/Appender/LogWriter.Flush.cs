using AppendLog.Buffers;
using AppendLog.Diagnostics;
using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>Writes, the debounced fdatasync, and the durable waiters.</summary>
internal sealed partial class LogWriter
{
    private readonly Queue<DurableWaiter> _waiters = new();
    private readonly List<DurableWaiter> _unorderedWaiters = new();
    private readonly Stack<SyncWork> _freeSyncs = new();
    private readonly Queue<SyncWork> _syncsStarted = new();
    private readonly ITimer _timer;

    [ThreadStatic]
    private static List<DurableWaiter>? t_toComplete;

    private long _syncCount;
    private int _syncsInFlight;
    private bool _flushWaitingForWrites;
    private long _flushTarget;
    private long _lastFlushTarget;
    private long _lastFlushBytes;
    private bool _flushRequested;
    private bool _pendingSinceValid;
    private long _pendingSince;
    private bool _timerArmed;

    /// <summary>
    /// Syncs of one log in flight at once. A second fdatasync may start while the first is still running (it covers
    /// every write completed before it started), so appends that arrive during a sync need not wait for it to end
    /// before their own sync starts. ARCHITECTURE.md §3.4 measured four overlapping write+sync loops at about twice
    /// the syncs/s of one on this disk; see README, "Choosing the defaults", for the value chosen.
    /// </summary>
    internal static int SyncsInFlightMax { get; set; } = 2;

    /// <summary>
    /// Waits until every offset below <paramref name="endOffset"/> is durable. Starts a flush when the policy is
    /// manual (an explicit wait is the request).
    /// </summary>
    /// <param name="endOffset">The exclusive end of the offsets to wait for.</param>
    /// <param name="requestFlush">Start a flush (manual policy) rather than only wait for one.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <param name="wakeOnCut">Complete early when a suffix truncation happens (tail readers re-check the log).</param>
    public ValueTask<long> WaitForDurableAsync(long endOffset, bool requestFlush, CancellationToken cancellationToken, bool wakeOnCut = false)
    {
        DurableWaiter waiter;
        lock (_lock)
        {
            if (_fault is not null)
            {
                return ValueTask.FromException<long>(_fault);
            }

            if (_durableOffset >= endOffset)
            {
                return ValueTask.FromResult(endOffset);
            }

            if (_closing && endOffset > _nextOffset)
            {
                return ValueTask.FromException<long>(new ObjectDisposedException(nameof(SegmentedLog)));
            }

            waiter = DurableWaiter.Rent(endOffset, endOffset, cancellationToken, null);
            waiter.WakeOnCut = wakeOnCut;
            if (_waiters.Count == 0 || endOffset >= _lastQueuedTarget)
            {
                _waiters.Enqueue(waiter);
                _lastQueuedTarget = endOffset;
            }
            else
            {
                _unorderedWaiters.Add(waiter);
            }

            if (requestFlush)
            {
                _flushRequested = true;
            }

            MaybeStartFlushUnsynchronized();
        }

        return new ValueTask<long>(waiter, waiter.Version);
    }

    private long _lastQueuedTarget;


    /// <summary>Notes that unsynced data exists and lets the policy decide when its sync starts.</summary>
    private void NotePendingUnsynchronized()
    {
        if (!_pendingSinceValid)
        {
            _pendingSinceValid = true;
            _pendingSince = _time.GetTimestamp();
        }

        MaybeStartFlushUnsynchronized();
    }

    private void MaybeStartFlushUnsynchronized()
    {
        if (_flushWaitingForWrites || _syncsInFlight >= SyncsInFlightMax || _fault is not null
            || _headGlobal <= Math.Max(_durableGlobal, _lastFlushTarget))
        {
            return;
        }

        // An overlapping sync starts only once as much is pending as the sync in flight carries: under light load
        // that comes quickly and the second sync hides the first one's latency; under heavy load it keeps groups
        // large instead of splitting them (measured: README, "Choosing the defaults").
        if (_syncsInFlight > 0 && _headGlobal - _lastFlushTarget < _lastFlushBytes && !_closing && !_flushRequested)
        {
            return;
        }

        if (!_flushRequested && !_closing)
        {
            if (_policy.IsManual)
            {
                return;
            }

            if (_policy.Delay > TimeSpan.Zero && _headGlobal - _durableGlobal < _policy.PendingBytesMax)
            {
                var waited = _time.GetElapsedTime(_pendingSince);
                if (waited < _policy.Delay)
                {
                    if (!_timerArmed)
                    {
                        _timerArmed = true;
                        _timer.Change(_policy.Delay - waited, Timeout.InfiniteTimeSpan);
                    }

                    return;
                }
            }
        }

        StartFlushUnsynchronized();
    }

    private void OnFlushTimer()
    {
        lock (_lock)
        {
            _timerArmed = false;
            MaybeStartFlushUnsynchronized();
        }
    }

    private void StartFlushUnsynchronized()
    {
        _flushRequested = false;
        _pendingSinceValid = false;
        _lastFlushBytes = _headGlobal - Math.Max(_lastFlushTarget, _durableGlobal);
        _flushTarget = _lastFlushTarget = _headGlobal;
        if (_current is not null && _current.Fill > _current.DispatchedTo)
        {
            CreateWriteUnsynchronized(_current, close: false);
        }

        _flushWaitingForWrites = true;
        if (_writtenGlobal >= _flushTarget)
        {
            DispatchSyncUnsynchronized();
        }
    }

    /// <summary>
    /// Creates the write of a slot's undispatched data: [AlignDown(DispatchedTo), AlignUp(Fill)) of the chunk.
    /// Example with 4 KiB blocks: DispatchedTo 5,000 and Fill 9,000 write chunk bytes [4,096, 12,288): the block
    /// [4,096, 8,192) is written again with its old and new bytes, [9,000, 12,288) are zeros (the chunk was zeroed).
    /// </summary>
    private void CreateWriteUnsynchronized(ChunkSlot slot, bool close)
    {
        if (close)
        {
            slot.Closed = true;
        }

        if (slot.Fill == slot.DispatchedTo)
        {
            MaybeReleaseSlotUnsynchronized(slot);
            return;
        }

        int start = (int)Alignment.AlignDown(slot.DispatchedTo);
        int end = (int)Alignment.AlignUp(slot.Fill);
        long globalEnd = slot.Segment.GlobalStart + slot.FileStart + slot.Fill;
        slot.DispatchedTo = slot.Fill;
        if (slot.Deferred is { } deferred)
        {
            // The slot's previous write is still in flight: the queued one absorbs the new data.
            Invariant.Assert(deferred.State == WriteState.Queued, "a deferred write is still queued");
            deferred.Length = end - deferred.ChunkOffset;
            deferred.GlobalEnd = globalEnd;
            return;
        }

        var op = _freeWrites.Count > 0 ? _freeWrites.Pop() : new WriteOp();
        op.Owner = this;
        op.Slot = slot;
        op.File = slot.Segment.File!;
        op.FilePosition = slot.FileStart + start;
        op.ChunkOffset = start;
        op.Length = end - start;
        op.GlobalEnd = globalEnd;
        _writes.Enqueue(op);
        if (slot.WriteBusy)
        {
            slot.Deferred = op;
        }
        else
        {
            DispatchUnsynchronized(op);
        }
    }

    private void DispatchUnsynchronized(WriteOp op)
    {
        op.MoveTo(WriteState.Dispatched);
        op.Slot.WriteBusy = true;
        AppendLogMetrics.WriteDispatched();
        _io.Post(op);
    }

    /// <summary>Called on the I/O worker when a pwrite returned.</summary>
    internal void OnWriteCompleted(WriteOp op)
    {
        AppendLogMetrics.WriteCompleted(op.Length, op.Error);
        List<DurableWaiter> toComplete = t_toComplete ??= new List<DurableWaiter>();
        Exception? failWith = null;
        lock (_lock)
        {
            var slot = op.Slot;
            op.MoveTo(WriteState.Done);
            slot.WriteBusy = false;
            if (op.Error is not null)
            {
                FaultUnsynchronized(op.Error, toComplete);
            }

            if (slot.Deferred is { } next)
            {
                slot.Deferred = null;
                if (_fault is null)
                {
                    DispatchUnsynchronized(next);
                }
                else
                {
                    next.MoveTo(WriteState.Dispatched);
                    next.MoveTo(WriteState.Done);
                }
            }

            MaybeReleaseSlotUnsynchronized(slot);
            AdvanceWrittenUnsynchronized();
            if (_flushWaitingForWrites && _writtenGlobal >= _flushTarget && _fault is null)
            {
                DispatchSyncUnsynchronized();
            }

            failWith = _fault;
            TrySignalIdleUnsynchronized();
        }

        CompleteWaiters(toComplete, failWith);
    }

    private void AdvanceWrittenUnsynchronized()
    {
        while (_writes.Count > 0 && _writes.Peek().State == WriteState.Done)
        {
            var done = _writes.Dequeue();
            Invariant.Assert(done.GlobalEnd >= _writtenGlobal, "writes complete over increasing positions");
            if (done.Error is null && _fault is null)
            {
                _writtenGlobal = done.GlobalEnd;
            }

            done.Reset();
            _freeWrites.Push(done);
        }

        Invariant.Assert(_writtenGlobal <= _headGlobal, "written ≤ appended");
    }

    private void MaybeReleaseSlotUnsynchronized(ChunkSlot slot)
    {
        if (slot.Closed && !slot.WriteBusy && slot.Deferred is null && _liveSlots.Remove(slot))
        {
            _pool.Return(slot.Chunk);
            slot.Chunk = null!;
            slot.Segment = null!;
            _freeSlots.Push(slot);
        }
    }

    private void DispatchSyncUnsynchronized()
    {
        _flushWaitingForWrites = false;
        _syncsInFlight++;
        var work = _freeSyncs.Count > 0 ? _freeSyncs.Pop() : new SyncWork(this);
        work.Segments.Clear();
        foreach (var segment in _segments)
        {
            if (segment.File is not null && !segment.IsSealed
                && (segment.GlobalEnd > _durableGlobal || !segment.DirectoryEntryDurable)
                && segment.GlobalStart <= _flushTarget)
            {
                segment.SyncsReferencing++;
                work.Segments.Add(segment);
            }
        }

        work.Target = _flushTarget;
        _syncsStarted.Enqueue(work);
        _io.Post(work);

        // Appends that arrived while this flush waited for its writes may start the next one at once.
        MaybeStartFlushUnsynchronized();
    }

    /// <summary>Completed fdatasync rounds (for the load generator and tests).</summary>
    public long SyncCount => Interlocked.Read(ref _syncCount);

    private void OnSyncCompleted(SyncWork work)
    {
        Interlocked.Increment(ref _syncCount);
        List<DurableWaiter> toComplete = t_toComplete ??= new List<DurableWaiter>();
        Exception? failWith;
        lock (_lock)
        {
            _syncsInFlight--;
            work.Completed = true;
            foreach (var segment in work.Segments)
            {
                segment.SyncsReferencing--;
            }

            if (work.Error is not null)
            {
                FaultUnsynchronized(work.Error, toComplete);
            }

            // Durability advances in the order syncs started, never past one still running. A later sync may return
            // first, and may even succeed after an earlier one failed: after a failed fdatasync the kernel can drop
            // the dirty pages it could not write and report the error only once (Fsyncgate), so the later sync's
            // success says nothing about the earlier range. Found by the durability suite (EIO on sync, then a crash).
            while (_syncsStarted.Count > 0 && _syncsStarted.Peek().Completed)
            {
                var done = _syncsStarted.Dequeue();
                if (_fault is null)
                {
                    foreach (var segment in done.Segments)
                    {
                        segment.DirectoryEntryDurable = true;
                    }

                    if (done.Target > _durableGlobal)
                    {
                        AppendLogMetrics.SyncMadeDurable(done.Target - _durableGlobal);
                        AdvanceDurableUnsynchronized(done.Target, toComplete);
                    }
                }

                done.Segments.Clear();
                done.Completed = false;
                _freeSyncs.Push(done);
            }

            if (_fault is null)
            {
                MaybeSealUnsynchronized();
                MaybeStartFlushUnsynchronized();
            }

            failWith = _fault;
            TrySignalIdleUnsynchronized();
        }

        CompleteWaiters(toComplete, failWith);
    }

    private void AdvanceDurableUnsynchronized(long target, List<DurableWaiter> toComplete)
    {
        Invariant.Assert(target >= _durableGlobal, "durable never goes backwards");
        Invariant.Assert(target <= _writtenGlobal, "durable ≤ written");
        _durableGlobal = target;
        while (_batchEnds.Count > 0 && _batchEnds.Peek().GlobalEnd <= _durableGlobal)
        {
            long next = _batchEnds.Dequeue().NextOffset;
            Invariant.Assert(next > _durableOffset, "durable offset only grows");
            _durableOffset = next;
        }

        Invariant.Assert(_durableOffset <= _nextOffset, "durable offset ≤ appended offset");
        while (_waiters.Count > 0 && _waiters.Peek().Target <= _durableOffset)
        {
            toComplete.Add(_waiters.Dequeue());
        }

        for (int i = _unorderedWaiters.Count - 1; i >= 0; i--)
        {
            if (_unorderedWaiters[i].Target <= _durableOffset)
            {
                toComplete.Add(_unorderedWaiters[i]);
                _unorderedWaiters.RemoveAt(i);
            }
        }
    }

    private void FaultUnsynchronized(Exception error, List<DurableWaiter> toFail)
    {
        if (_fault is not null)
        {
            return;
        }

        _fault = error as LogFaultedException ?? new LogFaultedException(_directory, error);
        Log.Faulted(_options, _fault);
        // A flush waiting for writes will never dispatch its sync now; left set, close would wait for it forever
        // (TrySignalIdle needs it clear). Syncs already in flight clear their own count when they return.
        _flushWaitingForWrites = false;

        toFail.AddRange(_waiters);
        _waiters.Clear();
        toFail.AddRange(_unorderedWaiters);
        _unorderedWaiters.Clear();
    }

    /// <summary>
    /// Completes waiters outside the lock, never on the I/O thread that called: they are handed to the thread pool in
    /// groups of at most <see cref="CompletionGroupMax"/>, and each group's work item runs its continuations inline,
    /// one after another. Measured against one thread-pool work item per waiter (each continuation scheduled on its
    /// own): the per-waiter hops were the largest CPU cost of a 64-appender run (context switches, see README,
    /// "Choosing the defaults").
    /// </summary>
    private static void CompleteWaiters(List<DurableWaiter> waiters, Exception? failWith)
    {
        if (waiters.Count == 0)
        {
            return;
        }

        if (!DurableWaiter.InlineContinuations)
        {
            foreach (var waiter in waiters)
            {
                Complete(waiter, failWith);
            }

            waiters.Clear();
            return;
        }

        for (int start = 0; start < waiters.Count; start += CompletionGroupMax)
        {
            var group = CompletionGroup.Rent();
            int count = Math.Min(CompletionGroupMax, waiters.Count - start);
            for (int i = 0; i < count; i++)
            {
                group.Waiters.Add(waiters[start + i]);
            }

            group.Error = failWith;
            ThreadPool.UnsafeQueueUserWorkItem(group, preferLocal: false);
        }

        waiters.Clear();
    }

    /// <summary>Waiters completed by one thread-pool work item; a continuation that blocks delays at most this many.</summary>
    private const int CompletionGroupMax = 16;

    private static void Complete(DurableWaiter waiter, Exception? failWith)
    {
        if (failWith is null)
        {
            waiter.TrySetResult();
        }
        else
        {
            waiter.TrySetException(failWith);
        }
    }

    private sealed class CompletionGroup : IThreadPoolWorkItem
    {
        private static readonly System.Collections.Concurrent.ConcurrentStack<CompletionGroup> s_free = new();

        public List<DurableWaiter> Waiters { get; } = new(CompletionGroupMax);

        public Exception? Error { get; set; }

        public static CompletionGroup Rent() => s_free.TryPop(out var group) ? group : new CompletionGroup();

        public void Execute()
        {
            var error = Error;
            foreach (var waiter in Waiters)
            {
                Complete(waiter, error);
            }

            Waiters.Clear();
            Error = null;
            s_free.Push(this);
        }
    }

    /// <summary>One fdatasync per segment with unsynced data, plus the directory entry of new segments.</summary>
    private sealed class SyncWork : IIoWork
    {
        private readonly LogWriter _owner;

        public SyncWork(LogWriter owner) => _owner = owner;

        public List<Segment> Segments { get; } = new();

        public long Target { get; set; }

        /// <summary>Set (under the log's lock) when fdatasync returned; the work leaves the start-order queue later.</summary>
        public bool Completed { get; set; }

        public Exception? Error { get; private set; }

        public void Execute()
        {
            Error = null;
            long started = AppendLogMetrics.Timestamp();
            try
            {
                bool directorySynced = false;
                foreach (var segment in Segments)
                {
                    segment.File!.SyncData();
                    if (!segment.DirectoryEntryDurable && !directorySynced)
                    {
                        _owner._storage.SyncDirectory(_owner._directory);
                        directorySynced = true;
                    }
                }

                AppendLogMetrics.FsyncCompleted(started, Segments.Count);
            }
            catch (Exception e)
            {
                Error = e;
            }

            _owner.OnSyncCompleted(this);
        }
    }
}
