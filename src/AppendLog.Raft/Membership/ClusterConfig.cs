using System.Collections.Immutable;
using AppendLog.Raft.Core;

namespace AppendLog.Raft.Membership;

/// <summary>
/// A membership: the voters (who elect and form quorums) and the learners (who receive the log but neither vote
/// nor count toward a quorum). A node is never both. Immutable.
/// </summary>
internal sealed class ClusterConfig
{
    public static readonly ClusterConfig Empty = new([], []);

    public ClusterConfig(IEnumerable<RaftNodeId> voters, IEnumerable<RaftNodeId> learners)
    {
        Voters = [.. voters];
        Learners = [.. learners];
        foreach (var learner in Learners)
        {
            Invariant.Assert(!Voters.Contains(learner), "a node is never both a voter and a learner");
        }
    }

    public ImmutableSortedSet<RaftNodeId> Voters { get; }

    public ImmutableSortedSet<RaftNodeId> Learners { get; }

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

    /// <summary>The membership after <paramref name="change"/>. Changes that are not valid steps leave it unchanged.</summary>
    public ClusterConfig Apply(ConfigChange change)
    {
        if (!CanApply(change))
        {
            return this;
        }

        return change.Kind switch
        {
            ConfigChangeKind.AddVoter => new ClusterConfig(Voters.Add(change.Node), Learners.Remove(change.Node)),
            ConfigChangeKind.AddLearner => new ClusterConfig(Voters, Learners.Add(change.Node)),
            _ => new ClusterConfig(Voters.Remove(change.Node), Learners.Remove(change.Node)),
        };
    }

    public override string ToString() => $"voters [{string.Join(",", Voters)}] learners [{string.Join(",", Learners)}]";
}
