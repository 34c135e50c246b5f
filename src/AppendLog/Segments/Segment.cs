using AppendLog.Io;

namespace AppendLog.Segments;

/// <summary>
/// Where a segment is in its life. Moves only through <see cref="Segment.MoveTo"/>, which asserts the transition:
/// <code>
/// Open ──seal queued──▶ Sealing ──seal done──▶ Sealed
///  ▲  ◀──seal failed (ENOSPC), retried later──┘    │
///  └──────────── suffix truncation reopens ◀────────┘
/// Open, Sealed ──deleted (retention, truncation, reset) or replaced (compaction)──▶ Removed
/// </code>
/// </summary>
internal enum SegmentState
{
    /// <summary>Has a writable handle: the active segment, or a rolled one whose seal has not started (also every unsealed segment found by recovery).</summary>
    Open,

    /// <summary>Its seal (trim, index, close) is queued or running.</summary>
    Sealing,

    /// <summary>Synced, trimmed to its size, indexed, handle closed: immutable.</summary>
    Sealed,

    /// <summary>Left the log: deleted, or replaced by a compacted copy. Final.</summary>
    Removed,
}

/// <summary>
/// One segment: a data file holding the batches of offsets [<see cref="BaseOffset"/>, <see cref="EndOffset"/>).
/// The active segment is preallocated ahead of its write head and has a writable handle; a sealed segment is
/// synced, trimmed to <see cref="Size"/>, indexed and immutable. Fields are guarded by the owning log's lock.
/// </summary>
internal sealed class Segment
{
    public Segment(string path, long baseOffset, long globalStart)
    {
        Path = path;
        BaseOffset = baseOffset;
        EndOffset = baseOffset;
        GlobalStart = globalStart;
    }

    /// <summary>The data file's path.</summary>
    public string Path { get; }

    /// <summary>The first offset the segment may hold (its file name).</summary>
    public long BaseOffset { get; }

    /// <summary>One past the last offset appended to the segment.</summary>
    public long EndOffset { get; set; }

    /// <summary>
    /// The segment's first byte in the log's in-memory byte sequence. Watermarks are tracked as positions in that
    /// sequence (which never resets across segments), so one comparison orders writes in different files.
    /// </summary>
    public long GlobalStart { get; set; }

    /// <summary>Logical size in bytes: the end of the last appended batch.</summary>
    public long Size { get; set; }

    /// <summary>The end of the space reserved (and initialized) ahead of the write head.</summary>
    public long AllocatedEnd { get; set; }

    /// <summary>The writable handle while the segment is active or awaiting its seal; null once sealed.</summary>
    public IDirectFile? File { get; set; }

    /// <summary>True once the file's directory entry is durable (fsync of the directory after creation).</summary>
    public bool DirectoryEntryDurable { get; set; }

    /// <summary>The segment's place in its life; changed only by <see cref="MoveTo"/>.</summary>
    public SegmentState State => _state;

    private SegmentState _state;

    /// <summary>True once sealed: synced, trimmed, indexed, handle closed.</summary>
    public bool IsSealed => _state == SegmentState.Sealed;

    /// <summary>Syncs in flight that will call fdatasync on this file (a seal waits for them: it closes the handle).</summary>
    public int SyncsReferencing { get; set; }

    /// <summary>True while the seal work is queued or running (so it is queued once).</summary>
    public bool IsSealing => _state == SegmentState.Sealing;

    /// <summary>When the segment became active (for age-based roll).</summary>
    public long CreatedTimestamp { get; set; }

    /// <summary>The largest record timestamp in the segment (Unix ms), or -1 when empty.</summary>
    public long MaxTimestampMs { get; set; } = -1;

    /// <summary>The sparse index of the segment (in memory for the active one; loaded for sealed ones).</summary>
    public SparseIndex Index { get; } = new();

    /// <summary>
    /// True once key compaction has swapped in a replacement (a new <see cref="Segment"/> with the same path): a
    /// reader that looked this object up must look again if it opened the path after the swap. Set under the lock,
    /// before the rename; read without it.
    /// </summary>
    public bool IsReplaced
    {
        get => Volatile.Read(ref _isReplaced);
        set => Volatile.Write(ref _isReplaced, value);
    }

    private bool _isReplaced;

    /// <summary>One past the last global position of the segment's data.</summary>
    public long GlobalEnd => GlobalStart + Size;

    /// <summary>
    /// Names the segment's current content for <see cref="BatchCache"/> and readers: unique in the process, replaced
    /// when bytes at positions already written may change (a suffix truncation cuts into or deletes the segment), so a
    /// cached batch or a reader's buffered window of the old content is never taken for the new.
    /// </summary>
    /// <remarks>Changed under the log's lock; readers may read it without the lock (a volatile read) to see that nothing
    /// changed since they last looked.</remarks>
    public long ContentKey
    {
        get => Volatile.Read(ref _contentKey);
        private set => Volatile.Write(ref _contentKey, value);
    }

    /// <summary>True once the segment has left the log (deleted by retention or truncation, or replaced).</summary>
    public bool IsRemoved => _state == SegmentState.Removed;

    /// <summary>The one place a segment's state changes; asserts that the transition is one of its life's.</summary>
    public void MoveTo(SegmentState next)
    {
        bool allowed = (_state, next) switch
        {
            (SegmentState.Open, SegmentState.Sealing) => true,
            (SegmentState.Open, SegmentState.Sealed) => true, // recovery: a valid index proves a finished seal
            (SegmentState.Sealing, SegmentState.Sealed) => true,
            (SegmentState.Sealing, SegmentState.Open) => true,
            (SegmentState.Sealed, SegmentState.Open) => true,
            (SegmentState.Open or SegmentState.Sealed, SegmentState.Removed) => true,
            _ => false,
        };
        Diagnostics.Invariant.Assert(allowed, $"a segment moves {_state} → {next} only along its life");
        _state = next;
    }

    /// <summary>
    /// Records that offsets from <paramref name="cutOffset"/> on were removed from this segment (or all of it, when it is
    /// deleted by the cut) and gives the content a new key. Under the log's lock.
    /// </summary>
    public void RecordCut(long cutOffset)
    {
        _cuts ??= new List<(long, long)>();
        _cuts.Add((ContentKey, cutOffset));
        ContentKey = NewContentKey();
    }

    /// <summary>
    /// The lowest offset cut since the content key was <paramref name="seenKey"/>, or null when none was (keys grow
    /// monotonically, so every cut recorded with a key at or after the one a reader saw happened after it looked).
    /// Under the log's lock.
    /// </summary>
    public long? LowestCutSince(long seenKey)
    {
        long? lowest = null;
        if (_cuts is not null)
        {
            foreach (var (keyBefore, cut) in _cuts)
            {
                if (keyBefore >= seenKey && (lowest is null || cut < lowest))
                {
                    lowest = cut;
                }
            }
        }

        return lowest;
    }

    private static long NewContentKey() => Interlocked.Increment(ref s_nextContentKey);

    private static long s_nextContentKey;

    private long _contentKey = NewContentKey();

    private List<(long KeyBefore, long CutOffset)>? _cuts;
}
