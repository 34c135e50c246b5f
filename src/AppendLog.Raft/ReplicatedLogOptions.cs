using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace AppendLog.Raft;

/// <summary>Settings of one member of a <see cref="ReplicatedLog"/>. Every member must have the same <see cref="InitialVoters"/> (or <see cref="Members"/> keys).</summary>
[Experimental(RaftExperiments.Raft)]
public sealed class ReplicatedLogOptions
{
    /// <summary>The default for <see cref="ReplicateTimeout"/>: 10 s, many election timeouts.</summary>
    public static readonly TimeSpan DefaultReplicateTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The default for <see cref="MaximumPendingReplications"/>.</summary>
    public const int DefaultMaximumPendingReplications = 16 * 1024;

    /// <summary>The default for <see cref="MaximumClientSessions"/>.</summary>
    public const int DefaultMaximumClientSessions = 4096;

    /// <summary>The default for <see cref="SnapshotInterval"/>: a snapshot every million offsets.</summary>
    public const long DefaultSnapshotInterval = 1_000_000;

    /// <summary>
    /// The default for <see cref="MaximumCachedLogBytes"/>: 4 MiB, tens of milliseconds of traffic at full load, enough
    /// for followers that keep up. Bigger caches measured slower (64 MiB: about 65k against 90k commits/s at 64 clients,
    /// twice the memory): batches held for seconds survive into gen2 and cost full collections.
    /// </summary>
    public const long DefaultMaximumCachedLogBytes = 4L * 1024 * 1024;

    /// <summary>This member's id; a key of <see cref="Members"/>.</summary>
    public required RaftNodeId NodeId { get; init; }

    /// <summary>
    /// The address book: TCP endpoints of nodes this member must reach before the replicated membership tells it where
    /// they listen (this member included, whose entry is where it listens). It must hold the initial voters (their
    /// endpoints form the first membership). Unless <see cref="InitialVoters"/> says otherwise the group is bootstrapped
    /// with every key as a voter. Members added at run time carry their endpoint in the entry that adds them
    /// (<see cref="ReplicatedLog.AddLearnerAsync(RaftNodeId, IPEndPoint, CancellationToken)"/>) and every member learns
    /// it from the log, so the others need not list them; a member that joins later lists itself and the current
    /// members. An endpoint replicated with the membership takes precedence over the address book's.
    /// </summary>
    public required IReadOnlyDictionary<RaftNodeId, IPEndPoint> Members { get; init; }

    /// <summary>
    /// The voters the group was first started with; null means every key of <see cref="Members"/>. It must be the same
    /// on every member, including members added later (<see cref="ReplicatedLog.AddLearnerAsync(RaftNodeId, IPEndPoint, CancellationToken)"/>): membership changes
    /// are replayed from it. A member started with an id outside this set waits, without campaigning, until the leader
    /// adds it.
    /// </summary>
    public IReadOnlyCollection<RaftNodeId>? InitialVoters { get; init; }

    /// <summary>This member's directory: the SegmentedLog lives in its <c>log</c> subdirectory, the hard state beside it.</summary>
    public required string Directory { get; init; }

    /// <summary>Raft timing and flow control.</summary>
    public RaftOptions Raft { get; init; } = new();

    /// <summary>The local log's flush policy; null means the core's default. <see cref="FlushPolicy.Manual"/> is refused: nothing would sync.</summary>
    public FlushPolicy? FlushPolicy { get; init; }

    /// <summary>How long <see cref="ReplicatedLog.ReplicateAsync(ReadOnlyMemory{byte}, CancellationToken)"/> waits for a commit before it throws <see cref="ReplicationTimeoutException"/>.</summary>
    public TimeSpan ReplicateTimeout { get; init; } = DefaultReplicateTimeout;

    /// <summary>The most replications queued on the leader before <see cref="ReplicatedLog.ReplicateAsync(ReadOnlyMemory{byte}, CancellationToken)"/> waits for room (back-pressure).</summary>
    public int MaximumPendingReplications { get; init; } = DefaultMaximumPendingReplications;

    /// <summary>
    /// The state machine: called once per committed record, in offset order, on every member, after the record is
    /// durable on a quorum and on this member. After a restart it is called again for every record from the start of the
    /// log (the state machine is rebuilt by replay; use <see cref="StateMachine"/> for snapshots). Must not throw: an exception
    /// stops the member. It runs on the member's apply task, not its Raft loop: a slow callback delays applying only.
    /// </summary>
    public Func<CommittedRecord, CancellationToken, ValueTask>? Apply { get; init; }

    /// <summary>
    /// The most bytes of record batches this member keeps in memory to serve followers and its own state machine
    /// (recent batches, and those read back for a follower that is behind). Older batches are read back from the local
    /// log when needed, so memory stays bounded however long the log grows. Default 4 MiB (<see cref="DefaultMaximumCachedLogBytes"/>).
    /// </summary>
    public long MaximumCachedLogBytes { get; init; } = DefaultMaximumCachedLogBytes;

    /// <summary>
    /// The state machine, with snapshots (use it instead of <see cref="Apply"/>): committed records are applied to it,
    /// a snapshot of it is taken every <see cref="SnapshotInterval"/> offsets and the log before the snapshot is dropped;
    /// at start it is restored from the latest snapshot, then the records after it are applied again.
    /// </summary>
    public IReplicatedStateMachine? StateMachine { get; init; }

    /// <summary>With a <see cref="StateMachine"/>: how many offsets are committed between two snapshots; 0 never snapshots.</summary>
    public long SnapshotInterval { get; init; } = DefaultSnapshotInterval;

    /// <summary>
    /// The most client sessions (<see cref="ReplicatedLog.OpenSessionAsync"/>) the replicated session table keeps; opening
    /// one more evicts the least recently used, whose later retries fail with <see cref="SessionExpiredException"/>. Each
    /// session costs about 40 bytes plus its latest response, on every member and in every snapshot. It must be the same on
    /// every member. Default 4096 (<see cref="DefaultMaximumClientSessions"/>).
    /// </summary>
    public int MaximumClientSessions { get; init; } = DefaultMaximumClientSessions;

    /// <summary>The local log's segment size (tests use small segments so that prefix truncation deletes files); null: the core's default.</summary>
    internal long? SegmentSize { get; init; }

    /// <summary>Committed entries handed to the state machine's task beyond the last one applied, at most (tests lower it).</summary>
    internal int ApplyEntriesQueuedMax { get; init; } = 4096;

    /// <summary>
    /// Names the group (empty by default). Every connection between members opens with it, and a member refuses a
    /// connection from one configured with another id, so a member of another group that was given this group's
    /// addresses (a copied configuration, a reused host or port) cannot join its elections or its log. At most 255 bytes
    /// in UTF-8. A guard against mistakes, not authentication.
    /// </summary>
    public string ClusterId { get; init; } = "";

    /// <summary>
    /// The address clients should use to reach this member when it leads (any text the application understands, for
    /// example "host:9092"), or null. Members tell each other when they connect, and a member that is not the leader names
    /// the leader's in <see cref="NotLeaderException.LeaderAddress"/>. At most 1024 bytes in UTF-8.
    /// </summary>
    public string? AdvertisedAddress { get; init; }

    /// <summary>The clock for ticks, timeouts and timestamps; null means <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>Seeds the randomized election timeouts (for reproducible tests); null draws a seed.</summary>
    public int? RandomSeed { get; init; }

    /// <summary>Checks the options and returns them.</summary>
    /// <returns>This instance.</returns>
    /// <exception cref="ArgumentException"><see cref="ClusterId"/> is longer than 255 bytes or <see cref="AdvertisedAddress"/> longer than 1024 in UTF-8, <see cref="Members"/> does not contain <see cref="NodeId"/>, holds the reserved id 0, the flush policy is Manual, InitialVoters is empty or names an id outside Members, or both Apply and StateMachine are set.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of its range.</exception>
    public ReplicatedLogOptions Validate()
    {
        ArgumentNullException.ThrowIfNull(Members);
        ArgumentException.ThrowIfNullOrEmpty(Directory);
        ArgumentNullException.ThrowIfNull(ClusterId);
        if (AdvertisedAddress is not null && System.Text.Encoding.UTF8.GetByteCount(AdvertisedAddress) > Transport.ClusterHello.AddressBytesMax)
        {
            throw new ArgumentException($"AdvertisedAddress is at most {Transport.ClusterHello.AddressBytesMax} bytes in UTF-8.", nameof(AdvertisedAddress));
        }

        if (System.Text.Encoding.UTF8.GetByteCount(ClusterId) > Transport.ClusterHello.ClusterIdBytesMax)
        {
            throw new ArgumentException($"ClusterId is at most {Transport.ClusterHello.ClusterIdBytesMax} bytes in UTF-8.", nameof(ClusterId));
        }

        if (NodeId.IsNone || !Members.ContainsKey(NodeId))
        {
            throw new ArgumentException($"Members must contain this node's id {NodeId}.", nameof(Members));
        }

        if (Members.Keys.Any(id => id.IsNone))
        {
            throw new ArgumentException("Node id 0 is reserved for 'none'.", nameof(Members));
        }

        if (ReferenceEquals(FlushPolicy, AppendLog.FlushPolicy.Manual))
        {
            throw new ArgumentException("A replicated log must sync on its own: FlushPolicy.Manual is refused.", nameof(FlushPolicy));
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ReplicateTimeout, TimeSpan.Zero, nameof(ReplicateTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumPendingReplications, 1, nameof(MaximumPendingReplications));
        ArgumentOutOfRangeException.ThrowIfNegative(MaximumCachedLogBytes, nameof(MaximumCachedLogBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(SnapshotInterval, nameof(SnapshotInterval));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumClientSessions, 1, nameof(MaximumClientSessions));
        if (InitialVoters is not null && (InitialVoters.Count == 0 || InitialVoters.Any(v => !Members.ContainsKey(v))))
        {
            throw new ArgumentException("InitialVoters must be a non-empty subset of Members' ids.", nameof(InitialVoters));
        }

        if (Apply is not null && StateMachine is not null)
        {
            throw new ArgumentException("Set either Apply or StateMachine, not both.", nameof(StateMachine));
        }
        Raft.Validate();
        return this;
    }
}
