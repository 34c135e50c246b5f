using System.Diagnostics.CodeAnalysis;
using System.Net;

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

    /// <summary>Creates the exception with the leader's address, so a client can redirect.</summary>
    /// <param name="nodeId">The node that refused the operation.</param>
    /// <param name="leaderId">The leader as <paramref name="nodeId"/> knows it, or <see cref="RaftNodeId.None"/>.</param>
    /// <param name="leaderEndpoint">The leader's Raft endpoint, or null when unknown.</param>
    public NotLeaderException(RaftNodeId nodeId, RaftNodeId leaderId, EndPoint? leaderEndpoint)
        : this(nodeId, leaderId)
    {
        LeaderEndpoint = leaderEndpoint;
    }

    /// <summary>Creates the exception with the leader's Raft endpoint and its application-defined address.</summary>
    /// <param name="nodeId">The node that refused the operation.</param>
    /// <param name="leaderId">The leader as <paramref name="nodeId"/> knows it, or <see cref="RaftNodeId.None"/>.</param>
    /// <param name="leaderEndpoint">The leader's Raft endpoint, or null when unknown.</param>
    /// <param name="leaderAddress">The address the leader advertises to clients (<see cref="ReplicatedLogOptions.AdvertisedAddress"/>), or null when unknown.</param>
    public NotLeaderException(RaftNodeId nodeId, RaftNodeId leaderId, EndPoint? leaderEndpoint, string? leaderAddress)
        : this(nodeId, leaderId, leaderEndpoint)
    {
        LeaderAddress = leaderAddress;
    }

    /// <summary>
    /// The address clients should use to reach the leader, as the leader advertises it
    /// (<see cref="ReplicatedLogOptions.AdvertisedAddress"/>): null when the leader is unknown, advertises none, or has not
    /// connected to the refusing member since it started.
    /// </summary>
    public string? LeaderAddress { get; }

    /// <summary>The node that refused the operation.</summary>
    public RaftNodeId NodeId { get; }

    /// <summary>The leader's Raft endpoint when the refusing node knows it (a <see cref="ReplicatedLog"/> member), else null.</summary>
    public EndPoint? LeaderEndpoint { get; }

    /// <summary>The leader as <see cref="NodeId"/> knew it, or <see cref="RaftNodeId.None"/> when unknown.</summary>
    public RaftNodeId LeaderId { get; }
}
