using AppendLog.Raft.Core;

namespace AppendLog.Raft.Storage;

/// <summary>
/// <see cref="IRaftLog"/> over a <see cref="SegmentedLog"/>: one entry is one record batch whose partitionLeaderEpoch
/// is the entry's term (<see cref="EntryBatch"/>). Application batches are stored verbatim
/// (<see cref="SegmentedLog.AppendRawBatchAsync"/>): a follower writes the leader's bytes, so every node's log holds
/// the same batches at the same offsets, and an offset names the same record cluster-wide.
/// <para>
/// The seam is synchronous (the deterministic node reads its log inline), so this adapter keeps every entry above
/// the snapshot in memory — payload included — with its base offset and term; the SegmentedLog is the durable copy
/// and rebuilds that index at open (<see cref="OpenAsync"/> reads every batch). Memory therefore grows with the log:
/// an async read seam plus prefix truncation in the core are what bound it (not done yet).
/// </para>
/// <para>
/// Writes are deferred to <see cref="SyncAsync"/>: <see cref="Append"/> only records a pending truncation point and
/// the entries to write; the sync issues <see cref="SegmentedLog.TruncateSuffixAsync"/> (durable when it returns)
/// then one raw append per entry without waiting in between, so the log's group commit covers them all with one
/// fdatasync — a follower thereby debounces its flush over every AppendEntries that arrived during the previous sync.
/// </para>
/// Watermarks (entry counts above the snapshot): <c>durable ≤ written ≤ _entries.Count</c>, where written entries
/// have been handed to the SegmentedLog and durable ones are covered by a completed sync.
/// <para>
/// Snapshots: the core cannot yet truncate a log prefix. <see cref="Compact"/> therefore writes the snapshot beside the
/// log (<see cref="SnapshotFile"/>, with the offset where the entries after it begin) and drops the covered entries from
/// memory only: their batches stay on disk and are skipped at open. <see cref="InstallSnapshot"/> (a follower replacing
/// its log with the leader's snapshot) is refused (<see cref="NotSupportedException"/>): the entries after the snapshot
/// must land at the leader's offsets, which needs a log that can restart at a given offset. The replicated log never
/// compacts, so its leaders never send snapshots.
/// </para>
/// </summary>
internal sealed class SegmentedRaftLog : IRaftLog
{
    private readonly SegmentedLog _log;
    private readonly TimeProvider _time;
    private readonly List<RaftEntry> _entries = [];

    /// <summary>Base offset of <c>_entries[i]</c>; the entry's records are [base, base + record count).</summary>
    private readonly List<long> _baseOffsets = [];

    /// <summary>The offset of the first entry's first record (the log's start offset).</summary>
    private long _firstOffset;

    /// <summary>Where <see cref="SnapshotFile"/> lives; null: compaction is refused.</summary>
    private readonly string? _snapshotDirectory;

    /// <summary>Leading entries handed to the SegmentedLog.</summary>
    private int _written;

    /// <summary>Leading entries covered by a completed sync.</summary>
    private int _durable;

    /// <summary>A truncation the next sync must make before writing: the first offset to remove.</summary>
    private long? _truncateFromOffset;

    private SegmentedRaftLog(SegmentedLog log, RaftSnapshot snapshot, long firstOffset, string? snapshotDirectory, TimeProvider time)
    {
        _log = log;
        _time = time;
        Snapshot = snapshot;
        _firstOffset = firstOffset;
        _snapshotDirectory = snapshotDirectory;
    }

    public RaftSnapshot Snapshot { get; private set; }

    /// <summary>Readers of the underlying log take leases here so a truncation never cuts under them.</summary>
    public TruncationGate Gate { get; } = new();

    public long FirstIndex => Snapshot.Index + 1;

    public long LastIndex => Snapshot.Index + _entries.Count;

    public long DurableIndex => Snapshot.Index + _durable;

    /// <summary>The log's end offset once every pending write is made: the offset the next entry will get.</summary>
    public long EndOffset => _entries.Count == 0 ? _firstOffset : _baseOffsets[^1] + RecordCount(_entries[^1]);

    /// <summary>Opens the adapter over <paramref name="log"/>, rebuilding the entry index from its batches.</summary>
    /// <param name="log">A log used only by this adapter; its flush policy must sync on its own (not Manual).</param>
    /// <param name="bootstrap">The bootstrap snapshot (index 0) holding the initial membership, used when no snapshot is stored.</param>
    /// <param name="snapshotDirectory">Where the snapshot file is kept (beside the log), or null to refuse compaction.</param>
    /// <param name="time">The clock for control batches' timestamps.</param>
    /// <param name="cancellationToken">Cancels the scan.</param>
    public static async ValueTask<SegmentedRaftLog> OpenAsync(
        SegmentedLog log, RaftSnapshot bootstrap, string? snapshotDirectory, TimeProvider time, CancellationToken cancellationToken)
    {
        Invariant.Assert(bootstrap.Index == 0, "the bootstrap snapshot is at index 0");
        Invariant.Assert(log.DurableEndOffset == log.EndOffset, "a freshly opened log has nothing in flight");
        var stored = snapshotDirectory is null ? null : SnapshotFile.Read(snapshotDirectory);
        var snapshot = stored?.Snapshot ?? bootstrap;
        var firstOffset = stored?.EndOffset ?? log.StartOffset;
        Invariant.Assert(firstOffset >= log.StartOffset, "the snapshot's end is in the log");
        Invariant.Assert(firstOffset <= log.EndOffset, "the log holds every entry the snapshot covers");
        var adapter = new SegmentedRaftLog(log, snapshot, firstOffset, snapshotDirectory, time);
        if (log.EndOffset > firstOffset)
        {
            await foreach (var batch in log.ReadBatchesAsync(firstOffset, cancellationToken).ConfigureAwait(false))
            {
                var expectedBase = adapter.EndOffset;
                Invariant.Assert(batch.BaseOffset == expectedBase, "batches are dense: each starts where the last ended");
                var entry = EntryBatch.ToEntry(adapter.LastIndex + 1, batch.Bytes);
                Invariant.Assert(entry.Term == batch.LeaderEpoch, "an entry's term is its batch's leader epoch");
                Invariant.Assert(adapter._entries.Count == 0 || entry.Term >= adapter._entries[^1].Term, "terms never decrease along the log");
                adapter._entries.Add(entry);
                adapter._baseOffsets.Add(batch.BaseOffset);
            }
        }

        adapter._written = adapter._entries.Count;
        adapter._durable = adapter._entries.Count;
        Invariant.Assert(adapter.EndOffset == log.EndOffset, "the index covers the whole log");
        return adapter;
    }

    public bool TryGetTerm(long index, out long term)
    {
        if (index == Snapshot.Index)
        {
            term = Snapshot.Term;
            return true;
        }

        if (index < FirstIndex || index > LastIndex)
        {
            term = 0;
            return false;
        }

        term = _entries[Position(index)].Term;
        return true;
    }

    /// <summary>The offset of the first record of entry <paramref name="index"/>.</summary>
    public long BaseOffsetOf(long index) => _baseOffsets[Position(index)];

    /// <summary>How many records (log offsets) entry <paramref name="entry"/> occupies.</summary>
    public static int RecordCount(RaftEntry entry) =>
        entry.Kind == RaftEntryKind.Normal && !entry.Data.IsEmpty ? EntryBatch.OffsetCount(entry.Data.Span) : 1;

    public void Append(IReadOnlyList<RaftEntry> entries)
    {
        if (entries.Count == 0)
        {
            return;
        }

        var first = entries[0].Index;
        Invariant.Assert(first >= FirstIndex, "append does not reach into the snapshot");
        Invariant.Assert(first <= LastIndex + 1, "append leaves no gap");
        var keep = Position(first);
        if (keep < _entries.Count)
        {
            if (keep < _written)
            {
                // Entries already in the SegmentedLog conflict: cut them at the next sync.
                var cut = _baseOffsets[keep];
                _truncateFromOffset = _truncateFromOffset is { } earlier ? Math.Min(earlier, cut) : cut;
                _written = keep;
                _durable = Math.Min(_durable, keep);
            }

            _entries.RemoveRange(keep, _entries.Count - keep);
            _baseOffsets.RemoveRange(keep, _baseOffsets.Count - keep);
        }

        foreach (var entry in entries)
        {
            Invariant.Assert(entry.Index == LastIndex + 1, "appended entries are consecutive");
            var baseOffset = EndOffset;
            _entries.Add(entry);
            _baseOffsets.Add(baseOffset);
        }

        AssertWatermarks();
    }

    public void Read(long from, long to, long maxBytes, List<RaftEntry> into)
    {
        Invariant.Assert(from >= FirstIndex, "read does not reach into the snapshot");
        Invariant.Assert(to <= LastIndex + 1, "read does not pass the end");
        long bytes = 0;
        for (var i = from; i < to; i++)
        {
            var entry = _entries[Position(i)];
            bytes += entry.SizeBytes;
            if (bytes > maxBytes && i > from)
            {
                return;
            }

            into.Add(entry);
        }
    }

    public async ValueTask SyncAsync(CancellationToken cancellationToken)
    {
        if (_truncateFromOffset is { } cut)
        {
            await Gate.BeginTruncateAsync().ConfigureAwait(false);
            try
            {
                await _log.TruncateSuffixAsync(cut, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                Gate.EndTruncate();
            }

            Invariant.Assert(_log.EndOffset == cut, "the log ends at the cut");
            _truncateFromOffset = null;
        }

        var target = _entries.Count;
        if (_written == target && _durable == target)
        {
            return;
        }

        Invariant.Assert(_log.EndOffset == _baseOffsets.ElementAtOrDefault(_written) || _written == target,
            "the log ends where the first unwritten entry begins");
        var pending = new List<(int Position, ValueTask<long> Append)>(target - _written);
        var timestampMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        for (; _written < target; _written++)
        {
            var entry = _entries[_written];
            var batch = EntryBatch.ToBatch(entry, timestampMs);
            var endBefore = _log.EndOffset;
            var append = _log.AppendRawBatchAsync(batch, cancellationToken);
            if (_log.EndOffset == endBefore)
            {
                // Not accepted inline (backpressure): wait, so a later batch cannot overtake this one.
                var baseOffset = await append.ConfigureAwait(false);
                Invariant.Assert(baseOffset == _baseOffsets[_written], "the log assigned the predicted base offset");
                continue;
            }

            pending.Add((_written, append));
        }

        foreach (var (position, append) in pending)
        {
            var baseOffset = await append.ConfigureAwait(false);
            Invariant.Assert(baseOffset == _baseOffsets[position], "the log assigned the predicted base offset");
        }

        Invariant.Assert(_log.DurableEndOffset >= EndOffset, "every written entry is durable");
        _durable = target;
        AssertWatermarks();
    }

    private void AssertWatermarks()
    {
        Invariant.Assert(_durable <= _written, "durable ≤ written");
        Invariant.Assert(_written <= _entries.Count, "written ≤ appended");
        Invariant.Assert(_baseOffsets.Count == _entries.Count, "one base offset per entry");
    }

    public void InstallSnapshot(RaftSnapshot snapshot) =>
        throw new NotSupportedException("Installing a snapshot needs prefix truncation, which SegmentedLog does not offer yet.");

    public void Compact(RaftSnapshot snapshot)
    {
        if (_snapshotDirectory is null)
        {
            throw new NotSupportedException("This adapter was opened without a snapshot directory.");
        }

        Invariant.Assert(snapshot.Index > Snapshot.Index, "compaction moves forward");
        Invariant.Assert(snapshot.Index <= DurableIndex, "only durable entries are compacted");
        var drop = Position(snapshot.Index) + 1;
        var endOffset = _baseOffsets[drop - 1] + RecordCount(_entries[drop - 1]);
        Invariant.Assert(_entries[drop - 1].Term == snapshot.Term, "the snapshot's term is its last entry's");
        SnapshotFile.Write(_snapshotDirectory, snapshot, endOffset);
        _entries.RemoveRange(0, drop);
        _baseOffsets.RemoveRange(0, drop);
        _written -= drop;
        _durable -= drop;
        _firstOffset = endOffset;
        Snapshot = snapshot;
        AssertWatermarks();
    }

    private int Position(long index) => checked((int)(index - FirstIndex));
}
