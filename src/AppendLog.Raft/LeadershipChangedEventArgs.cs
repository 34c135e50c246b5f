using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>The term or the known leader changed (<see cref="ReplicatedLog.LeadershipChanged"/>).</summary>
[Experimental(RaftExperiments.Raft)]
public sealed class LeadershipChangedEventArgs : EventArgs
{
    internal LeadershipChangedEventArgs(long term, RaftNodeId leaderId, bool isThisNode)
    {
        Term = term;
        LeaderId = leaderId;
        IsThisNode = isThisNode;
    }

    /// <summary>The new term.</summary>
    public long Term { get; }

    /// <summary>The leader in <see cref="Term"/>, or <see cref="RaftNodeId.None"/> while an election runs.</summary>
    public RaftNodeId LeaderId { get; }

    /// <summary>Whether this member is now the leader.</summary>
    public bool IsThisNode { get; }
}
