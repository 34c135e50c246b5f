using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// One committed application record of a <see cref="ReplicatedLog"/>: its offset (the same on every member) and
/// the payload given to <see cref="ReplicatedLog.ReplicateAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.
/// </summary>
[Experimental(RaftExperiments.Raft)]
public readonly struct CommittedRecord
{
    /// <summary>Creates a record view.</summary>
    /// <param name="offset">The record's offset in the replicated log.</param>
    /// <param name="payload">The record's payload.</param>
    public CommittedRecord(long offset, ReadOnlyMemory<byte> payload)
    {
        Offset = offset;
        Payload = payload;
    }

    /// <summary>The record's offset: identical on every member, because every member stores the same batches in the same order.</summary>
    public long Offset { get; }

    /// <summary>The payload as replicated.</summary>
    public ReadOnlyMemory<byte> Payload { get; }
}
