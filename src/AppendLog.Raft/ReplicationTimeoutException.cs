using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// A replication was not committed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>. Its outcome is
/// unknown: the payload may still commit later (read the log to find out), or may have been lost with a leader change.
/// </summary>
[Experimental(RaftExperiments.Raft)]
public sealed class ReplicationTimeoutException : TimeoutException
{
    /// <summary>Creates the exception for a wait of <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long the caller waited.</param>
    public ReplicationTimeoutException(TimeSpan timeout)
        : base($"The payload was not committed within {timeout}; it may still commit.")
    {
        Timeout = timeout;
    }

    /// <summary>How long the caller waited.</summary>
    public TimeSpan Timeout { get; }
}
