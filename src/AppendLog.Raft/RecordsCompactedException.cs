using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// The committed records a reader asked for are no longer in this member's log: a snapshot of the state machine
/// covers them and the log before it was deleted. The state machine holds their effect; read again from
/// <see cref="StartOffset"/> to follow the records after it.
/// </summary>
[Experimental(RaftExperiments.Raft)]
public sealed class RecordsCompactedException : InvalidOperationException
{
    /// <summary>Creates the exception for a read at <paramref name="requestedOffset"/> of a log that now starts at <paramref name="startOffset"/>.</summary>
    /// <param name="requestedOffset">The offset the reader asked for next.</param>
    /// <param name="startOffset">The first offset still in the log.</param>
    public RecordsCompactedException(long requestedOffset, long startOffset)
        : base($"Offset {requestedOffset} was compacted into a snapshot; this member's log now starts at offset {startOffset}.")
    {
        RequestedOffset = requestedOffset;
        StartOffset = startOffset;
    }

    /// <summary>The offset the reader asked for next.</summary>
    public long RequestedOffset { get; }

    /// <summary>The first offset still in the log when the read was refused.</summary>
    public long StartOffset { get; }
}
