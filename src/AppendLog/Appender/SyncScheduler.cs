using AppendLog.Diagnostics;

namespace AppendLog.Appender;

/// <summary>What <see cref="SyncScheduler.Next"/> asks its executor to do.</summary>
internal enum SyncActionKind
{
    /// <summary>Nothing more to do until the next event.</summary>
    None,

    /// <summary>
    /// A flush starts with target <see cref="SyncAction.Position"/> (the head): dispatch the write of the partial
    /// chunk, if it holds undispatched data, then report the written watermark again.
    /// </summary>
    CutChunk,

    /// <summary>
    /// Start fdatasync number <see cref="SyncAction.SyncId"/> covering every byte below <see cref="SyncAction.Position"/>
    /// (all of them written); report its outcome with <see cref="SyncScheduler.SyncCompleted"/>.
    /// </summary>
    StartSync,

    /// <summary>Call <see cref="SyncScheduler.TimerFired"/> after <see cref="SyncAction.Delay"/> (debounced policy).</summary>
    ArmTimer,

    /// <summary>The durable watermark moved to <see cref="SyncAction.Position"/>: complete what it covers.</summary>
    Durable,
}

/// <summary>One decision of <see cref="SyncScheduler"/>.</summary>
internal readonly record struct SyncAction(SyncActionKind Kind, long Position = 0, long SyncId = 0, TimeSpan Delay = default);

/// <summary>
/// Every decision about one log's syncs, as a pure, single-threaded state machine: no locks, no I/O, no clock (time
/// comes in as <see cref="TimeProvider"/> timestamps). The executor (<see cref="LogWriter"/>) reports events (bytes
/// accepted, the written watermark, a flush request, a timer, a sync's outcome, close, a fault) and then calls
/// <see cref="Next"/> until it answers <see cref="SyncActionKind.None"/>, carrying out each action. This is the one
/// place that decides whether a sync starts, what it covers and how far durability moves.
/// <para>
/// Watermarks, as positions in the log's byte sequence, one chain: <c>durable ≤ written ≤ head</c>, asserted wherever
/// one moves. A flush takes the head as its target, waits until <c>written ≥ target</c>, then starts one sync. Up to
/// <see cref="SyncsInFlightMax"/> syncs run at once. Durability advances in the order syncs started, never past one
/// still running and never after one failed: after a failed fdatasync the kernel may drop the pages it could not write
/// and report the error only once (Fsyncgate), so a later sync's success says nothing about the earlier range.
/// </para>
/// </summary>
internal sealed class SyncScheduler
{
    private readonly long _delayTicks;
    private readonly long _pendingBytesMax;
    private readonly bool _manual;
    private readonly StartedSync[] _started;

    private int _startedFirst;
    private int _startedCount;
    private long _head;
    private long _written;
    private long _durable;
    private long _lastTarget;
    private long _lastBytes;
    private long _waitingTarget = -1;
    private long _nextSyncId;
    private long _pendingSince;
    private bool _pendingSinceValid;
    private bool _requested;
    private bool _timerArmed;
    private bool _closing;
    private bool _faulted;

    /// <param name="policy">When syncs start.</param>
    /// <param name="syncsInFlightMax">Syncs of this log that may run at once (at least 1).</param>
    /// <param name="timestampFrequency">Ticks per second of the timestamps passed in (<see cref="TimeProvider.TimestampFrequency"/>).</param>
    /// <param name="position">The watermarks' common start (the log's end at open).</param>
    public SyncScheduler(FlushPolicy policy, int syncsInFlightMax, long timestampFrequency, long position)
    {
        Invariant.Assert(syncsInFlightMax >= 1, "at least one sync may run");
        Invariant.Assert(timestampFrequency > 0, "a clock ticks");
        _manual = policy.IsManual;
        _pendingBytesMax = policy.PendingBytesMax;
        _delayTicks = policy.IsManual || policy.Delay <= TimeSpan.Zero
            ? 0
            : (long)(policy.Delay.TotalSeconds * timestampFrequency);
        TimestampFrequency = timestampFrequency;
        SyncsInFlightMax = syncsInFlightMax;
        _started = new StartedSync[syncsInFlightMax];
        Restart(position);
    }

    /// <summary>Syncs of this log that may run at once.</summary>
    public int SyncsInFlightMax { get; }

    /// <summary>Ticks per second of the timestamps passed in.</summary>
    public long TimestampFrequency { get; }

    /// <summary>End of the bytes accepted.</summary>
    public long Head => _head;

    /// <summary>End of the contiguous prefix whose writes completed.</summary>
    public long Written => _written;

    /// <summary>End of the prefix covered by a completed, successful sync.</summary>
    public long Durable => _durable;

    /// <summary>Syncs started and not yet retired (retired in start order).</summary>
    public int SyncsInFlight => _startedCount;

    /// <summary>A flush waits for its writes before its sync starts.</summary>
    public bool FlushWaitingForWrites => _waitingTarget >= 0;

    /// <summary>Nothing started is unfinished: no sync in flight, no flush waiting for writes.</summary>
    public bool IsQuiet => _startedCount == 0 && _waitingTarget < 0;

    /// <summary>A failed sync (or the executor) faulted the log: no sync starts and durability no longer moves.</summary>
    public bool IsFaulted => _faulted;

    /// <summary>Restarts the chain at <paramref name="position"/> (open, suffix truncation, reset: nothing in flight).</summary>
    public void Restart(long position)
    {
        Invariant.Assert(_startedCount == 0, "no sync is in flight at a restart");
        Invariant.Assert(position >= 0, "positions are not negative");
        _head = _written = _durable = _lastTarget = position;
        _lastBytes = 0;
        _waitingTarget = -1;
        _pendingSinceValid = false;
        _requested = false;
    }

    /// <summary>Bytes up to <paramref name="head"/> were accepted at <paramref name="now"/>.</summary>
    public void Accepted(long head, long now)
    {
        Invariant.Assert(head >= _head, "the head never goes backwards");
        _head = head;
        if (!_pendingSinceValid && _head > _durable)
        {
            _pendingSinceValid = true;
            _pendingSince = now;
        }
    }

    /// <summary>The contiguous prefix of completed writes now ends at <paramref name="written"/>.</summary>
    public void WrittenTo(long written)
    {
        Invariant.Assert(written >= _written, "written never goes backwards");
        Invariant.Assert(written <= _head, "written ≤ head");
        _written = written;
    }

    /// <summary>A caller waits for durability explicitly (a flush, a wait, a manual policy's request).</summary>
    public void RequestFlush() => _requested = true;

    /// <summary>The timer armed by <see cref="SyncActionKind.ArmTimer"/> fired.</summary>
    public void TimerFired() => _timerArmed = false;

    /// <summary>The log closes: everything accepted is synced without waiting for the policy.</summary>
    public void Close() => _closing = true;

    /// <summary>The log is faulted: nothing starts any more, durability stays where it is.</summary>
    public void Fault() => _faulted = true;

    /// <summary>Sync <paramref name="syncId"/> returned; <paramref name="succeeded"/> false when it failed.</summary>
    public void SyncCompleted(long syncId, bool succeeded)
    {
        for (int i = 0; i < _startedCount; i++)
        {
            ref var sync = ref _started[(_startedFirst + i) % _started.Length];
            if (sync.Id == syncId)
            {
                Invariant.Assert(sync.Outcome == SyncOutcome.Running, "a sync completes once");
                sync.Outcome = succeeded ? SyncOutcome.Succeeded : SyncOutcome.Failed;
                if (!succeeded)
                {
                    _faulted = true;
                }

                return;
            }
        }

        Invariant.Fail("a completed sync was started and not yet retired");
    }

    /// <summary>The next action for the executor, or <see cref="SyncActionKind.None"/>; call until None after any event.</summary>
    public SyncAction Next(long now)
    {
        // 1. Retire syncs in start order; a retired successful sync moves durability to its target.
        while (_startedCount > 0 && _started[_startedFirst].Outcome != SyncOutcome.Running)
        {
            var done = _started[_startedFirst];
            _startedFirst = (_startedFirst + 1) % _started.Length;
            _startedCount--;
            if (!_faulted && done.Outcome == SyncOutcome.Succeeded && done.Target > _durable)
            {
                Invariant.Assert(done.Target <= _written, "durable ≤ written");
                _durable = done.Target;
                return new SyncAction(SyncActionKind.Durable, _durable);
            }
        }

        if (_faulted)
        {
            return default;
        }

        // 2. A flush whose writes are all done starts its sync.
        if (_waitingTarget >= 0)
        {
            if (_written < _waitingTarget)
            {
                return default;
            }

            long target = _waitingTarget;
            _waitingTarget = -1;
            Invariant.Assert(_startedCount < _started.Length, "no more syncs run than allowed");
            long id = ++_nextSyncId;
            _started[(_startedFirst + _startedCount) % _started.Length] = new StartedSync(id, target, SyncOutcome.Running);
            _startedCount++;
            return new SyncAction(SyncActionKind.StartSync, target, id);
        }

        // 3. Whether a new flush starts now, later (timer), or when asked.
        return DecideFlush(now);
    }

    private SyncAction DecideFlush(long now)
    {
        if (_startedCount >= SyncsInFlightMax || _head <= Math.Max(_durable, _lastTarget))
        {
            return default;
        }

        bool urgent = _requested || _closing;

        // An overlapping sync starts only once as much is pending as the sync in flight carries: under light load that
        // comes quickly and the second sync hides the first one's latency; under heavy load it keeps groups large
        // instead of splitting them (measured: README, "Choosing the defaults").
        if (_startedCount > 0 && _head - _lastTarget < _lastBytes && !urgent)
        {
            return default;
        }

        if (!urgent)
        {
            if (_manual)
            {
                return default;
            }

            if (_delayTicks > 0 && _head - _durable < _pendingBytesMax)
            {
                long waited = _pendingSinceValid ? now - _pendingSince : 0;
                if (waited < _delayTicks)
                {
                    if (_timerArmed)
                    {
                        return default;
                    }

                    _timerArmed = true;
                    return new SyncAction(SyncActionKind.ArmTimer, Delay: TimeSpan.FromSeconds((double)(_delayTicks - waited) / TimestampFrequency));
                }
            }
        }

        _requested = false;
        _pendingSinceValid = false;
        _lastBytes = _head - Math.Max(_lastTarget, _durable);
        _lastTarget = _head;
        _waitingTarget = _head;
        return new SyncAction(SyncActionKind.CutChunk, _head);
    }

    private enum SyncOutcome
    {
        Running,
        Succeeded,
        Failed,
    }

    private record struct StartedSync(long Id, long Target, SyncOutcome Outcome);
}
