using AppendLog.Diagnostics;
using AppendLog.Io;
using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>
/// The durable-position checkpoint (docs/internals.md, section 5): while appends make progress, at most once per
/// <see cref="LogOptions.DurableCheckpointInterval"/> the durable position is recorded (on an I/O worker, never on the
/// append path); a truncation or reset voids every claim before it lowers data; a clean close records the whole
/// active segment with its index, so the next open need not scan.
/// </summary>
internal sealed partial class LogWriter
{
    private readonly CheckpointFile _checkpoint;
    private ITimer? _checkpointTimer;
    private bool _checkpointTimerArmed;
    private bool _checkpointInFlight;
    private long _lastCheckpointTimestamp;
    private long _checkpointedOffset;

    /// <summary>Checkpoint records written (periodic, voiding and clean-close): for tests.</summary>
    public long CheckpointCount => _checkpoint.WriteCount;

    /// <summary>Called where durability moves and when the checkpoint timer fires.</summary>
    private void MaybeCheckpointUnsynchronized(long now)
    {
        if (_checkpointInFlight || _closing || _fault is not null || _frozen is not null || _waiters.DurableOffset <= _checkpointedOffset)
        {
            return;
        }

        long interval = (long)(_options.DurableCheckpointInterval.TotalSeconds * _time.TimestampFrequency);
        if (now - _lastCheckpointTimestamp < interval)
        {
            if (!_checkpointTimerArmed)
            {
                _checkpointTimerArmed = true;
                _checkpointTimer ??= _time.CreateTimer(static s => ((LogWriter)s!).OnCheckpointTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _checkpointTimer.Change(_time.GetElapsedTime(now, _lastCheckpointTimestamp + interval), Timeout.InfiniteTimeSpan);
            }

            return;
        }

        // The claim: the last segment that starts below the durable batch end, and how much of it is durable.
        long durableEnd = _waiters.DurableGlobalEnd;
        var segment = _segments.FindLast(s => s.GlobalStart < durableEnd);
        if (segment is null)
        {
            return;
        }

        long size = durableEnd - segment.GlobalStart;
        Invariant.Assert(size <= segment.Size && segment.BaseOffset < _waiters.DurableOffset, "a claim covers durable bytes of one segment");
        _checkpointInFlight = true;
        _lastCheckpointTimestamp = now;
        PostUnsynchronized(new CheckpointWork(this, _checkpoint.Generation, segment.BaseOffset, size, _waiters.DurableOffset, segment.MaxTimestampMs));
    }

    private void OnCheckpointTimer()
    {
        lock (_lock)
        {
            _checkpointTimerArmed = false;
            MaybeCheckpointUnsynchronized(_time.GetTimestamp());
        }
    }

    private void OnCheckpointCompleted(CheckpointWork work)
    {
        List<DurableWaiter> toComplete = RentCompletionList();
        Exception? failWith;
        lock (_lock)
        {
            _ioInFlight--;
            _checkpointInFlight = false;
            try
            {
                if (work.Error is null)
                {
                    _checkpointedOffset = Math.Max(_checkpointedOffset, work.EndOffset);
                }
                else if (!IsDiskFull(work.Error))
                {
                    // A disk that fails a small write and sync fails the data's next one too: stop here, as for data.
                    FaultUnsynchronized(work.Error, toComplete);
                }

                MaybeCheckpointUnsynchronized(_time.GetTimestamp());
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

    /// <summary>Before a truncation or reset lowers data: no earlier claim may survive it (synchronous).</summary>
    private void VoidCheckpointClaims()
    {
        _checkpoint.Invalidate();
        lock (_lock)
        {
            _checkpointedOffset = 0;
        }
    }

    /// <summary>
    /// At a clean close (nothing in flight, everything durable): gives back the active segment's reserve and records
    /// the segment's exact size and index. A failure only means the next open scans.
    /// </summary>
    private void WriteCleanClose()
    {
        var active = _active;
        try
        {
            // An idle log may have closed its handle (ReleaseIdleFile); its file still ends past the data's last byte.
            using (var opened = active.File is null ? _storage.Open(active.Path, FileCreation.OpenExisting, _options.DirectIo) : null)
            {
                var file = active.File ?? opened!;
                if (file.Length != active.Size)
                {
                    file.Truncate(active.Size);
                }
            }

            byte[] index = active.Index.Serialize(active.BaseOffset, active.EndOffset, active.Size, active.MaxTimestampMs);
            _checkpoint.WriteClean(active.BaseOffset, active.Size, active.EndOffset, active.MaxTimestampMs, index);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.CleanCloseRecordFailed(_options, e);
        }
    }

    private sealed class CheckpointWork(LogWriter owner, long generation, long segmentBase, long size, long endOffset, long maxTimestampMs) : IIoWork
    {
        public long EndOffset => endOffset;

        public Exception? Error { get; private set; }

        public void Execute()
        {
            try
            {
                owner._checkpoint.TryWriteClaim(generation, segmentBase, size, endOffset, maxTimestampMs);
            }
            catch (Exception e)
            {
                Error = e;
            }

            owner.OnCheckpointCompleted(this);
        }
    }
}
