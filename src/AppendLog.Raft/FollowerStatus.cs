using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>A leader's view of one follower (see <see cref="ReplicatedLogStatus.Followers"/>).</summary>
[Experimental(RaftExperiments.Raft)]
public sealed class FollowerStatus
{
    internal FollowerStatus(RaftNodeId nodeId, long matchIndex, long lag, bool isLearner, bool isActive)
    {
        NodeId = nodeId;
        MatchIndex = matchIndex;
        Lag = lag;
        IsLearner = isLearner;
        IsActive = isActive;
    }

    /// <summary>The follower.</summary>
    public RaftNodeId NodeId { get; }

    /// <summary>The highest Raft index known durable on the follower and matching the leader's log.</summary>
    public long MatchIndex { get; }

    /// <summary>How many entries the follower is behind the leader's last index.</summary>
    public long Lag { get; }

    /// <summary>Whether the follower is a learner (receives the log, does not vote).</summary>
    public bool IsLearner { get; }

    /// <summary>Whether the leader heard from the follower within the current election-timeout period.</summary>
    public bool IsActive { get; }
}
