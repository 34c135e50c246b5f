using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// A replication within a client session was refused, without being applied: the session is unknown (never opened, or
/// evicted as the least recently used once <see cref="ReplicatedLogOptions.MaximumClientSessions"/> were open), or the
/// sequence is older than the session's latest, whose result is the only one kept. Open a new session; whether an older
/// attempt of this sequence was applied can no longer be told.
/// </summary>
[Experimental(RaftExperiments.Raft)]
public sealed class SessionExpiredException : InvalidOperationException
{
    /// <summary>Creates the exception for <paramref name="sessionId"/> and <paramref name="sequence"/>.</summary>
    /// <param name="sessionId">The session named by the call.</param>
    /// <param name="sequence">The sequence named by the call.</param>
    public SessionExpiredException(long sessionId, long sequence)
        : base($"Client session {sessionId} has expired, or sequence {sequence} is older than its latest: the record was not applied.")
    {
        SessionId = sessionId;
        Sequence = sequence;
    }

    /// <summary>The session named by the call.</summary>
    public long SessionId { get; }

    /// <summary>The sequence named by the call.</summary>
    public long Sequence { get; }
}
