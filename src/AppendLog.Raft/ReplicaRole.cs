using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>What a member of a replicated log is doing in the current term.</summary>
[Experimental(RaftExperiments.Raft)]
public enum ReplicaRole
{
    /// <summary>Follows a leader (or waits for one).</summary>
    Follower = 0,

    /// <summary>Asks whether it could win an election before raising its term (pre-vote).</summary>
    PreCandidate = 1,

    /// <summary>Runs for leader in a new term.</summary>
    Candidate = 2,

    /// <summary>Leads the group: accepts <see cref="ReplicatedLog.ReplicateAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.</summary>
    Leader = 3,

    /// <summary>Stopped after a failure (<see cref="ReplicatedLogStatus.Fault"/>): takes no further part in the group.</summary>
    Stopped = 4,
}
