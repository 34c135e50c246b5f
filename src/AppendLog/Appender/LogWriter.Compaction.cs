using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>The outcome of swapping a compacted segment in.</summary>
internal enum ReplaceOutcome
{
    /// <summary>The replacement is in the list and its data file is in place.</summary>
    Replaced,

    /// <summary>The segment left the log meanwhile (retention or prefix truncation); nothing changed.</summary>
    Gone,

    /// <summary>A suffix truncation started or ran since the key map was built: the map may name newest records that are gone.</summary>
    Truncated,
}

/// <summary>
/// Key compaction's side of the writer: a snapshot of the segments and the durable end, and the swap of a sealed
/// segment for its compacted replacement. <see cref="_fileGate"/> keeps file-level changes to sealed segments
/// apart: compaction's swap, retention's deletions and a suffix truncation's cut each hold it while they touch
/// files, so none of them acts on a file another one is replacing. It is taken before <see cref="_lock"/>, never
/// after, and is held only for a few metadata operations (the long rewrite happens outside it).
/// </summary>
internal sealed partial class LogWriter
{
    private readonly Lock _fileGate = new();
    private long _truncationCount;

    /// <summary>Called (under the writer's lock: it must only schedule work) each time a segment has been sealed.</summary>
    public Action? SegmentSealed { get; set; }

    /// <summary>The segments with their sizes, the durable end offset and the truncation count, taken together.</summary>
    public (List<(Segment Segment, long Size, bool IsSealed)> Segments, long DurableOffset, long TruncationCount) SnapshotForCompaction()
    {
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            var list = new List<(Segment, long, bool)>(_segments.Count);
            foreach (var s in _segments)
            {
                list.Add((s, s.Size, s.IsSealed && !ReferenceEquals(s, _active)));
            }

            return (list, _waiters.DurableOffset, _frozen is null ? _truncationCount : -1);
        }
    }

    /// <summary>
    /// Swaps <paramref name="old"/> for <paramref name="replacement"/>, whose data and index were written to the
    /// temporary files and synced. The order keeps every crash state readable: (1) delete the old index and sync the
    /// directory (a crash leaves the old data without index: recovery rescans and reseals it); (2) under the lock,
    /// mark the old segment replaced, rename the new data over the old and swap the list entry (a crash leaves old or
    /// new data, both whole, without index: rescanned); (3) sync the directory, rename the new index in, sync again.
    /// </summary>
    public ReplaceOutcome ReplaceSegment(Segment old, Segment replacement, long truncationCount, Action<Segment, Segment> onReplaced)
    {
        string tempData = SegmentCompactor.TemporaryDataFile(old.Path);
        string tempIndex = SegmentCompactor.TemporaryIndexFile(_directory, old.BaseOffset);
        string index = SegmentNames.IndexFile(_directory, old.BaseOffset);
        lock (_fileGate)
        {
            ReplaceOutcome? refused = null;
            lock (_lock)
            {
                ThrowIfUnusableUnsynchronized();
                if (_frozen is not null || _truncationCount != truncationCount)
                {
                    refused = ReplaceOutcome.Truncated;
                }
                else if (!_segments.Contains(old) || !old.IsSealed || ReferenceEquals(old, _active))
                {
                    refused = ReplaceOutcome.Gone;
                }
            }

            if (refused is { } outcome)
            {
                SegmentCompactor.DeleteQuietly(_storage, tempData);
                SegmentCompactor.DeleteQuietly(_storage, tempIndex);
                return outcome;
            }

            _storage.DeleteFile(index);
            _storage.SyncDirectory(_directory);
            lock (_lock)
            {
                // Readers that looked the old segment up and open its path after this see the flag and look again
                // (they would otherwise read the new file by the old segment's positions).
                old.IsReplaced = true;
                _storage.RenameFile(tempData, old.Path);
                _segments[_segments.IndexOf(old)] = replacement;
            }

            onReplaced(old, replacement);
            _storage.SyncDirectory(_directory);
            _storage.RenameFile(tempIndex, index);
            _storage.SyncDirectory(_directory);
            return ReplaceOutcome.Replaced;
        }
    }

    /// <summary>Counts a suffix truncation; the caller holds <see cref="_lock"/>.</summary>
    private void NoteTruncationUnsynchronized() => _truncationCount++;
}
