using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// The outcome of a replication within a client session (<see cref="ReplicatedLog.ReplicateAsync(ReadOnlyMemory{byte}, long, long, CancellationToken)"/>):
/// where the record was applied and what the state machine answered.
/// </summary>
[Experimental(RaftExperiments.Raft)]
public readonly struct ReplicationResult
{
    /// <summary>Creates a result.</summary>
    /// <param name="offset">The offset of the record the state machine applied.</param>
    /// <param name="response">The state machine's response to it.</param>
    /// <param name="isDuplicate">Whether this call's record was a retry of one already applied.</param>
    public ReplicationResult(long offset, ReadOnlyMemory<byte> response, bool isDuplicate)
    {
        Offset = offset;
        Response = response;
        IsDuplicate = isDuplicate;
    }

    /// <summary>The offset of the record the state machine applied: for a duplicate, the first copy's offset, not the retry's.</summary>
    public long Offset { get; }

    /// <summary>
    /// The state machine's response (<see cref="IReplicatedStateMachine.ApplyWithResponseAsync"/>) to the record, the same
    /// for every retry of the sequence; empty with an <see cref="ReplicatedLogOptions.Apply"/> callback.
    /// </summary>
    public ReadOnlyMemory<byte> Response { get; }

    /// <summary>Whether the record had already been applied (an earlier attempt of this call committed): it was not applied again.</summary>
    public bool IsDuplicate { get; }
}
