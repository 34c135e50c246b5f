using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// The application state a <see cref="ReplicatedLog"/> keeps on every member: committed records are applied to it in
/// offset order, and it can be written to a snapshot and restored from one. With a state machine the replicated log
/// takes a snapshot every <see cref="ReplicatedLogOptions.SnapshotInterval"/> offsets and then drops the log before it
/// (whole segments), so neither disk use nor restart time grows without bound; a member that is too far behind (or
/// new) receives the leader's snapshot instead of the records it covers.
/// <para>
/// All its methods are called on the member's apply task (not its Raft loop), one at a time, never concurrently: a
/// snapshot sees exactly the records applied so far. They must not throw (an exception stops the member). A slow method
/// delays only applying (and the replications waiting for it), never elections or heartbeats; committed records wait
/// for it in a bounded backlog. A snapshot is written to a file and restored from a stream over one, so its size is
/// bounded by the disk, not by memory. Every member of a group must be configured alike.
/// </para>
/// </summary>
[Experimental(RaftExperiments.Raft)]
public interface IReplicatedStateMachine
{
    /// <summary>Applies one committed record (called once per record, in offset order, on every member).</summary>
    /// <param name="record">The record, with its offset.</param>
    /// <param name="cancellationToken">Signalled when the member stops.</param>
    /// <returns>A task that completes when the record is applied.</returns>
    ValueTask ApplyAsync(CommittedRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// Applies one committed record replicated within a client session and returns the response to keep for it
    /// (<see cref="ReplicatedLog.ReplicateAsync(ReadOnlyMemory{byte}, long, long, CancellationToken)"/>): called instead
    /// of <see cref="ApplyAsync"/> for such records, once per session and sequence however often the client retried. The
    /// response is kept in the replicated session table (and in snapshots) until the session's next sequence, so it must
    /// be at most 64 KiB and be computed from the state alone: every member must return the same bytes. The default
    /// applies the record with <see cref="ApplyAsync"/> and responds with nothing.
    /// </summary>
    /// <param name="record">The record, with its offset.</param>
    /// <param name="cancellationToken">Signalled when the member stops.</param>
    /// <returns>The response (for example, the outcome of a compare-and-set).</returns>
    async ValueTask<ReadOnlyMemory<byte>> ApplyWithResponseAsync(CommittedRecord record, CancellationToken cancellationToken)
    {
        await ApplyAsync(record, cancellationToken).ConfigureAwait(false);
        return ReadOnlyMemory<byte>.Empty;
    }

    /// <summary>Writes the whole state as of the last applied record to <paramref name="destination"/>.</summary>
    /// <param name="destination">Where to write; the replicated log keeps the bytes with the snapshot and may send them to other members.</param>
    /// <param name="cancellationToken">Signalled when the member stops.</param>
    /// <returns>A task that completes when everything is written.</returns>
    ValueTask WriteSnapshotAsync(Stream destination, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces the whole state with a snapshot written by <see cref="WriteSnapshotAsync"/> (possibly on another member):
    /// at start when the member has a snapshot, and when it installs its leader's.
    /// </summary>
    /// <param name="source">The snapshot's bytes.</param>
    /// <param name="cancellationToken">Signalled when the member stops.</param>
    /// <returns>A task that completes when the state is replaced.</returns>
    ValueTask RestoreSnapshotAsync(Stream source, CancellationToken cancellationToken);
}
