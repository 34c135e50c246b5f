using AppendLog.Raft.Core;

namespace AppendLog.Raft.Storage;

/// <summary>
/// <see cref="IRaftLog"/> over a <see cref="SegmentedLog"/>: one entry is one record batch whose partitionLeaderEpoch
/// is the entry's term (<see cref="EntryBatch"/>). Application batches are stored verbatim
/// (<see cref="SegmentedLog.AppendRawBatchAsync"/>): a follower writes the leader's bytes, so every node's log holds
/// the same batches at the same offsets, and an offset names the same record cluster-wide.
/// <para>
/// Memory is bounded: per entry the adapter keeps only a compact slot (base offset, term, record count, payload
/// length, kind), plus the payloads of Raft's own entries (a no-op is empty, a membership change a few bytes) and of
/// recent application entries up to a byte budget (<c>residentBytesMax</c>). Older payloads are dropped once durable
/// and read back on demand: a <see cref="Read"/> that reaches one stops there and remembers it
/// (<see cref="NeedsFetch"/>), and the host later calls <see cref="FetchAsync"/>, which reads a bounded run of batches
/// with <see cref="SegmentedLog.ReadBatchesAsync"/> (the public read API; nothing blocks on a task), then tells the
/// node to retry. The run just fetched stays in memory until the next fetch, so every fetch lets the node make progress
/// (an append to a lagging follower, or a chunk of the replay at start). Entries not yet durable are never dropped.
/// </para>
/// <para>
/// Writes are deferred to <see cref="SyncAsync"/>: <see cref="Append"/> only records a pending truncation point and
/// the entries to write; the sync issues <see cref="SegmentedLog.TruncateSuffixAsync"/> (durable when it returns)
/// then one raw append per entry without waiting in between, so the log's group commit covers them all with one
/// fdatasync — a follower thereby debounces its flush over every AppendEntries that arrived during the previous sync.
/// </para>
/// Watermarks (entry counts above the snapshot): <c>durable ≤ written ≤ _slots.Count</c>, where written entries
/// have been handed to the SegmentedLog and durable ones are covered by a completed sync.
/// <para>
/// Snapshots: <see cref="Compact"/> writes the snapshot beside the log (<see cref="SnapshotFile"/>, with the offset
/// where the entries after it begin) and drops the covered slots; the next sync deletes the whole segments below that
/// offset (<see cref="SegmentedLog.TruncatePrefix"/>, under the truncation gate); batches left in a partly covered
/// segment are skipped at open. <see cref="InstallSnapshot"/> (a follower replacing its log with the leader's
/// snapshot) takes effect at the next sync: the snapshot file is written with <see cref="SnapshotFile.Flags.ResetPending"/>,
/// the log is reset to restart empty at the snapshot's end offset (<see cref="SnapshotPayload"/>), so the entries after
/// it land at the leader's offsets, and the file is rewritten without the flag; an open that finds the flag repeats the
/// reset. A snapshot's data starts with that offset (<see cref="SnapshotPayload"/>).
/// </para>
/// </summary>
internal sealed class SegmentedRaftLog : IRaftLog
{
    /// <summary>Default budget for application payloads kept in memory (recent ones plus the last fetch).</summary>
    public const long DefaultResidentBytesMax = ReplicatedLogOptions.DefaultMaximumCachedLogBytes;

    /// <summary>The most payload bytes one <see cref="FetchAsync"/> loads (one AppendEntries' worth at the default batch size).</summary>
    public const long FetchBytesCap = 1024 * 1024;

    private readonly SegmentedLog _log;
    private readonly TimeProvider _time;
    private readonly List<Slot> _slots = [];

    /// <summary>Indexes whose payloads the latest fetch loaded: kept until the next fetch, whatever the budget.</summary>
    private readonly Queue<long> _fetched = new();

    private readonly long _residentBytesMax;
    private readonly long _fetchBytesMax;

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

    /// <summary>Application payload bytes held in memory.</summary>
    private long _residentBytes;

    /// <summary>Entries below this index were already considered for dropping in index order.</summary>
    private long _evictNext = 1;

    /// <summary>
    /// The reader fetches continue with while they stay sequential (a replay at start, a follower catching up), so its
    /// read-ahead keeps running while the loop applies or sends what the last fetch loaded. Closed before any
    /// truncation, when it reaches the end it was opened with, and by <see cref="CloseAsync"/>.
    /// </summary>
    private IAsyncEnumerator<LogBatch>? _fetchCursor;

    /// <summary>The base offset of the batch <see cref="_fetchCursor"/> returns next.</summary>
    private long _fetchCursorNext;

    /// <summary>The first entry a read stopped at because its payload was not in memory.</summary>
    private long? _missing;

    /// <summary>A snapshot from the leader that the next sync installs (reset of the log included).</summary>
    private RaftSnapshot? _pendingInstall;

    /// <summary>Assembles the leader's snapshot images on disk (created at the first chunk).</summary>
    private FileSnapshotReceiver? _receiver;

    /// <summary>After a compaction: the next sync deletes whole segments below this offset.</summary>
    private long? _prefixBefore;

    /// <summary>Counts truncations and installs: a durability notice from before one of them is stale.</summary>
    private long _epoch;

    private SegmentedRaftLog(SegmentedLog log, RaftSnapshot snapshot, long firstOffset, string? snapshotDirectory, TimeProvider time, long residentBytesMax)
    {
        _log = log;
        _time = time;
        Snapshot = snapshot;
        _firstOffset = firstOffset;
        _snapshotDirectory = snapshotDirectory;
        _residentBytesMax = residentBytesMax;

        // A fetch loads a quarter of the budget, at most FetchBytesCap (and at least one entry). It runs on the Raft
        // loop, and so does applying what it loaded at start: a bigger fetch makes no faster catch-up (the loop fetches
        // again as soon as no input waits) but keeps votes, acknowledgements and proposals waiting longer.
        _fetchBytesMax = Math.Clamp(residentBytesMax / 4, 1, FetchBytesCap);
    }

    /// <summary>What the adapter keeps per entry. <see cref="Data"/> is empty once an application payload is dropped.</summary>
    private struct Slot
    {
        public long BaseOffset;
        public long Term;
        public int RecordCount;
        public int PayloadBytes;
        public RaftEntryKind Kind;
        public ReadOnlyMemory<byte> Data;

        public readonly bool IsApplication => Kind == RaftEntryKind.Normal && PayloadBytes > 0;

        public readonly bool IsDropped => IsApplication && Data.IsEmpty;
    }

    public RaftSnapshot Snapshot { get; private set; }

    /// <summary>Readers of the underlying log take leases here so a truncation never cuts under them.</summary>
    public TruncationGate Gate { get; } = new();

    public long FirstIndex => Snapshot.Index + 1;

    public long LastIndex => Snapshot.Index + _slots.Count;

    public long DurableIndex => Snapshot.Index + _durable;

    /// <summary>The log's end offset once every pending write is made: the offset the next entry will get.</summary>
    public long EndOffset => _slots.Count == 0 ? _firstOffset : _slots[^1].BaseOffset + _slots[^1].RecordCount;

    /// <summary>Application payload bytes held in memory now (for tests and monitoring).</summary>
    public long ResidentBytes => _residentBytes;

    /// <summary>Completed fetches (reads of dropped payloads back from the SegmentedLog).</summary>
    public long FetchCount { get; private set; }

    public bool NeedsFetch => _missing is not null;

    /// <summary>Opens the adapter over <paramref name="log"/>, rebuilding the entry index from its batches.</summary>
    /// <param name="log">A log used only by this adapter; its flush policy must sync on its own (not Manual).</param>
    /// <param name="bootstrap">The bootstrap snapshot (index 0) holding the initial membership, used when no snapshot is stored.</param>
    /// <param name="snapshotDirectory">Where the snapshot file is kept (beside the log), or null to refuse compaction.</param>
    /// <param name="time">The clock for control batches' timestamps.</param>
    /// <param name="cancellationToken">Cancels the scan.</param>
    /// <param name="residentBytesMax">The budget for application payloads kept in memory.</param>
    public static async ValueTask<SegmentedRaftLog> OpenAsync(
        SegmentedLog log, RaftSnapshot bootstrap, string? snapshotDirectory, TimeProvider time, CancellationToken cancellationToken,
        long residentBytesMax = DefaultResidentBytesMax)
    {
        Invariant.Assert(bootstrap.Index == 0, "the bootstrap snapshot is at index 0");
        Invariant.Assert(log.DurableEndOffset == log.EndOffset, "a freshly opened log has nothing in flight");
        var stored = snapshotDirectory is null ? null : SnapshotFile.Read(snapshotDirectory);
        if (stored is { Flags: SnapshotFile.Flags.ResetPending } pending)
        {
            // A crash interrupted installing the leader's snapshot: finish it (ResetAsync is safe to repeat).
            await log.ResetAsync(pending.EndOffset, cancellationToken).ConfigureAwait(false);
            SnapshotFile.Write(snapshotDirectory!, pending.Snapshot, pending.EndOffset);
        }

        var snapshot = stored?.Snapshot ?? bootstrap;
        if (snapshotDirectory is not null)
        {
            // Images no snapshot file names: half received or half taken when the member stopped, or superseded.
            SnapshotFile.DeleteStaleImages(snapshotDirectory, snapshot.Index, atOpen: true);
        }

        var firstOffset = stored?.EndOffset ?? log.StartOffset;
        Invariant.Assert(firstOffset >= log.StartOffset, "the snapshot's end is in the log");
        Invariant.Assert(firstOffset <= log.EndOffset, "the log holds every entry the snapshot covers");
        var adapter = new SegmentedRaftLog(log, snapshot, firstOffset, snapshotDirectory, time, residentBytesMax);
        if (log.EndOffset > firstOffset)
        {
            await foreach (var batch in log.ReadBatchesAsync(firstOffset, cancellationToken).ConfigureAwait(false))
            {
                var expectedBase = adapter.EndOffset;
                Invariant.Assert(batch.BaseOffset == expectedBase, "batches are dense: each starts where the last ended");
                var entry = EntryBatch.ToEntry(adapter.LastIndex + 1, batch.Bytes);
                Invariant.Assert(entry.Term == batch.LeaderEpoch, "an entry's term is its batch's leader epoch");
                Invariant.Assert(adapter._slots.Count == 0 || entry.Term >= adapter._slots[^1].Term, "terms never decrease along the log");
                adapter.AddSlot(entry, batch.BaseOffset);
                adapter._written = adapter._durable = adapter._slots.Count;

                // Keep no payload from the scan: replaying or sending reads them back in bounded runs anyway, and a
                // scan that kept the last budget's worth made every batch of a large log survive into gen2.
                adapter.Drop(adapter.LastIndex);
            }
        }

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

        term = _slots[Position(index)].Term;
        return true;
    }

    /// <summary>The offset of the first record of entry <paramref name="index"/>.</summary>
    public long BaseOffsetOf(long index) => _slots[Position(index)].BaseOffset;

    /// <summary>The offset after the last record of entry <paramref name="index"/> (the snapshot's: where the log starts).</summary>
    public long EndOffsetOf(long index)
    {
        if (index == Snapshot.Index)
        {
            return _firstOffset;
        }

        var slot = _slots[Position(index)];
        return slot.BaseOffset + slot.RecordCount;
    }

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
        if (keep < _slots.Count)
        {
            if (keep < _written)
            {
                // Entries already in the SegmentedLog conflict: cut them at the next sync.
                _epoch++;
                var cut = _slots[keep].BaseOffset;
                _truncateFromOffset = _truncateFromOffset is { } earlier ? Math.Min(earlier, cut) : cut;
                _written = keep;
                _durable = Math.Min(_durable, keep);
            }

            for (var p = keep; p < _slots.Count; p++)
            {
                if (_slots[p].IsApplication && !_slots[p].IsDropped)
                {
                    _residentBytes -= _slots[p].PayloadBytes;
                }
            }

            _slots.RemoveRange(keep, _slots.Count - keep);
            _evictNext = Math.Min(_evictNext, first);
        }

        foreach (var entry in entries)
        {
            Invariant.Assert(entry.Index == LastIndex + 1, "appended entries are consecutive");
            AddSlot(entry, EndOffset);
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
            var slot = _slots[Position(i)];
            if (slot.IsDropped)
            {
                _missing ??= i;
                return;
            }

            bytes += slot.PayloadBytes + RaftEntry.OverheadBytes;
            if (bytes > maxBytes && i > from)
            {
                return;
            }

            into.Add(new RaftEntry(slot.Term, i, slot.Kind, slot.Data));
        }
    }

    public void ReadConfigChanges(List<RaftEntry> into)
    {
        for (var p = 0; p < _slots.Count; p++)
        {
            if (_slots[p].Kind == RaftEntryKind.ConfigChange)
            {
                into.Add(new RaftEntry(_slots[p].Term, FirstIndex + p, RaftEntryKind.ConfigChange, _slots[p].Data));
            }
        }
    }

    /// <summary>
    /// Reads back the dropped payloads from the entry a read stopped at: a run of batches up to a quarter of the memory
    /// budget (at least one), which stays in memory until the next fetch.
    /// </summary>
    public async ValueTask FetchAsync(CancellationToken cancellationToken)
    {
        if (_missing is not { } from)
        {
            return;
        }

        // What earlier fetches loaded has served its purpose (the appends were sent, the entries applied): drop it
        // now rather than when the budget overflows, so read-back buffers die young instead of reaching gen2 (a
        // member replaying a large log at start otherwise ran a gen2 collection every few hundred milliseconds).
        _missing = null;
        while (_fetched.TryDequeue(out var earlier))
        {
            Drop(earlier);
        }

        if (from < FirstIndex || from > DurableIndex)
        {
            return; // compacted or cut meanwhile: the node will ask again for what it still needs
        }

        long loaded = 0;
        var index = from;
        var baseOffset = _slots[Position(from)].BaseOffset;
        if (_fetchCursor is not null && _fetchCursorNext != baseOffset)
        {
            await CloseFetchCursorAsync().ConfigureAwait(false);
        }

        _fetchCursor ??= _log.ReadBatchesAsync(baseOffset, cancellationToken).GetAsyncEnumerator(cancellationToken);
        _fetchCursorNext = baseOffset;
        while (loaded < _fetchBytesMax)
        {
            if (index > DurableIndex || !await _fetchCursor.MoveNextAsync().ConfigureAwait(false))
            {
                await CloseFetchCursorAsync().ConfigureAwait(false); // nothing more to read ahead for
                break;
            }

            var batch = _fetchCursor.Current;
            var position = Position(index);
            var slot = _slots[position];
            Invariant.Assert(batch.BaseOffset == slot.BaseOffset, "a fetched batch starts at its entry's base offset");
            Invariant.Assert(batch.LeaderEpoch == slot.Term, "a fetched batch carries its entry's term");
            if (slot.IsDropped)
            {
                Invariant.Assert(batch.Bytes.Length == slot.PayloadBytes, "a fetched batch is its entry's payload");
                slot.Data = batch.Bytes;
                _slots[position] = slot;
                _residentBytes += slot.PayloadBytes;
                _fetched.Enqueue(index);
                loaded += slot.PayloadBytes;
            }

            _fetchCursorNext = slot.BaseOffset + slot.RecordCount;
            index++;
        }

        FetchCount++;
        DropOldPayloads();
    }

    /// <summary>Closes the reader fetches keep open (call before disposing the SegmentedLog).</summary>
    public ValueTask CloseAsync()
    {
        _receiver?.Close(); // a half-received image stays, with its progress record: the next open resumes it
        return CloseFetchCursorAsync();
    }

    private async ValueTask CloseFetchCursorAsync()
    {
        if (_fetchCursor is { } cursor)
        {
            _fetchCursor = null;
            await cursor.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask SyncAsync(CancellationToken cancellationToken)
    {
        var written = await WriteAsync(cancellationToken).ConfigureAwait(false);
        await written.Durable.ConfigureAwait(false);

        // Entries written by earlier WriteAsync calls whose durability notice has not arrived yet are covered too:
        // the log's durability is contiguous.
        if (_log.DurableEndOffset < EndOffset)
        {
            await _log.WaitForDurableAsync(EndOffset, cancellationToken).ConfigureAwait(false);
        }

        _durable = _slots.Count;
        DropOldPayloads();
        AssertWatermarks();
    }

    public void MarkDurable(PendingDurability written)
    {
        if (written.Epoch != _epoch)
        {
            return; // truncated or replaced since: those entries are not the ones written
        }

        var count = (int)Math.Clamp(written.LastIndex - Snapshot.Index, 0, _written);
        if (count > _durable)
        {
            _durable = count;
            DropOldPayloads();
        }

        AssertWatermarks();
    }

    public async ValueTask<PendingDurability> WriteAsync(CancellationToken cancellationToken)
    {
        if (_pendingInstall is not null || _prefixBefore is not null || _truncateFromOffset is not null)
        {
            await CloseFetchCursorAsync().ConfigureAwait(false); // no reader of the log stays open across a truncation
        }

        if (_pendingInstall is { } install)
        {
            await InstallPendingAsync(install, cancellationToken).ConfigureAwait(false);
        }

        if (_prefixBefore is { } before)
        {
            _prefixBefore = null;
            await Gate.BeginTruncateAsync().ConfigureAwait(false);
            try
            {
                _log.TruncatePrefix(before);
            }
            finally
            {
                Gate.EndTruncate();
            }
        }

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

        var target = _slots.Count;
        if (_written == target)
        {
            return new PendingDurability(Task.CompletedTask, LastIndex, _epoch);
        }

        Invariant.Assert(_log.EndOffset == _slots[_written].BaseOffset, "the log ends where the first unwritten entry begins");
        var pending = new List<(long ExpectedBase, ValueTask<long> Append)>(target - _written);
        var timestampMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        for (; _written < target; _written++)
        {
            var slot = _slots[_written];
            Invariant.Assert(!slot.IsDropped, "an entry's payload stays in memory until it is durable");
            var batch = EntryBatch.ToBatch(new RaftEntry(slot.Term, FirstIndex + _written, slot.Kind, slot.Data), timestampMs);
            var endBefore = _log.EndOffset;
            var append = _log.AppendRawBatchAsync(batch, cancellationToken);
            if (_log.EndOffset == endBefore)
            {
                // Not accepted inline (backpressure): wait, so a later batch cannot overtake this one.
                var baseOffset = await append.ConfigureAwait(false);
                Invariant.Assert(baseOffset == slot.BaseOffset, "the log assigned the predicted base offset");
                continue;
            }

            pending.Add((slot.BaseOffset, append));
        }

        return new PendingDurability(AwaitAppendsAsync(pending), LastIndex, _epoch);
    }

    /// <summary>Completes when every append is durable, checking each got the predicted base offset. Touches no state.</summary>
    private static async Task AwaitAppendsAsync(List<(long ExpectedBase, ValueTask<long> Append)> pending)
    {
        foreach (var (expectedBase, append) in pending)
        {
            var baseOffset = await append.ConfigureAwait(false);
            Invariant.Assert(baseOffset == expectedBase, "the log assigned the predicted base offset");
        }
    }

    private void AddSlot(RaftEntry entry, long baseOffset)
    {
        var application = entry.Kind == RaftEntryKind.Normal && !entry.Data.IsEmpty;
        _slots.Add(new Slot
        {
            BaseOffset = baseOffset,
            Term = entry.Term,
            RecordCount = RecordCount(entry),
            PayloadBytes = entry.Data.Length,
            Kind = entry.Kind,
            Data = entry.Data,
        });
        if (application)
        {
            _residentBytes += entry.Data.Length;
        }
    }

    /// <summary>
    /// Drops durable recent application payloads in index order while over budget. Never the latest fetch (the node
    /// is about to use it; the next fetch drops it), never a payload not yet durable (the next sync writes it).
    /// </summary>
    private void DropOldPayloads()
    {
        _evictNext = Math.Max(_evictNext, FirstIndex);
        while (_residentBytes > _residentBytesMax && _evictNext <= DurableIndex)
        {
            Drop(_evictNext++);
        }
    }

    private void Drop(long index)
    {
        if (index < FirstIndex || index > DurableIndex)
        {
            return;
        }

        var position = Position(index);
        var slot = _slots[position];
        if (slot.IsApplication && !slot.IsDropped)
        {
            slot.Data = default;
            _slots[position] = slot;
            _residentBytes -= slot.PayloadBytes;
        }
    }

    private void AssertWatermarks()
    {
        Invariant.Assert(_durable <= _written, "durable ≤ written");
        Invariant.Assert(_written <= _slots.Count, "written ≤ appended");
        Invariant.Assert(_residentBytes >= 0, "resident bytes are counted exactly");
    }

    /// <summary>
    /// Replaces the whole log with the leader's <paramref name="snapshot"/>: from now on the log is empty after it and
    /// starts at the snapshot's end offset; the next <see cref="SyncAsync"/> makes that durable.
    /// </summary>
    public void InstallSnapshot(RaftSnapshot snapshot)
    {
        if (_snapshotDirectory is null)
        {
            throw new NotSupportedException("This adapter was opened without a snapshot directory.");
        }

        var endOffset = SnapshotPayload.EndOffset(snapshot.Data)
            ?? throw new InvalidDataException("An installed snapshot carries the offset where its log continues.");
        _epoch++;
        _pendingInstall = snapshot;
        Snapshot = snapshot;
        _slots.Clear();
        _written = _durable = 0;
        _truncateFromOffset = null;
        _prefixBefore = null;
        _firstOffset = endOffset;
        _residentBytes = 0;
        _fetched.Clear();
        _missing = null;
        _evictNext = FirstIndex;
    }

    private async ValueTask InstallPendingAsync(RaftSnapshot install, CancellationToken cancellationToken)
    {
        var endOffset = _firstOffset;
        await Gate.BeginTruncateAsync().ConfigureAwait(false);
        try
        {
            // The snapshot (with its intent) is durable before the old log goes; a crash in between is finished at open.
            SnapshotFile.Write(_snapshotDirectory!, install, endOffset, SnapshotFile.Flags.ResetPending);
            await _log.ResetAsync(endOffset, cancellationToken).ConfigureAwait(false);
            SnapshotFile.Write(_snapshotDirectory!, install, endOffset);
        }
        finally
        {
            Gate.EndTruncate();
        }

        Invariant.Assert(_log.StartOffset == endOffset && _log.EndOffset == endOffset, "the log restarts empty at the snapshot's end");
        _pendingInstall = null;
    }

    public void Compact(RaftSnapshot snapshot)
    {
        if (_snapshotDirectory is null)
        {
            throw new NotSupportedException("This adapter was opened without a snapshot directory.");
        }

        Invariant.Assert(snapshot.Index > Snapshot.Index, "compaction moves forward");
        Invariant.Assert(snapshot.Index <= DurableIndex, "only durable entries are compacted");
        var drop = Position(snapshot.Index) + 1;
        var last = _slots[drop - 1];
        var endOffset = last.BaseOffset + last.RecordCount;
        Invariant.Assert(last.Term == snapshot.Term, "the snapshot's term is its last entry's");
        var named = SnapshotPayload.EndOffset(snapshot.Data);
        Invariant.Assert(named is null || named == endOffset, "a snapshot's data names the offset after it");
        SnapshotFile.Write(_snapshotDirectory, snapshot, endOffset);
        _prefixBefore = endOffset;
        for (var p = 0; p < drop; p++)
        {
            if (_slots[p].IsApplication && !_slots[p].IsDropped)
            {
                _residentBytes -= _slots[p].PayloadBytes;
            }
        }

        _slots.RemoveRange(0, drop);
        _written -= drop;
        _durable -= drop;
        _firstOffset = endOffset;
        Snapshot = snapshot;
        AssertWatermarks();
    }

    public (long Received, SnapshotImage? Image) ReceiveSnapshotChunk(SnapshotMetadata metadata, long length, long offset, ReadOnlySpan<byte> chunk, RaftNodeId sender)
    {
        if (_snapshotDirectory is null)
        {
            throw new NotSupportedException("This adapter was opened without a snapshot directory.");
        }

        _receiver ??= new FileSnapshotReceiver(_snapshotDirectory);
        return _receiver.Receive(metadata, length, offset, chunk, sender);
    }

    private int Position(long index) => checked((int)(index - FirstIndex));
}
