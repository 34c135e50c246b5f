using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>A point-in-time view of one member of a <see cref="ReplicatedLog"/> (it may be stale when read).</summary>
[Experimental(RaftExperiments.Raft)]
public sealed class ReplicatedLogStatus
{
    internal ReplicatedLogStatus(
        RaftNodeId nodeId, ReplicaRole role, long term, RaftNodeId leaderId, long commitIndex, long lastIndex,
        long committedEndOffset, IReadOnlyList<FollowerStatus> followers)
    {
        NodeId = nodeId;
        Role = role;
        Term = term;
        LeaderId = leaderId;
        CommitIndex = commitIndex;
        LastIndex = lastIndex;
        CommittedEndOffset = committedEndOffset;
        Followers = followers;
    }

    /// <summary>This member.</summary>
    public RaftNodeId NodeId { get; }

    /// <summary>What this member is doing.</summary>
    public ReplicaRole Role { get; }

    /// <summary>The current Raft term.</summary>
    public long Term { get; }

    /// <summary>The leader this member knows of in <see cref="Term"/>, or <see cref="RaftNodeId.None"/>.</summary>
    public RaftNodeId LeaderId { get; }

    /// <summary>The highest Raft index known committed.</summary>
    public long CommitIndex { get; }

    /// <summary>The last Raft index in this member's log (committed or not).</summary>
    public long LastIndex { get; }

    /// <summary>The offset after the last committed record applied here: <see cref="ReplicatedLog.ReadCommittedAsync"/> reads below it.</summary>
    public long CommittedEndOffset { get; }

    /// <summary>On the leader, every other member's replication progress; empty on other members.</summary>
    public IReadOnlyList<FollowerStatus> Followers { get; }

    /// <summary>The voters in force on this member (the latest membership in its log, committed or not).</summary>
    public IReadOnlyCollection<RaftNodeId> Voters { get; init; } = [];

    /// <summary>The learners in force on this member: they receive the log but do not vote.</summary>
    public IReadOnlyCollection<RaftNodeId> Learners { get; init; } = [];

    /// <summary>
    /// Where each member in force listens for Raft traffic, as this member sends to it: the endpoint replicated with the
    /// membership (given when the member was added, or the initial voters' from the address book), else this member's
    /// address book (<see cref="ReplicatedLogOptions.Members"/>). Members whose endpoint is known nowhere are absent.
    /// </summary>
    public IReadOnlyDictionary<RaftNodeId, System.Net.IPEndPoint> MemberEndpoints { get; init; } = new Dictionary<RaftNodeId, System.Net.IPEndPoint>();

    /// <summary>
    /// Why this member stopped, or null while it runs. A storage failure (or a broken internal invariant) stops the
    /// member for good, as a crash would: it closes its connections so the others elect without it, every call fails
    /// with an <see cref="InvalidOperationException"/> wrapping this, <see cref="Role"/> is <see cref="ReplicaRole.Stopped"/>,
    /// <see cref="LeaderId"/> is none (a <see cref="ReplicatedLog.LeadershipChanged"/> event says so) and the indexes
    /// keep their last values. Dispose the member and start a new one over the same directory to rejoin.
    /// </summary>
    public Exception? Fault { get; init; }
}
