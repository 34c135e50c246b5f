using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// A proposal or leader-only operation reached a node that is not the leader of its group. Retry against
/// <see cref="LeaderId"/> when it is known; when it is <see cref="RaftNodeId.None"/> an election is in progress.
/// </summary>
[Experimental(RaftExperiments.Raft)]
public sealed class NotLeaderException : InvalidOperationException
{
    /// <summary>Creates the exception raised on <paramref name="nodeId"/>, which believes the leader is <paramref name="leaderId"/>.</summary>
    /// <param name="nodeId">The node that refused the operation.</param>
    /// <param name="leaderId">The leader as <paramref name="nodeId"/> knows it, or <see cref="RaftNodeId.None"/>.</param>
    public NotLeaderException(RaftNodeId nodeId, RaftNodeId leaderId)
        : base(leaderId.IsNone
            ? $"Node {nodeId} is not the leader, and no leader is known (an election may be in progress)."
            : $"Node {nodeId} is not the leader, the leader is {leaderId}.")
    {
        NodeId = nodeId;
        LeaderId = leaderId;
    }

    /// <summary>The node that refused the operation.</summary>
    public RaftNodeId NodeId { get; }

    /// <summary>The leader as <see cref="NodeId"/> knew it, or <see cref="RaftNodeId.None"/> when unknown.</summary>
    public RaftNodeId LeaderId { get; }
}
