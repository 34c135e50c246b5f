using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>
/// Prefix truncation and retention: whole sealed segments leave from the head, oldest first, so that a crash in the
/// middle leaves a log that still starts at a segment boundary with no gap (recovery treats a gap before a sealed
/// segment as corruption).
/// </summary>
internal sealed partial class LogWriter
{
    private int _retentionRunning;

    /// <summary>Deletes every sealed segment whose records all lie below <paramref name="beforeOffset"/>; returns how many.</summary>
    public int DeleteSegmentsBelow(long beforeOffset) => DeleteHeadSegments(s => s.EndOffset <= beforeOffset);

    /// <summary>Applies <see cref="LogOptions.RetentionBytes"/> and <see cref="LogOptions.RetentionAge"/>; returns segments deleted.</summary>
    public int ApplyRetention()
    {
        if (_options.RetentionBytes is null && _options.RetentionAge is null)
        {
            return 0;
        }

        long nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        long total;
        lock (_lock)
        {
            total = 0;
            foreach (var s in _segments)
            {
                total += s.Size;
            }
        }

        return DeleteHeadSegments(s =>
        {
            bool tooBig = _options.RetentionBytes is { } max && total > max;
            bool tooOld = _options.RetentionAge is { } age && s.MaxTimestampMs >= 0 && nowMs - s.MaxTimestampMs > age.TotalMilliseconds;
            if (tooBig || tooOld)
            {
                total -= s.Size;
                return true;
            }

            return false;
        });
    }

    private int DeleteHeadSegments(Func<Segment, bool> shouldDelete)
    {
        if (Interlocked.Exchange(ref _retentionRunning, 1) != 0)
        {
            return 0;
        }

        try
        {
            int deleted = 0;
            while (true)
            {
                // The file gate keeps a compaction from swapping in a file this deletes (LogWriter.Compaction.cs).
                using var gate = _fileGate.EnterScope();
                Segment head;
                lock (_lock)
                {
                    head = _segments[0];
                    if (!head.IsSealed || ReferenceEquals(head, _active) || _segments.Count < 2 || !shouldDelete(head))
                    {
                        return deleted;
                    }

                    _segments.RemoveAt(0);
                    head.MoveTo(SegmentState.Removed);
                }

                SegmentRemoved?.Invoke(head);

                // Data first, then its index: an index without data is ignored by recovery, data without an index
                // would be rescanned, and either way the log still starts at a segment boundary.
                _storage.DeleteFile(head.Path);
                _storage.DeleteFile(SegmentNames.IndexFile(_directory, head.BaseOffset));
                _storage.SyncDirectory(_directory);
                deleted++;
            }
        }
        finally
        {
            Volatile.Write(ref _retentionRunning, 0);
        }
    }
}
