using AppendLog.Buffers;
using AppendLog.Diagnostics;
using AppendLog.Io;
using AppendLog.Io.Uring;
using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>Writes, the debounced fdatasync, and the durable waiters.</summary>
internal sealed partial class LogWriter
{
    private readonly DurableWaiters _waiters;
    private readonly Stack<SyncWork> _freeSyncs = new();
    private readonly ITimer _timer;

    [ThreadStatic]
    private static List<DurableWaiter>? t_toComplete;

    /// <summary>
    /// The thread's list for waiters to complete after the lock is released. A list still in use further up this
    /// thread's stack (user code run from a completion) is never shared: a stale entry would complete a pooled waiter
    /// that was already reused for a later append, before that append is durable.
    /// </summary>
    private static List<DurableWaiter> RentCompletionList()
    {
        var list = t_toComplete;
        if (list is { Count: 0 })
        {
            return list;
        }

        list = new List<DurableWaiter>();
        t_toComplete ??= list;
        return list;
    }

    private long _syncCount;

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
        var toComplete = RentCompletionList();
        lock (_lock)
        {
            if (_fault is not null)
            {
                return ValueTask.FromException<long>(_fault);
            }

            if (_waiters.DurableOffset >= endOffset)
            {
                return ValueTask.FromResult(endOffset);
            }

            if (_closing && endOffset > _nextOffset)
            {
                return ValueTask.FromException<long>(new ObjectDisposedException(nameof(SegmentedLog)));
            }

            waiter = DurableWaiter.Rent(endOffset, endOffset, _options.Tuning.InlineContinuations, cancellationToken, null);
            waiter.WakeOnCut = wakeOnCut;
            _waiters.Add(waiter);

            if (requestFlush)
            {
                _sync.RequestFlush();
            }

            DriveUnsynchronized(toComplete);
        }

        if (toComplete.Count > 0)
        {
            CompleteWaiters(toComplete, Fault);
        }

        return new ValueTask<long>(waiter, waiter.Version);
    }


    /// <summary>
    /// Carries out the sync scheduler's decisions until it has none left: the one place a flush starts, a sync is
    /// dispatched, the debounce timer is armed and the durable watermark moves (collecting the waiters it completes
    /// into <paramref name="toComplete"/>, to be completed after the lock is released).
    /// </summary>
    private void DriveUnsynchronized(List<DurableWaiter> toComplete) => DriveUnsynchronized(toComplete, _time.GetTimestamp());

    /// <inheritdoc cref="DriveUnsynchronized(List{DurableWaiter})"/>
    /// <param name="toComplete">Collects the waiters to complete once the lock is released.</param>
    /// <param name="now">The current timestamp, when the caller has just read it (the append path reads it once).</param>
    private void DriveUnsynchronized(List<DurableWaiter> toComplete, long now)
    {
        if (_fault is not null)
        {
            return;
        }

        while (true)
        {
            long durableBefore = DurableGlobal;
            var action = _sync.Next(now);
            switch (action.Kind)
            {
                case SyncActionKind.None:
                    return;
                case SyncActionKind.CutChunk:
                    if (_current is not null && _current.Fill > _current.DispatchedTo)
                    {
                        CreateWriteUnsynchronized(_current, close: false);
                    }

                    break;
                case SyncActionKind.StartSync:
                    DispatchSyncUnsynchronized(action.Position, action.SyncId);
                    break;
                case SyncActionKind.ArmTimer:
                    _timer.Change(action.Delay, Timeout.InfiniteTimeSpan);
                    break;
                case SyncActionKind.Durable:
                    AppendLogMetrics.SyncMadeDurable(action.Position - durableBefore);
                    AdvanceDurableUnsynchronized(action.Position, toComplete);
                    MaybeCheckpointUnsynchronized(now);
                    break;
            }
        }
    }

    private void OnFlushTimer()
    {
        List<DurableWaiter> toComplete = RentCompletionList();
        Exception? failWith;
        lock (_lock)
        {
            _sync.TimerFired();
            DriveUnsynchronized(toComplete);
            failWith = _fault;
        }

        CompleteWaiters(toComplete, failWith);
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
        PostUnsynchronized(op);
    }

    /// <summary>Called on the I/O worker when a pwrite returned.</summary>
    internal void OnWriteCompleted(WriteOp op)
    {
        AppendLogMetrics.WriteCompleted(op.Length, op.Error);
        List<DurableWaiter> toComplete = RentCompletionList();
        Exception? failWith;
        lock (_lock)
        {
            _ioInFlight--;
            try
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
                DriveUnsynchronized(toComplete);
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

    private void AdvanceWrittenUnsynchronized()
    {
        long written = WrittenGlobal;
        while (_writes.Count > 0 && _writes.Peek().State == WriteState.Done)
        {
            var done = _writes.Dequeue();
            Invariant.Assert(done.GlobalEnd >= written, "writes complete over increasing positions");
            if (done.Error is null && _fault is null)
            {
                written = done.GlobalEnd;
            }

            done.Reset();
            _freeWrites.Push(done);
        }

        if (_fault is null)
        {
            _sync.WrittenTo(written);
        }
    }

    private void MaybeReleaseSlotUnsynchronized(ChunkSlot slot)
    {
        if (slot.Closed && !slot.WriteBusy && slot.Deferred is null && _liveSlots.Remove(slot))
        {
            RetireSlotUnsynchronized(slot);
        }
    }

    /// <summary>Posts sync <paramref name="syncId"/>: fdatasync of every unsealed segment holding bytes below <paramref name="target"/>.</summary>
    private void DispatchSyncUnsynchronized(long target, long syncId)
    {
        var work = _freeSyncs.Count > 0 ? _freeSyncs.Pop() : new SyncWork(this);
        work.Segments.Clear();
        foreach (var segment in _segments)
        {
            if (segment.File is not null && !segment.IsSealed
                && (segment.GlobalEnd > DurableGlobal || !segment.DirectoryEntryDurable)
                && segment.GlobalStart <= target)
            {
                segment.SyncsReferencing++;
                work.Segments.Add(segment);
            }
        }

        work.Id = syncId;
        if (_options.SharedSync is { } shared)
        {
            // The manager's logs share their syncs (SharedSync decides between one syncfs and this log's fdatasyncs).
            _ioInFlight++;
            shared.Submit(work);
        }
        else
        {
            PostUnsynchronized(work);
        }
    }

    /// <summary>Completed fdatasync rounds (for the load generator and tests).</summary>
    public long SyncCount => Interlocked.Read(ref _syncCount);

    private void OnSyncCompleted(SyncWork work)
    {
        Interlocked.Increment(ref _syncCount);
        List<DurableWaiter> toComplete = RentCompletionList();
        Exception? failWith;
        lock (_lock)
        {
            _ioInFlight--;
            try
            {
                foreach (var segment in work.Segments)
                {
                    segment.SyncsReferencing--;

                    // The directory fsync this sync ran (after the segment's first data) succeeded: the entry is durable.
                    segment.DirectoryEntryDurable |= work.Error is null;
                }

                if (work.Error is not null)
                {
                    FaultUnsynchronized(work.Error, toComplete);
                }

                // Durability advances in the order syncs started, never past a failed one (SyncScheduler).
                _sync.SyncCompleted(work.Id, succeeded: work.Error is null);
                DriveUnsynchronized(toComplete);
                if (_fault is null)
                {
                    MaybeSealUnsynchronized();
                }
            }
            catch (Exception e)
            {
                FaultUnsynchronized(e, toComplete);
            }

            work.Segments.Clear();
            _freeSyncs.Push(work);
            failWith = _fault;
            TrySignalIdleUnsynchronized();
        }

        CompleteWaiters(toComplete, failWith);
    }

    private void AdvanceDurableUnsynchronized(long target, List<DurableWaiter> toComplete)
    {
        Invariant.Assert(target == DurableGlobal, "the scheduler moved durability to the target");
        _waiters.MakeDurable(target, _nextOffset, toComplete);
        NoteDurableAdvanceUnsynchronized(target);
    }

    /// <summary>
    /// Faults the log (sticky): every waiter fails with the same <see cref="LogFaultedException"/>. Also where an
    /// invariant failure on an I/O completion ends up, so that it faults this log and never the process. Never throws.
    /// </summary>
    private void FaultUnsynchronized(Exception error, List<DurableWaiter> toFail)
    {
        if (_fault is not null)
        {
            return;
        }

        _fault = error as LogFaultedException ?? new LogFaultedException(_directory, error);
        _sync.Fault();
        try
        {
            Log.Faulted(_options, _fault);
        }
        catch (Exception)
        {
            // A throwing logger must not keep the log from failing its waiters.
        }

        _waiters.TakeAll(toFail);
    }

    /// <summary>Queues blocking I/O of this log; its completion handler counts it back (<see cref="_ioInFlight"/>).</summary>
    private void PostUnsynchronized(IIoWork work)
    {
        _ioInFlight++;
        _io.Post(work);
    }

    /// <summary>
    /// Completes waiters outside the lock, never on the I/O thread that called: they are handed to the thread pool in
    /// groups of at most <see cref="CompletionGroupMax"/>, and each group's work item runs its continuations inline,
    /// one after another. Measured against one thread-pool work item per waiter (each continuation scheduled on its
    /// own): the per-waiter hops were the largest CPU cost of a 64-appender run (context switches, see README,
    /// "Choosing the defaults").
    /// </summary>
    private void CompleteWaiters(List<DurableWaiter> waiters, Exception? failWith)
    {
        if (waiters.Count == 0)
        {
            return;
        }

        if (!_options.Tuning.InlineContinuations)
        {
            foreach (var waiter in waiters)
            {
                Complete(waiter, failWith);
            }

            waiters.Clear();
            return;
        }

        if (failWith is null && t_batchCompletions)
        {
            // An I/O loop completing many logs in one pass: this log's waiters share groups with the other logs'.
            foreach (var waiter in waiters)
            {
                var open = t_openGroup ??= CompletionGroup.Rent();
                open.Waiters.Add(waiter);
                if (open.Waiters.Count == CompletionGroupMax)
                {
                    t_openGroup = null;
                    ThreadPool.UnsafeQueueUserWorkItem(open, preferLocal: false);
                }
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

    /// <summary>
    /// Set on a thread that runs the completions of many logs in one pass (<see cref="RingIoLoop"/>): waiters completed
    /// there fill a shared open group, queued when full or at <see cref="FlushCompletionBatch"/>, so 1,000 logs' syncs
    /// completing together cost 1,000 ÷ 16 thread-pool items, not 1,000. Failed waiters keep their own groups.
    /// </summary>
    [ThreadStatic]
    private static bool t_batchCompletions;

    [ThreadStatic]
    private static CompletionGroup? t_openGroup;

    /// <summary>From now on, this thread's waiter completions are batched until <see cref="FlushCompletionBatch"/>.</summary>
    internal static void BatchCompletionsOnThisThread() => t_batchCompletions = true;

    /// <summary>Queues this thread's open group of completed waiters; the loop calls it after each pass over its completions.</summary>
    internal static void FlushCompletionBatch()
    {
        if (t_openGroup is { } open)
        {
            t_openGroup = null;
            ThreadPool.UnsafeQueueUserWorkItem(open, preferLocal: false);
        }
    }

    private sealed class CompletionGroup : IThreadPoolWorkItem
    {
        // DefaultObjectPool returns without allocating (a ConcurrentStack allocated a node per push: per group).
        private static readonly Microsoft.Extensions.ObjectPool.ObjectPool<CompletionGroup> s_free =
            new Microsoft.Extensions.ObjectPool.DefaultObjectPool<CompletionGroup>(
                new Microsoft.Extensions.ObjectPool.DefaultPooledObjectPolicy<CompletionGroup>(), maximumRetained: 256);

        public List<DurableWaiter> Waiters { get; } = new(CompletionGroupMax);

        public Exception? Error { get; set; }

        public static CompletionGroup Rent() => s_free.Get();

        public void Execute()
        {
            var error = Error;
            foreach (var waiter in Waiters)
            {
                Complete(waiter, error);
            }

            Waiters.Clear();
            Error = null;
            s_free.Return(this);
        }
    }

    /// <summary>One fdatasync per segment with unsynced data, plus the directory entry of new segments.</summary>
    private sealed class SyncWork : ISharedSyncWork, IRingWork
    {
        private readonly LogWriter _owner;
        private long _ringStarted; // when BeginRing handed the fdatasync to a ring, for the fsync metric

        public SyncWork(LogWriter owner) => _owner = owner;

        public List<Segment> Segments { get; } = new();

        /// <summary>The scheduler's number for this sync.</summary>
        public long Id { get; set; }

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

        /// <summary>One segment whose directory entry is durable: one fdatasync, which the ring can run.</summary>
        public RingOperation BeginRing()
        {
            if (!OperatingSystem.IsLinux() || Segments.Count != 1 || !Segments[0].DirectoryEntryDurable
                || Segments[0].File is not SanitizingFile { DirectInner: { } direct })
            {
                return RingOperation.None;
            }

            Error = null;
            _ringStarted = AppendLogMetrics.Timestamp();
            return new RingOperation(RingOperationKind.DataSync, direct.Handle, 0, 0, 0);
        }

        public bool CompleteRing(int result)
        {
            if (result < 0)
            {
                Error = new IoUringCompletion(0, result).ToException("io_uring fdatasync", Segments[0].File!.Path);
            }
            else
            {
                AppendLogMetrics.FsyncCompleted(_ringStarted, 1);
            }

            _owner.OnSyncCompleted(this);
            return true;
        }

        public void CompleteCovered(Exception? error)
        {
            // A syncfs made every write of these segments durable, and the directory entries with them.
            Error = error;
            _owner.OnSyncCompleted(this);
        }
    }
}
