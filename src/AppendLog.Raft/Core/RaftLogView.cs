using AppendLog.Raft.Storage;

namespace AppendLog.Raft.Core;

/// <summary>
/// The node's view of its log: the host's durable <see cref="IRaftLog"/> plus the unstable part not yet handed to the
/// host (entries from <c>_unstableOffset</c> on, and possibly a snapshot to install). Entries in the unstable part
/// shadow stable entries at the same indexes: they are the suffix the host will truncate and rewrite.
/// <para>
/// Watermarks, one chain: <c>Snapshot.Index ≤ Applied ≤ Committed ≤ LastIndex</c>, and
/// <c>Applied ≤ the last stable entry</c> (entries are applied only once durable).
/// </para>
/// </summary>
internal sealed class RaftLogView
{
    private readonly IRaftLog _stable;
    private readonly List<RaftEntry> _unstable = [];
    private long _unstableOffset;

    public RaftLogView(IRaftLog stable, long committed)
    {
        _stable = stable;
        _unstableOffset = stable.LastIndex + 1;
        Committed = Math.Max(committed, stable.Snapshot.Index);
        Applied = stable.Snapshot.Index;
        Invariant.Assert(Committed <= stable.LastIndex, "a durable commit index never points past the durable log");
    }

    public long Committed { get; private set; }

    /// <summary>The last index handed to the host to apply.</summary>
    public long Applied { get; private set; }

    public RaftSnapshot? PendingSnapshot { get; private set; }

    public IReadOnlyList<RaftEntry> Unstable => _unstable;

    public RaftSnapshot Snapshot => PendingSnapshot ?? _stable.Snapshot;

    public long FirstIndex => Snapshot.Index + 1;

    public long LastIndex => _unstable.Count > 0 ? _unstableOffset + _unstable.Count - 1 : PendingSnapshot?.Index ?? _stable.LastIndex;

    /// <summary>The last entry index that is in the host's log and not about to be rewritten.</summary>
    public long StableLastIndex => PendingSnapshot is not null ? PendingSnapshot.Index - 1 : Math.Min(_stable.LastIndex, _unstableOffset - 1);

    public long LastTerm => TermAt(LastIndex);

    public bool TryGetTerm(long index, out long term)
    {
        if (index >= _unstableOffset && index < _unstableOffset + _unstable.Count)
        {
            term = _unstable[(int)(index - _unstableOffset)].Term;
            return true;
        }

        if (PendingSnapshot is not null)
        {
            term = PendingSnapshot.Term;
            return index == PendingSnapshot.Index;
        }

        if (index >= _unstableOffset)
        {
            term = 0;
            return false;
        }

        return _stable.TryGetTerm(index, out term);
    }

    public long TermAt(long index)
    {
        Invariant.Assert(TryGetTerm(index, out var term), $"the term of index {index} is known");
        return term;
    }

    public bool MatchTerm(long index, long term) => TryGetTerm(index, out var t) && t == term;

    public bool IsUpToDate(long lastIndex, long lastTerm)
    {
        var myLastTerm = LastTerm;
        return lastTerm > myLastTerm || (lastTerm == myLastTerm && lastIndex >= LastIndex);
    }

    /// <summary>
    /// Appends <paramref name="entries"/> (consecutive, the first at most <see cref="LastIndex"/> + 1), replacing any
    /// suffix from the first one's index.
    /// </summary>
    public void TruncateAndAppend(IReadOnlyList<RaftEntry> entries)
    {
        if (entries.Count == 0)
        {
            return;
        }

        var first = entries[0].Index;
        Invariant.Assert(first > Committed, "committed entries are never overwritten");
        Invariant.Assert(first <= LastIndex + 1, "appended entries leave no gap");
        if (first <= _unstableOffset)
        {
            _unstable.Clear();
            _unstableOffset = first;
        }
        else
        {
            var keep = (int)(first - _unstableOffset);
            _unstable.RemoveRange(keep, _unstable.Count - keep);
        }

        _unstable.AddRange(entries);
    }

    /// <summary>Adds entries in [<paramref name="from"/>, <paramref name="to"/>) up to <paramref name="maxBytes"/> (at least one).</summary>
    public void Read(long from, long to, long maxBytes, List<RaftEntry> into)
    {
        Invariant.Assert(from >= FirstIndex, "read does not reach into the snapshot");
        Invariant.Assert(to <= LastIndex + 1, "read does not pass the end");
        var stableTo = Math.Min(to, _unstableOffset);
        if (from < stableTo)
        {
            _stable.Read(from, stableTo, maxBytes, into);
            if (into.Count < stableTo - from)
            {
                return;
            }
        }

        long bytes = 0;
        foreach (var entry in into)
        {
            bytes += entry.SizeBytes;
        }

        for (var i = Math.Max(from, _unstableOffset); i < to; i++)
        {
            var entry = _unstable[(int)(i - _unstableOffset)];
            bytes += entry.SizeBytes;
            if (bytes > maxBytes && into.Count > 0)
            {
                return;
            }

            into.Add(entry);
        }
    }

    public void CommitTo(long index)
    {
        if (index > Committed)
        {
            Invariant.Assert(index <= LastIndex, "commit index never passes the last entry");
            Committed = index;
        }
    }

    /// <summary>Whether committed, durable entries wait to be applied (and are not waiting for a fetch).</summary>
    public bool HasEntriesToApply => !ApplyWaitsForFetch && ApplicableTo > Applied;

    /// <summary>The last index the host accepts to apply now (<see cref="RaftNode.LimitApplyTo"/>); unbounded by default.</summary>
    public long ApplyLimit { get; set; } = long.MaxValue;

    /// <summary>Entries are applied once committed and durable here (a leader may commit through its followers alone).</summary>
    private long ApplicableTo => Math.Min(ApplyLimit, Math.Min(Committed, Math.Min(StableLastIndex, _stable.DurableIndex)));

    /// <summary>The next entries to apply are not in memory: the host fetches them, then <see cref="EntriesFetched"/>.</summary>
    public bool ApplyWaitsForFetch { get; private set; }

    /// <summary>Entries that are committed and durable but not yet handed out to apply, up to <paramref name="maxBytes"/>.</summary>
    public List<RaftEntry> NextCommittedEntries(long maxBytes)
    {
        var result = new List<RaftEntry>();
        var to = ApplicableTo;
        if (PendingSnapshot is null && Applied < to && !ApplyWaitsForFetch)
        {
            _stable.Read(Applied + 1, to + 1, maxBytes, result);
            ApplyWaitsForFetch = result.Count == 0;
        }

        return result;
    }

    /// <summary>The host loaded the entries reads asked for.</summary>
    public void EntriesFetched() => ApplyWaitsForFetch = false;

    public void AppliedTo(long index)
    {
        Invariant.Assert(index >= Applied, "applied never goes backwards");
        Invariant.Assert(index <= Committed, "only committed entries are applied");
        Applied = index;
    }

    /// <summary>Replaces the log with <paramref name="snapshot"/>, to be installed by the host.</summary>
    public void Restore(RaftSnapshot snapshot)
    {
        Invariant.Assert(snapshot.Index > Committed, "a restored snapshot is ahead of the commit index");
        PendingSnapshot = snapshot;
        _unstable.Clear();
        _unstableOffset = snapshot.Index + 1;
        Committed = snapshot.Index;
    }

    /// <summary>The host persisted the snapshot and every unstable entry handed out in the last Ready (written them only,
    /// when <paramref name="durable"/> is false).</summary>
    public void StableTo(RaftSnapshot? snapshot, int entryCount, bool durable = true)
    {
        var expectedLastIndex = LastIndex;
        if (snapshot is not null)
        {
            Invariant.Assert(ReferenceEquals(snapshot, PendingSnapshot), "the installed snapshot is the pending one");
            Invariant.Assert(_stable.Snapshot.Index == snapshot.Index, "the host installed the snapshot");
            Applied = snapshot.Index;
            PendingSnapshot = null;
        }

        Invariant.Assert(entryCount == _unstable.Count, "the Ready carried every unstable entry");
        _unstable.Clear();
        _unstableOffset = _stable.LastIndex + 1;
        Invariant.Assert(_stable.LastIndex == expectedLastIndex, "the host appended every entry of the Ready");
        Invariant.Assert(!durable || _stable.DurableIndex == _stable.LastIndex, "the host synced the log before advancing");
    }
}
