using System.Buffers.Binary;
using AppendLog.Raft.Core;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Tests.Harness;

namespace AppendLog.Raft.Tests.Simulation;

/// <summary>
/// Checks Raft's safety properties (paper §5.2-§5.4, Figure 3) over a whole simulated run, from outside the nodes:
/// election safety, log matching, leader completeness, state-machine safety, and that no acknowledged entry is lost.
/// The first applier of an index defines what that index holds; everyone else must agree.
/// </summary>
internal sealed class SafetyChecker
{
    private readonly Dictionary<long, RaftNodeId> _leaderByTerm = [];
    /// <summary>Each index as first applied, with the applier's term then: the entry was committed in that term or earlier
    /// (a node learns a commit index only from a leader of its current term, or from its own persisted hard state).</summary>
    private readonly Dictionary<long, (RaftEntry Entry, ulong Hash, long AppliedInTerm)> _applied = [];
    private readonly Dictionary<long, RaftEntry> _acknowledged = [];

    public List<string> Violations { get; } = [];

    public IReadOnlyDictionary<long, RaftEntry> Acknowledged => _acknowledged;

    public long AcknowledgedIndexMax { get; private set; }

    public int LeadersElected => _leaderByTerm.Count;

    /// <summary>The highest index any node has applied so far (every entry below it is committed).</summary>
    public long AppliedIndexMax { get; private set; }

    public void Fail(string violation)
    {
        if (Violations.Count < 10)
        {
            Violations.Add(violation);
        }
    }

    /// <summary>Election safety (§5.2): at most one leader per term. On a new leader, leader completeness (§5.4).</summary>
    public void ObserveRole(RaftTestHost host)
    {
        var node = host.N;
        if (node.Role != RaftRole.Leader)
        {
            return;
        }

        if (_leaderByTerm.TryGetValue(node.Term, out var existing))
        {
            if (existing != host.Id)
            {
                Fail($"election safety: term {node.Term} has two leaders, {existing} and {host.Id}");
            }

            return;
        }

        _leaderByTerm[node.Term] = host.Id;
        CheckLeaderCompleteness(host);
    }

    /// <summary>
    /// Every entry applied anywhere (so committed), acknowledged or not, is in the new leader's log, if it was committed
    /// in an earlier term (Figure 3: "committed in a given term ... present in the logs of the leaders for all
    /// higher-numbered terms"). A leader of an old term can still be elected late: a candidate paused with its votes in
    /// its inbox wins when it resumes, after later terms committed entries it lacks (it can commit none of them).
    /// </summary>
    private void CheckLeaderCompleteness(RaftTestHost host)
    {
        var node = host.N;
        foreach (var (index, (entry, _, appliedInTerm)) in _applied)
        {
            if (index < node.FirstIndex)
            {
                continue; // covered by the leader's snapshot, whose hash was checked when it was taken or restored
            }

            if (appliedInTerm >= node.Term)
            {
                continue; // perhaps committed in this leader's term or a later one: not required of it
            }

            if (!node.TryGetTerm(index, out var term) || term != entry.Term)
            {
                var what = _acknowledged.ContainsKey(index) ? "acknowledged entry lost" : "leader completeness";
                Fail($"{what}: new leader {host.Id} of term {node.Term} lacks committed entry {index} (term {entry.Term}); " +
                     $"its log is [{node.FirstIndex}, {node.LastIndex}]");
            }
        }
    }

    /// <summary>State-machine safety (§5.4.3): the same index applies the same entry everywhere.</summary>
    public void ObserveApplied(RaftTestHost host, RaftEntry entry, ulong hash)
    {
        if (_applied.TryGetValue(entry.Index, out var first))
        {
            if (first.Entry.Term != entry.Term || !first.Entry.Data.Span.SequenceEqual(entry.Data.Span) || first.Hash != hash)
            {
                Fail($"state machine safety: node {host.Id} applied {Describe(entry)} at {entry.Index}, " +
                     $"another node applied {Describe(first.Entry)}");
            }
        }
        else
        {
            _applied[entry.Index] = (entry, hash, host.N.Term);
            AppliedIndexMax = Math.Max(AppliedIndexMax, entry.Index);
        }
    }

    /// <summary>
    /// Linearizable reads (thesis §6.4): a read served at <paramref name="index"/> on <paramref name="host"/> reflects
    /// every write that completed before it began, so its index is at least the highest index applied anywhere then,
    /// and the node's state machine has applied through it.
    /// </summary>
    public void CheckRead(RaftTestHost host, RaftNodeId askedNode, long index, long appliedAnywhereAtStart)
    {
        if (host.Id != askedNode)
        {
            Fail($"read served on node {host.Id} but issued on {askedNode}");
        }

        if (index < appliedAnywhereAtStart)
        {
            Fail($"stale read: node {host.Id} served a read at index {index}, but index {appliedAnywhereAtStart} was applied before the read began");
        }

        if (host.AppliedIndex < index)
        {
            Fail($"read served early: node {host.Id} served a read at index {index} having applied only through {host.AppliedIndex}");
        }
    }

    public void ObserveSnapshotRestored(RaftTestHost host, RaftSnapshot snapshot)
    {
        if (snapshot.Data.Length == 0)
        {
            return;
        }

        var hash = BinaryPrimitives.ReadUInt64LittleEndian(snapshot.Data.ToArray().AsSpan(8));
        if (_applied.TryGetValue(snapshot.Index, out var first) && first.Hash != hash)
        {
            Fail($"state machine safety: node {host.Id} restored a snapshot at {snapshot.Index} whose state differs");
        }
    }

    /// <summary>The client saw its proposal applied on the node it proposed to: it is acknowledged.</summary>
    public void Acknowledge(RaftEntry entry)
    {
        _acknowledged[entry.Index] = entry;
        AcknowledgedIndexMax = Math.Max(AcknowledgedIndexMax, entry.Index);
    }

    /// <summary>Log matching (§5.3): two logs with an entry of the same index and term agree on every entry up to it.</summary>
    public void CheckLogMatching(RaftTestHost a, RaftTestHost b)
    {
        var low = Math.Max(a.Log.FirstIndex, b.Log.FirstIndex);
        var high = Math.Min(a.Log.LastIndex, b.Log.LastIndex);
        var matched = false;
        for (var i = high; i >= low; i--)
        {
            var ea = a.Log.EntryAt(i);
            var eb = b.Log.EntryAt(i);
            if (!matched)
            {
                matched = ea.Term == eb.Term;
            }

            if (matched && (ea.Term != eb.Term || !ea.Data.Span.SequenceEqual(eb.Data.Span)))
            {
                Fail($"log matching: nodes {a.Id} and {b.Id} agree on a later entry but differ at {i}: {Describe(ea)} vs {Describe(eb)}");
                return;
            }
        }
    }

    /// <summary>At the end: every acknowledged entry is what every node applied at its index.</summary>
    public void CheckAcknowledgedApplied()
    {
        foreach (var (index, entry) in _acknowledged)
        {
            if (!_applied.TryGetValue(index, out var applied) || applied.Entry.Term != entry.Term
                || !applied.Entry.Data.Span.SequenceEqual(entry.Data.Span))
            {
                Fail($"acknowledged entry lost: {Describe(entry)} at {index}");
            }
        }
    }

    private static string Describe(RaftEntry e) => $"(term {e.Term}, {e.Kind}, {Convert.ToHexString(e.Data.Span)})";
}
