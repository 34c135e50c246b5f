using AppendLog.Raft.Storage;

namespace AppendLog.Raft.Core;

/// <summary>The node's role.</summary>
internal enum RaftRole : byte
{
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// <summary>
/// A batch of work the node hands its host. The host MUST process it in this order, then call
/// <see cref="RaftNode.Advance"/>, and must not call Step, Tick or Propose between getting a Ready and advancing it:
/// <list type="number">
/// <item>If <see cref="Snapshot"/> is set: install it in the log (replacing the log), durably.</item>
/// <item>Append <see cref="Entries"/> to the log (this first truncates the log's suffix from the first entry's index).</item>
/// <item>Store <see cref="HardState"/> if set.</item>
/// <item>Sync: make all of the above durable (fdatasync). Entries before hard state, or both in one atomic sync:
///   a durable commit index must never point past the durable log. <see cref="MessagesBeforeSync"/> may be sent
///   as soon as the entries are written, while this sync runs.</item>
/// <item>Only now send <see cref="Messages"/>. Every message may depend on the state just persisted: a vote on the
///   persisted vote, an append acknowledgement on the persisted entries, any message on the persisted term.</item>
/// <item>Apply <see cref="CommittedEntries"/> to the state machine, in order (and restore from <see cref="Snapshot"/> first).</item>
/// <item>Serve <see cref="ReadStates"/> whose index is applied (keep the others until it is), fail <see cref="ReadsFailed"/>.</item>
/// </list>
/// <see cref="RaftNode.Advance"/> checks that the log is durable through the last entry the node handed out.
/// </summary>
internal sealed class Ready
{
    public HardState? HardState { get; init; }

    public RaftSnapshot? Snapshot { get; init; }

    public required IReadOnlyList<RaftEntry> Entries { get; init; }

    /// <summary>Messages to send only after the sync: they may depend on the hard state or entries of this batch.</summary>
    public required IReadOnlyList<RaftMessage> Messages { get; init; }

    /// <summary>
    /// A leader's replication messages (appends, heartbeats, snapshots, TimeoutNow) in a term that is already durable.
    /// They depend on nothing this batch persists, so the host may send them before or while it syncs: the leader's
    /// disk write runs in parallel with its followers' (thesis §10.2.1). This is safe because the leader counts its own
    /// copy toward a quorum only after <see cref="RaftNode.Advance"/>, that is, after its sync.
    /// </summary>
    public required IReadOnlyList<RaftMessage> MessagesBeforeSync { get; init; }

    public required IReadOnlyList<RaftEntry> CommittedEntries { get; init; }

    /// <summary>The role and leader after this batch (volatile; for routing clients, never persisted).</summary>
    public required RaftRole Role { get; init; }

    public required RaftNodeId Leader { get; init; }

    /// <summary>
    /// Reads whose leadership check completed (<see cref="RaftNode.ReadIndex"/>): serve each once the state machine has
    /// applied through its index (after this batch's <see cref="CommittedEntries"/>, or a later batch's). Volatile.
    /// </summary>
    public IReadOnlyList<ReadState> ReadStates { get; init; } = [];

    /// <summary>Reads that can no longer be confirmed (this node lost leadership): fail them; the client retries on the leader.</summary>
    public IReadOnlyList<long> ReadsFailed { get; init; } = [];

    /// <summary>
    /// A leader's batch that depends on nothing durable but its own entries: no snapshot, no message to send after the
    /// sync, and a hard state that differs from the persisted one at most in the commit index (which need not be
    /// durable). The host may then hand the entries to its log, apply, and call
    /// <see cref="RaftNode.AdvanceBeforeDurable"/> without waiting for the sync, so the next batch is sent while this one
    /// is still being made durable; once it is, the host calls <see cref="IRaftLog.MarkDurable"/> and
    /// <see cref="RaftNode.LocalDurable"/>, and only then does the leader count its own copy toward a quorum.
    /// </summary>
    public bool MayAdvanceBeforeDurable { get; init; }

    /// <summary>Whether the host must sync before sending (anything durable changed).</summary>
    public bool MustSync => HardState is not null || Snapshot is not null || Entries.Count > 0;
}
