using AppendLog.Raft.Storage;

namespace AppendLog.Raft.Core;

internal enum RaftMessageType : byte
{
    /// <summary>Leader → follower: entries after (Index, LogTerm), and the leader's commit index.</summary>
    Append,

    /// <summary>Follower → leader: accepted through Index, or rejected the append at Index with a hint.</summary>
    AppendResponse,

    /// <summary>Leader → follower: liveness and the commit index known safe for that follower.</summary>
    Heartbeat,

    HeartbeatResponse,

    /// <summary>Candidate → all: vote for me in Term; my last entry is (Index, LogTerm).</summary>
    Vote,

    VoteResponse,

    /// <summary>Pre-candidate → all: would you vote for me in Term (my term + 1)? Changes no one's term.</summary>
    PreVote,

    PreVoteResponse,

    /// <summary>
    /// Leader → follower: one chunk of a snapshot's image (<see cref="RaftMessage.SnapshotOffset"/>,
    /// <see cref="RaftMessage.SnapshotChunk"/>, of <see cref="RaftMessage.SnapshotLength"/> bytes in all); the last chunk
    /// completes it, and the follower then replaces its log with the snapshot (thesis §5 / paper §7, InstallSnapshot with
    /// offset and done).
    /// </summary>
    Snapshot,

    /// <summary>Leader → transfer target: start an election now, ignoring leases (thesis §3.10).</summary>
    TimeoutNow,

    /// <summary>
    /// Follower → leader: of the snapshot at Index, I hold the first <see cref="RaftMessage.SnapshotOffset"/> bytes; send
    /// from there (a lost chunk, a reconnection or a restart of mine moves it back; the leader resumes where it says).
    /// </summary>
    SnapshotResponse,
}

/// <summary>
/// One message between nodes. Fields not used by a type are left at their defaults. Immutable once sent:
/// the transport may deliver the same instance twice.
/// </summary>
internal sealed record RaftMessage
{
    public required RaftMessageType Type { get; init; }

    public required RaftNodeId From { get; init; }

    public required RaftNodeId To { get; init; }

    public required long Term { get; init; }

    /// <summary>Append: term of the entry before <see cref="Entries"/>; votes: the candidate's last term; rejection: hint term.</summary>
    public long LogTerm { get; init; }

    /// <summary>Append: index of the entry before <see cref="Entries"/>; votes: candidate's last index; heartbeats and their
    /// answers: the leader's read round (see RaftNode.Read.cs); responses: see type.</summary>
    public long Index { get; init; }

    public IReadOnlyList<RaftEntry> Entries { get; init; } = [];

    /// <summary>Append and Heartbeat: the leader's commit index (see each). AppendResponse and HeartbeatResponse: the
    /// last index the follower handed to its state machine (0 from a member that predates it), so a leader still replaying
    /// can hand over to a member that has applied everything.</summary>
    public long Commit { get; init; }

    public bool Reject { get; init; }

    /// <summary>AppendResponse rejection: the follower's guess at the last index where it may match the leader.</summary>
    public long RejectHint { get; init; }

    /// <summary>Snapshot: what the snapshot covers. Only its metadata travels; the image comes in <see cref="SnapshotChunk"/>s.</summary>
    public RaftSnapshot? Snapshot { get; init; }

    /// <summary>Snapshot: the image's whole length in bytes.</summary>
    public long SnapshotLength { get; init; }

    /// <summary>Snapshot: where <see cref="SnapshotChunk"/> starts in the image. SnapshotResponse: the bytes the follower holds.</summary>
    public long SnapshotOffset { get; init; }

    /// <summary>Snapshot: the image's bytes from <see cref="SnapshotOffset"/> (at most <see cref="RaftOptions.SnapshotChunkBytes"/>).</summary>
    public ReadOnlyMemory<byte> SnapshotChunk { get; init; }

    /// <summary>Vote request caused by leadership transfer: receivers ignore their leader lease.</summary>
    public bool Transfer { get; init; }

    public override string ToString() =>
        $"{Type} {From}->{To} t{Term} idx{Index} lt{LogTerm} n{Entries.Count} c{Commit}{(Type is RaftMessageType.Snapshot or RaftMessageType.SnapshotResponse ? $" so{SnapshotOffset}+{SnapshotChunk.Length}/{SnapshotLength}" : "")}{(Reject ? " reject hint" + RejectHint : "")}";
}
