using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// An always-on safety check inside the Raft node failed: the node's state or its host broke a rule that
/// Raft's safety depends on (for example a committed entry would be overwritten, or the host advanced a
/// batch it did not persist). Treat it as fatal for the node: stop it and investigate; do not retry.
/// </summary>
[Experimental(RaftExperiments.Raft)]
public sealed class RaftInvariantException : Exception
{
    /// <summary>Creates the exception describing the broken <paramref name="invariant"/>.</summary>
    /// <param name="invariant">What should have held.</param>
    public RaftInvariantException(string invariant)
        : base("Raft invariant violated: " + invariant)
    {
    }
}
