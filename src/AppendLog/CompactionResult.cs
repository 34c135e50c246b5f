namespace AppendLog;

/// <summary>What one key compaction did (<see cref="SegmentedLog.CompactAsync"/>).</summary>
public sealed class CompactionResult
{
    internal CompactionResult(int segmentsRewritten, int passes, long recordsRemoved, long tombstonesRemoved, long bytesBefore, long bytesAfter, bool stoppedByTruncation)
    {
        SegmentsRewritten = segmentsRewritten;
        Passes = passes;
        RecordsRemoved = recordsRemoved;
        TombstonesRemoved = tombstonesRemoved;
        BytesBefore = bytesBefore;
        BytesAfter = bytesAfter;
        StoppedByTruncation = stoppedByTruncation;
    }

    /// <summary>The sealed segments replaced by a compacted copy (segments with nothing to remove are left alone).</summary>
    public int SegmentsRewritten { get; }

    /// <summary>The passes over the log (more than one when the key map reached <see cref="LogOptions.CompactionKeyMapBytes"/>).</summary>
    public int Passes { get; }

    /// <summary>The records removed: values superseded by a newer record of their key, and expired tombstones.</summary>
    public long RecordsRemoved { get; }

    /// <summary>The tombstones removed because they were older than <see cref="LogOptions.TombstoneRetention"/>.</summary>
    public long TombstonesRemoved { get; }

    /// <summary>The size in bytes of the rewritten segments before compaction.</summary>
    public long BytesBefore { get; }

    /// <summary>The size in bytes of the rewritten segments after compaction.</summary>
    public long BytesAfter { get; }

    /// <summary>
    /// True when a suffix truncation ran during the compaction, which then stopped early (the key map may have named
    /// records the truncation removed); calling again compacts the rest.
    /// </summary>
    public bool StoppedByTruncation { get; }
}
