using AppendLog.Appender;
using AppendLog.Diagnostics;
using AppendLog.Io;
using AppendLog.Segments;

namespace AppendLog;

/// <summary>
/// Key compaction: sealed segments are rewritten keeping each key's newest record, at its original offset.
/// <para>
/// A run works in passes, oldest segment first. A pass fills a <see cref="KeyMap"/> with every key of a run of
/// sealed segments (as many as <see cref="LogOptions.CompactionKeyMapBytes"/> allows, at least one), then reads the
/// rest of the log up to the durable end offset, moving each of those keys to its newest offset; records not yet
/// durable are not read, so a newer record that a crash could still lose never removes an older one. Then each
/// segment of the run is rewritten to a temporary file and swapped in (<see cref="LogWriter.ReplaceSegment"/>
/// gives the crash-safe order). Because older segments are always done first, once a tombstone's segment is
/// rewritten no older value of its key remains, so an expired tombstone can go without the key coming back.
/// </para>
/// <para>
/// Concurrency: appends, seals and reads go on. One compaction runs at a time per log. Retention, prefix and suffix
/// truncation exclude the swap (not the rewrite); a suffix truncation during a run stops it, because its key map
/// may name newest records the truncation removed. A truncation after a segment was swapped can still remove the
/// newer record that superseded a value compaction removed: compaction assumes, as Kafka does below its high
/// watermark, that records it reads are not truncated later (Raft truncates only uncommitted entries).
/// </para>
/// </summary>
public sealed partial class SegmentedLog
{
    private readonly SemaphoreSlim _compactionLock = new(1, 1);
    private readonly CancellationTokenSource _compactionStop = new();
    private int _backgroundCompactionQueued;

    /// <summary>
    /// Compacts the sealed segments by key: for every key, only its newest record stays (records without a key always
    /// stay); tombstones go once older than <see cref="LogOptions.TombstoneRetention"/>. Offsets do not change: each
    /// surviving record is read back at its original offset, and reads skip the removed offsets. The active segment is
    /// never rewritten, but its durable records count as the newest. Each segment is replaced atomically: a crash at any
    /// point leaves the old or the new segment, never a mix, and no removed value reappears.
    /// </summary>
    /// <param name="cancellationToken">Stops between segments; segments already replaced stay compacted.</param>
    /// <returns>What was removed.</returns>
    /// <exception cref="LogCorruptedException">A sealed segment failed its checks while being read.</exception>
    /// <exception cref="IOException">A file could not be written, renamed or synced; the segment being replaced is intact.</exception>
    /// <exception cref="LogFaultedException">The log is faulted.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask<CompactionResult> CompactAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _compactionStop.Token);
        try
        {
            await _compactionLock.WaitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_compactionStop.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new ObjectDisposedException(nameof(SegmentedLog));
        }

        try
        {
            ThrowIfDisposed();
            var token = linked.Token;
            var result = await Task.Run(() => Compact(token), token).ConfigureAwait(false);
            if (result.SegmentsRewritten > 0)
            {
                _logger.Compacted(Directory, result.SegmentsRewritten, result.Passes, result.RecordsRemoved, result.TombstonesRemoved, result.BytesBefore, result.BytesAfter);
            }

            return result;
        }
        finally
        {
            _compactionLock.Release();
        }
    }

    /// <summary>
    /// Called once per swap, after the new segment is in the list and its data file is in place (before its index is
    /// renamed in); the old segment's file stays readable through handles already open. Readers that hold
    /// <paramref name="old"/> see <see cref="Segment.IsReplaced"/>. The place to drop anything cached for the old one.
    /// </summary>
    internal void OnSegmentReplaced(Segment old, Segment replacement)
    {
        _ = replacement; // a new Segment object: a new content key for the batch cache, its own read handle
        old.MoveTo(SegmentState.Removed);
        _readFiles.Forget(old);
    }

    private CompactionResult Compact(CancellationToken cancellationToken)
    {
        long cutoffMs = _time.GetUtcNow().ToUnixTimeMilliseconds() - (long)_options.TombstoneRetention.TotalMilliseconds;
        var state = new CompactionState { TombstoneCutoffMs = cutoffMs };
        using var scanner = new BatchScanner(_options.MaximumBatchSize);
        byte[] scratch = [];
        long resumeFrom = long.MinValue;
        int rewritten = 0, passes = 0;
        long before = 0, after = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (segments, durableEnd, truncations) = _writer.SnapshotForCompaction();
            if (truncations < 0)
            {
                return Result(stoppedByTruncation: true);
            }

            // Only the leading run of sealed segments: everything older than a segment must be compacted before it.
            int sealedCount = segments.FindIndex(s => !s.IsSealed);
            sealedCount = sealedCount < 0 ? segments.Count : sealedCount;
            int first = segments.FindIndex(s => s.IsSealed && s.Segment.BaseOffset >= resumeFrom);
            if (first < 0 || first >= sealedCount)
            {
                return Result(stoppedByTruncation: false);
            }

            var map = new KeyMap();
            int end = first;
            while (end < sealedCount && (end == first || map.EstimatedBytes < _options.CompactionKeyMapBytes))
            {
                cancellationToken.ThrowIfCancellationRequested();
                Scan(segments[end], durableEnd, map, insert: true, scanner, ref scratch);
                end++;
            }

            for (int i = end; i < segments.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Scan(segments[i], durableEnd, map, insert: false, scanner, ref scratch);
            }

            passes++;
            for (int i = first; i < end; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var old = segments[i].Segment;
                var replacement = SegmentCompactor.Rewrite(_storage, _options, old, map, state, scanner);
                if (replacement is null)
                {
                    continue;
                }

                var outcome = _writer.ReplaceSegment(old, replacement, truncations, OnSegmentReplaced);
                if (outcome == ReplaceOutcome.Truncated)
                {
                    return Result(stoppedByTruncation: true);
                }

                if (outcome == ReplaceOutcome.Replaced)
                {
                    rewritten++;
                    before += old.Size;
                    after += replacement.Size;
                }
            }

            resumeFrom = segments[end - 1].Segment.EndOffset;
        }

        CompactionResult Result(bool stoppedByTruncation) =>
            new(rewritten, passes, state.RecordsRemoved, state.TombstonesRemoved, before, after, stoppedByTruncation);
    }

    private void Scan((Segment Segment, long Size, bool IsSealed) entry, long durableEnd, KeyMap map, bool insert, BatchScanner scanner, ref byte[] scratch)
    {
        IDirectFile file;
        try
        {
            file = _storage.Open(entry.Segment.Path, FileCreation.OpenExisting, _options.DirectIo);
        }
        catch (FileNotFoundException) when (IsGone(entry.Segment))
        {
            return; // deleted by retention meanwhile: its keys no longer matter
        }

        using (file)
        {
            if (entry.Segment.IsReplaced)
            {
                // Compacted meanwhile can only mean by this run (one at a time), and only segments it already did.
                return;
            }

            SegmentCompactor.ScanKeys(file, entry.Segment.BaseOffset, entry.Size, durableEnd, entry.IsSealed, map, insert, scanner, ref scratch);
        }
    }

    private bool IsGone(Segment segment)
    {
        lock (_writer.SyncRoot)
        {
            return !_segments.Contains(segment);
        }
    }

    /// <summary>Runs under the writer's lock after each seal: only queues a background run.</summary>
    private void OnSegmentSealed()
    {
        if (_options.CompactionPolicy == CompactionPolicy.AfterRoll && Interlocked.Exchange(ref _backgroundCompactionQueued, 1) == 0)
        {
            _ = Task.Run(RunBackgroundCompactionAsync);
        }
    }

    private async Task RunBackgroundCompactionAsync()
    {
        Volatile.Write(ref _backgroundCompactionQueued, 0);
        try
        {
            await CompactAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            // The log is closing.
        }
        catch (Exception e)
        {
            _logger.CompactionFailed(Directory, e);
        }
    }

    /// <summary>Stops a running compaction (between batches) and waits for it; later calls fail as disposed.</summary>
    private async ValueTask StopCompactionAsync()
    {
        await _compactionStop.CancelAsync().ConfigureAwait(false);
        await _compactionLock.WaitAsync().ConfigureAwait(false);
    }
}
