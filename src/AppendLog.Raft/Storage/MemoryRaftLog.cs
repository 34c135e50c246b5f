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
/// </summary>
internal sealed class MemoryRaftLog : IRaftLog
{
    private readonly List<RaftEntry> _entries = [];
    private readonly List<RaftEntry> _durableTail = [];

    /// <summary>Count of leading <c>_entries</c> that are also in the durable image.</summary>
    private int _durableCommon;

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
        _durableTail.Clear();
        _durableCommon = _entries.Count;
        SyncCount++;
    }

    public void InstallSnapshot(RaftSnapshot snapshot)
    {
        _epoch++;
        Snapshot = snapshot;
        _entries.Clear();
        _durableTail.Clear();
        _durableCommon = 0;
    }

    public void Compact(RaftSnapshot snapshot)
    {
        Invariant.Assert(snapshot.Index > Snapshot.Index, "compaction moves forward");
        Invariant.Assert(snapshot.Index <= DurableIndex, "only durable entries are compacted");
        var drop = (int)(snapshot.Index - Snapshot.Index);
        _entries.RemoveRange(0, drop);
        _durableCommon -= drop;
        Snapshot = snapshot;
    }

    /// <summary>Assembles a leader's snapshot from its chunks; a crash drops a half-received one.</summary>
    public MemorySnapshotReceiver Receiver { get; } = new();

    public (long Received, SnapshotImage? Image) ReceiveSnapshotChunk(SnapshotMetadata metadata, long length, long offset, ReadOnlySpan<byte> chunk) =>
        Receiver.Receive(metadata, length, offset, chunk);

    /// <summary>Simulates a power cut and restart: the log becomes its durable image.</summary>
    public void Crash()
    {
        Receiver.Abandon();
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
