using AppendLog.Diagnostics;
using AppendLog.Io;
using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>
/// Reset: every record is discarded and the log restarts empty at a given offset (what a Raft follower does when it
/// installs its leader's snapshot: the entries after the snapshot must land at the leader's offsets). Like a suffix
/// truncation, the writer is frozen (new appends wait), everything accepted is made durable and all I/O drains first.
/// <para>
/// Crash safety comes from the order of directory changes, each made durable before the next, with recovery's rules
/// (<see cref="SegmentedLog"/>'s decision table) deciding what a crash in between leaves:
/// </para>
/// <list type="number">
/// <item>Old segments at or past the new start are deleted newest first: a crash leaves a prefix of the old log.</item>
/// <item>The new, empty segment file at the new start is created: a crash leaves the old log (recovery drops a
///   segment that does not continue the last one as unacknowledged data past the end, cases D and E).</item>
/// <item>The remaining old segments are deleted oldest first, as prefix truncation does: a crash leaves the old log
///   without some leading segments; after the last one the directory holds only the new empty segment.</item>
/// </list>
/// So a crash leaves either what was left of the old log (whole segments gone at its ends, never a gap, never a torn
/// batch) or the empty log at the new start. A caller that needs all-or-nothing (Raft) records its intent durably
/// first and repeats the reset after a restart that finds the log not yet starting at the new offset.
/// </summary>
internal sealed partial class LogWriter
{
    public async Task ResetAsync(long nextOffset, CancellationToken cancellationToken)
    {
        var (frozen, end) = Freeze();

        bool holdsRetention = false;
        try
        {
            // Prefix truncation (TruncatePrefix, retention) deletes head segments on its own; keep it out meanwhile.
            while (!(holdsRetention = Interlocked.Exchange(ref _retentionRunning, 1) == 0))
            {
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }

            await WaitForDurableAsync(end, requestFlush: true, cancellationToken).ConfigureAwait(false);
            await WaitForIdleAsync().ConfigureAwait(false);
            lock (_fileGate)
            {
                Restart(nextOffset);
            }
        }
        finally
        {
            if (holdsRetention)
            {
                Volatile.Write(ref _retentionRunning, 0);
            }

            lock (_lock)
            {
                _frozen = null;
                _drained = null;
                if (_fault is null && !_closing)
                {
                    MaybePreallocateUnsynchronized();
                }
            }

            frozen.SetResult();
        }
    }

    private void Restart(long nextOffset)
    {
        List<Segment> old;
        long globalEnd;
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            old = [.. _segments];
            globalEnd = HeadGlobal;
            if (old.Count == 1 && old[0].BaseOffset == nextOffset && old[0].Size == 0)
            {
                return; // already the empty log at nextOffset
            }

            // Before any byte changes: readers and the batch cache learn that nothing they read is current any more.
            foreach (var segment in old)
            {
                segment.RecordCut(segment.BaseOffset);
            }
        }

        var removed = new List<Segment>(old);

        try
        {
            // No claim on the old log may survive its removal (docs/internals.md, section 5).
            VoidCheckpointClaims();

            // 1. Segments at or past the new start, newest first (their names could collide with the new file).
            for (int i = old.Count - 1; i >= 0 && old[i].BaseOffset >= nextOffset; i--)
            {
                DeleteSegmentFiles(old[i]);
                old.RemoveAt(i);
            }

            // 2. The new empty segment: past the old log's end, so recovery drops it until the old log is gone.
            string path = SegmentNames.DataFile(_directory, nextOffset);
            var file = _storage.Open(path, FileCreation.CreateNew, _options.DirectIo);
            _storage.SyncDirectory(_directory);

            // 3. The rest of the old log, oldest first.
            foreach (var segment in old)
            {
                DeleteSegmentFiles(segment);
            }

            lock (_lock)
            {
                if (_current is not null)
                {
                    _current.Closed = true;
                    MaybeReleaseSlotUnsynchronized(_current);
                    _current = null;
                }

                ReleaseRetainedUnsynchronized(); // they hold the content the cut or reset replaces
                Invariant.Assert(_liveSlots.Count == 0, "no chunk is in flight after the drain");
                var fresh = new Segment(path, nextOffset, globalEnd)
                {
                    File = file,
                    DirectoryEntryDurable = true,
                    CreatedTimestamp = _time.GetTimestamp(),
                };
                foreach (var segment in removed)
                {
                    segment.MoveTo(SegmentState.Removed);
                }

                _segments.Clear();
                _segments.Add(fresh);
                _active = fresh;
                _nextOffset = nextOffset;
                _waiters.Restart(nextOffset, fresh.GlobalEnd);
                _sync.Restart(fresh.GlobalEnd);
                _idleTail = null;
                _idleTailFileStart = 0;
            }

            foreach (var segment in removed)
            {
                SegmentRemoved?.Invoke(segment);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The files no longer match the writer's view: stop here; reopening recovers one of the states above.
            var toFail = new List<DurableWaiter>();
            LogFaultedException fault;
            lock (_lock)
            {
                FaultUnsynchronized(e, toFail);
                fault = _fault!;
            }

            CompleteWaiters(toFail, fault);
            throw fault;
        }
    }

    private void DeleteSegmentFiles(Segment segment)
    {
        segment.File?.Dispose();
        segment.File = null;

        // Data first, then its index (an index without data is ignored by recovery).
        _storage.DeleteFile(segment.Path);
        _storage.DeleteFile(SegmentNames.IndexFile(_directory, segment.BaseOffset));
        _storage.SyncDirectory(_directory);
    }
}
