using AppendLog.Raft.Core;

namespace AppendLog.Raft.Storage;

/// <summary>
/// An in-memory <see cref="IRaftLog"/> that keeps what a crash would keep apart from what it would lose.
/// <para>
/// The volatile view is <c>_entries</c> (what reads see). The durable image is <c>_entries[0.._durableCommon)</c>
/// followed by <c>_durableTail</c>: entries that are durable but were truncated away in the volatile view since
/// the last <see cref="Sync"/>. <see cref="Sync"/> makes the volatile view durable; <see cref="Crash"/> throws
/// the volatile view away and reopens the durable image, as a power cut would.
/// </para>
/// <para>
/// Disk faults for the simulation: a crash may keep a prefix of the unsynced suffix (<c>Crash(unsyncedKept)</c>: a torn
/// write; an append-only log with checksummed records recovers a prefix of what was in flight, never a hole), and
/// <see cref="LoseUnsynced"/> models a failed fdatasync on Linux (Fsyncgate): the unsynced entries stay readable in
/// memory, a later sync reports them durable (the kernel marked their pages clean), but a crash finds nothing from them
/// on, unless their positions were written again since.
/// </para>
/// </summary>
internal sealed class MemoryRaftLog : IRaftLog
{
    private readonly List<RaftEntry> _entries = [];
    private readonly List<RaftEntry> _durableTail = [];

    /// <summary>Count of leading <c>_entries</c> that are also in the durable image.</summary>
    private int _durableCommon;

    /// <summary>Entries from this position on never become durable (a failed sync lost their pages); int.MaxValue: none.</summary>
    private int _lostFrom = int.MaxValue;

    public MemoryRaftLog(RaftSnapshot snapshot)
    {
        Snapshot = snapshot;
    }

    public RaftSnapshot Snapshot { get; private set; }

    public long FirstIndex => Snapshot.Index + 1;

    public long LastIndex => Snapshot.Index + _entries.Count;

    public long DurableIndex => Snapshot.Index + _durableCommon;

    public int SyncCount { get; private set; }

    /// <summary>
    /// Simulates a log that keeps only recent payloads in memory (as <see cref="SegmentedRaftLog"/> does): when
    /// positive, an application entry at or below <c>DurableIndex - ResidentEntries</c> is readable only after a
    /// <see cref="Fetch"/> loaded the window holding it. 0: everything is always resident.
    /// </summary>
    public int ResidentEntries { get; init; }

    /// <summary>Entries one <see cref="Fetch"/> loads (the window replaces the previous one).</summary>
    public int FetchEntries { get; init; } = 4;

    public int FetchCount { get; private set; }

    private long _fetchedFrom;
    private long _fetchedTo;
    private long? _missing;

    public bool NeedsFetch => _missing is not null;

    public ValueTask FetchAsync(CancellationToken cancellationToken)
    {
        Fetch();
        return ValueTask.CompletedTask;
    }

    public void Fetch()
    {
        if (_missing is { } from)
        {
            _fetchedFrom = from;
            _fetchedTo = from + FetchEntries;
            _missing = null;
            FetchCount++;
        }
    }

    public void ReadConfigChanges(List<RaftEntry> into) =>
        into.AddRange(_entries.Where(e => e.Kind == RaftEntryKind.ConfigChange));

    private bool IsResident(RaftEntry entry) =>
        ResidentEntries <= 0
        || entry.Kind != RaftEntryKind.Normal
        || entry.Data.IsEmpty
        || entry.Index > DurableIndex - ResidentEntries
        || (entry.Index >= _fetchedFrom && entry.Index < _fetchedTo);

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

        term = _entries[(int)(index - FirstIndex)].Term;
        return true;
    }

    public RaftEntry EntryAt(long index)
    {
        Invariant.Assert(index >= FirstIndex, "EntryAt: index not compacted");
        Invariant.Assert(index <= LastIndex, "EntryAt: index not past the end");
        return _entries[(int)(index - FirstIndex)];
    }

    public void Append(IReadOnlyList<RaftEntry> entries)
    {
        if (entries.Count == 0)
        {
            return;
        }

        var first = entries[0].Index;
        Invariant.Assert(first >= FirstIndex, "append does not reach into the snapshot");
        Invariant.Assert(first <= LastIndex + 1, "append leaves no gap");
        var keep = (int)(first - FirstIndex);
        if (keep <= _lostFrom)
        {
            _lostFrom = int.MaxValue; // the lost positions are written again, and a later sync makes them durable
        }

        if (keep < _entries.Count)
        {
            _epoch++;
            if (keep < _durableCommon)
            {
                // Durable entries are being truncated: until the next sync a crash brings them back.
                _durableTail.InsertRange(0, _entries.GetRange(keep, _durableCommon - keep));
                _durableCommon = keep;
            }

            _entries.RemoveRange(keep, _entries.Count - keep);
        }

        for (var i = 0; i < entries.Count; i++)
        {
            Invariant.Assert(entries[i].Index == first + i, "appended entries are consecutive");
            _entries.Add(entries[i]);
        }
    }

    public void Read(long from, long to, long maxBytes, List<RaftEntry> into)
    {
        Invariant.Assert(from >= FirstIndex, "read does not reach into the snapshot");
        Invariant.Assert(to <= LastIndex + 1, "read does not pass the end");
        long bytes = 0;
        for (var i = from; i < to; i++)
        {
            var entry = _entries[(int)(i - FirstIndex)];
            if (!IsResident(entry))
            {
                _missing ??= i;
                return;
            }

            bytes += entry.SizeBytes;
            if (bytes > maxBytes && i > from)
            {
                return;
            }

            into.Add(entry);
        }
    }

    public ValueTask SyncAsync(CancellationToken cancellationToken)
    {
        Sync();
        return ValueTask.CompletedTask;
    }

    /// <summary>Nothing to hand over in memory; durability comes with <see cref="MarkDurable"/> (a sync of everything).</summary>
    public ValueTask<PendingDurability> WriteAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(new PendingDurability(Task.CompletedTask, LastIndex, _epoch));

    public void MarkDurable(PendingDurability written)
    {
        if (written.Epoch == _epoch)
        {
            Sync();
        }
    }

    private long _epoch;

    public void Sync()
    {
        SyncCount++;
        _durableTail.Clear();
        _durableCommon = _entries.Count;
    }

    /// <summary>A sync failed (EIO): the unsynced entries are lost to the disk, though still in memory (see the class comment).</summary>
    public void LoseUnsynced() => _lostFrom = Math.Min(_lostFrom, _durableCommon);

    public void InstallSnapshot(RaftSnapshot snapshot)
    {
        _epoch++;
        Snapshot = snapshot;
        _entries.Clear();
        _durableTail.Clear();
        _durableCommon = 0;
        _lostFrom = int.MaxValue;
    }

    public void Compact(RaftSnapshot snapshot)
    {
        Invariant.Assert(snapshot.Index > Snapshot.Index, "compaction moves forward");
        Invariant.Assert(snapshot.Index <= DurableIndex, "only durable entries are compacted");
        var drop = (int)(snapshot.Index - Snapshot.Index);
        _entries.RemoveRange(0, drop);
        _durableCommon -= drop;
        if (_lostFrom != int.MaxValue)
        {
            _lostFrom = Math.Max(0, _lostFrom - drop);
        }

        Snapshot = snapshot;
    }

    /// <summary>Assembles a leader's snapshot from its chunks; a crash drops a half-received one.</summary>
    public MemorySnapshotReceiver Receiver { get; } = new();

    public (long Received, SnapshotImage? Image) ReceiveSnapshotChunk(SnapshotMetadata metadata, long length, long offset, ReadOnlySpan<byte> chunk, RaftNodeId sender) =>
        Receiver.Receive(metadata, length, offset, chunk, sender);

    /// <summary>
    /// Simulates a power cut and restart: the log becomes its durable image, plus the first <paramref name="unsyncedKept"/>
    /// unsynced entries when they reached the disk before the cut (a torn write; none past a lost write).
    /// </summary>
    public void Crash(int unsyncedKept = 0)
    {
        Receiver.Abandon();
        if (_lostFrom < _durableCommon)
        {
            // Synced after a failed sync, but the lost pages never reached the disk: nothing from them on is recovered.
            _durableCommon = _lostFrom;
            _durableTail.Clear();
        }
        else if (Math.Min(unsyncedKept, _entries.Count - _durableCommon) is var kept && kept > 0 && _lostFrom == int.MaxValue)
        {
            // The new entries overwrote the truncated durable tail's positions.
            _durableCommon += kept;
            _durableTail.Clear();
        }

        _lostFrom = int.MaxValue;
        _entries.RemoveRange(_durableCommon, _entries.Count - _durableCommon);
        _entries.AddRange(_durableTail);
        _durableTail.Clear();
        _durableCommon = _entries.Count;
    }
}

/// <summary>An in-memory <see cref="IHardStateStore"/> with a durable and a volatile copy.</summary>
internal sealed class MemoryHardStateStore : IHardStateStore
{
    private HardState _volatile;
    private HardState _durable;

    public HardState Load() => _durable;

    public void Save(HardState state) => _volatile = state;

    public void Sync() => _durable = _volatile;

    public ValueTask SyncAsync(CancellationToken cancellationToken)
    {
        Sync();
        return ValueTask.CompletedTask;
    }

    /// <summary>Simulates a power cut: unsynced hard state is lost.</summary>
    public void Crash() => _volatile = _durable;
}
