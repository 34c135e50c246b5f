using System.Collections.Immutable;
using AppendLog.Raft.Core;

namespace AppendLog.Raft.Membership;

/// <summary>
/// A membership: the voters (who elect and form quorums), the learners (who receive the log but neither vote nor count
/// toward a quorum), and the Raft endpoint of each member that was added with one (text such as "10.0.0.7:7000"; see
/// <see cref="ConfigChange.Address"/>). A node is never both a voter and a learner; only members have addresses. The
/// addresses travel with the membership (in its log entries, snapshots and snapshot messages), so every member learns
/// where its peers listen from the replicated log rather than from an address book given to each one up front.
/// Addresses play no part in elections or commits. Immutable.
/// </summary>
internal sealed class ClusterConfig
{
    public static readonly ClusterConfig Empty = new([], []);

    public ClusterConfig(IEnumerable<RaftNodeId> voters, IEnumerable<RaftNodeId> learners)
        : this(voters, learners, ImmutableSortedDictionary<RaftNodeId, string>.Empty)
    {
    }

    public ClusterConfig(IEnumerable<RaftNodeId> voters, IEnumerable<RaftNodeId> learners, IEnumerable<KeyValuePair<RaftNodeId, string>> addresses)
    {
        Voters = [.. voters];
        Learners = [.. learners];
        Addresses = addresses.ToImmutableSortedDictionary();
        foreach (var learner in Learners)
        {
            Invariant.Assert(!Voters.Contains(learner), "a node is never both a voter and a learner");
        }

        foreach (var id in Addresses.Keys)
        {
            Invariant.Assert(IsMember(id), "only members have addresses");
        }
    }

    public ImmutableSortedSet<RaftNodeId> Voters { get; }

    public ImmutableSortedSet<RaftNodeId> Learners { get; }

    /// <summary>The Raft endpoint of each member added with one (members bootstrapped or added without one are absent).</summary>
    public ImmutableSortedDictionary<RaftNodeId, string> Addresses { get; }

    /// <summary>Votes (or replicas) needed for a majority of <see cref="Voters"/>.</summary>
    public int Quorum => (Voters.Count / 2) + 1;

    public bool IsVoter(RaftNodeId id) => Voters.Contains(id);

    public bool IsMember(RaftNodeId id) => Voters.Contains(id) || Learners.Contains(id);

    public IEnumerable<RaftNodeId> Members => Voters.Concat(Learners);

    /// <summary>Whether <paramref name="change"/> is a valid single-server step from this membership.</summary>
    public bool CanApply(ConfigChange change) => change.Kind switch
    {
        ConfigChangeKind.AddVoter => !IsVoter(change.Node),
        ConfigChangeKind.AddLearner => !IsMember(change.Node),
        ConfigChangeKind.Remove => IsMember(change.Node) && !(IsVoter(change.Node) && Voters.Count == 1),
        _ => false,
    };

    /// <summary>
    /// The membership after <paramref name="change"/>. Changes that are not valid steps leave it unchanged. An addition
    /// with an address records it (a promotion without one keeps the learner's); a removal forgets the member's.
    /// </summary>
    public ClusterConfig Apply(ConfigChange change)
    {
        if (!CanApply(change))
        {
            return this;
        }

        var addresses = change.Kind == ConfigChangeKind.Remove
            ? Addresses.Remove(change.Node)
            : change.Address is { } address ? Addresses.SetItem(change.Node, address) : Addresses;
        return change.Kind switch
        {
            ConfigChangeKind.AddVoter => new ClusterConfig(Voters.Add(change.Node), Learners.Remove(change.Node), addresses),
            ConfigChangeKind.AddLearner => new ClusterConfig(Voters, Learners.Add(change.Node), addresses),
            _ => new ClusterConfig(Voters.Remove(change.Node), Learners.Remove(change.Node), addresses),
        };
    }

    public override string ToString() =>
        $"voters [{string.Join(",", Voters)}] learners [{string.Join(",", Learners)}]"
        + (Addresses.IsEmpty ? "" : $" addresses [{string.Join(",", Addresses.Select(a => $"{a.Key}={a.Value}"))}]");
}
