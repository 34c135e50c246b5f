using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// Timing and flow-control settings of one Raft node. Durations are measured in whole
/// <see cref="TickInterval"/>s: the host calls the node's tick once per interval, driven by a
/// <see cref="TimeProvider"/>, so tests control time.
/// </summary>
[Experimental(RaftExperiments.Raft)]
public sealed class RaftOptions
{
    /// <summary>How often the host ticks the node. Default 10 ms.</summary>
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// The lower bound of the randomized election timeout: a follower that hears nothing from a leader for a
    /// random time in [<see cref="ElectionTimeoutMinimum"/>, <see cref="ElectionTimeoutMaximum"/>) starts an
    /// election. A leader with check-quorum steps down when it has not heard from a quorum within this time.
    /// Default 150 ms.
    /// </summary>
    public TimeSpan ElectionTimeoutMinimum { get; init; } = TimeSpan.FromMilliseconds(150);

    /// <summary>The (exclusive) upper bound of the randomized election timeout. Default 300 ms.</summary>
    public TimeSpan ElectionTimeoutMaximum { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>How often a leader sends heartbeats. Must be shorter than <see cref="ElectionTimeoutMinimum"/>. Default 30 ms.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromMilliseconds(30);

    /// <summary>The most AppendEntries a leader keeps in flight to one follower in the pipelined state. Default 64.</summary>
    public int MaximumInflightAppends { get; init; } = 64;

    /// <summary>The most entry bytes (payloads plus a fixed per-entry overhead) in one AppendEntries, in bytes. Default 1 MiB.</summary>
    public int MaximumBatchBytes { get; init; } = 1024 * 1024;

    /// <summary>Whether a node first asks whether it could win (pre-vote, thesis §9.6) before it raises its term. Default true.</summary>
    public bool PreVote { get; init; } = true;

    /// <summary>
    /// Whether a leader steps down when it has not heard from a quorum within an election timeout, and
    /// followers that hear from a leader ignore vote requests for that long (thesis §6.2). Default true.
    /// </summary>
    public bool CheckQuorum { get; init; } = true;

    /// <summary>
    /// A follower with more committed entries than this still to apply (a member replaying its log after a restart)
    /// campaigns later: its election timeout falls in [max, 2·max − min) instead of [min, max), after every caught-up
    /// member's, so one able to serve writes at once wins the election when there is one (a new leader completes its
    /// first replication only after applying every entry before it). It still votes, and still campaigns when no one
    /// else does. 0 turns this off. Default 1024.
    /// </summary>
    public int CampaignApplyLagEntries { get; init; } = 1024;

    /// <summary>
    /// Opt-in lease reads (thesis §6.4.1): a leader that heard from a quorum recently serves a linearizable read at once,
    /// without a heartbeat round, relying on time: followers ignore candidates for <see cref="ElectionTimeoutMinimum"/>
    /// after hearing from the leader (check-quorum, required), so no other leader can exist until then. The leader's lease
    /// runs from when it sent the heartbeat a quorum answered, for the election timeout minimum less one tick, shortened
    /// by <see cref="MaximumClockDrift"/>, less one more tick for tick rounding. Safe only if no member's clock runs faster
    /// than another's by more than that fraction. A pause of the leader's process does not break it: the host counts
    /// ticks by elapsed (monotonic) time and brings them up to the clock before it judges a lease, so a leader resuming
    /// from a pause longer than its lease finds it expired. A member does not vote for an election timeout after it starts, so a restart
    /// does not cut a lease short; a leader that starts a leadership transfer serves no more lease reads in that term
    /// (the target's election skips leases). Default false: every read takes a heartbeat round (ReadIndex).
    /// </summary>
    public bool LeaseReads { get; init; }

    /// <summary>
    /// With <see cref="LeaseReads"/>: the largest fraction by which one member's clock may run faster than another's
    /// (0.1 = 10 %), taken off the lease. Default 0.1; at least 0 and below 0.5.
    /// </summary>
    public double MaximumClockDrift { get; init; } = 0.1;

    /// <summary>Checks the options and returns them, so they can be validated where they are built.</summary>
    /// <returns>This instance.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of its range.</exception>
    /// <exception cref="ArgumentException"><see cref="LeaseReads"/> without <see cref="CheckQuorum"/>.</exception>
    public RaftOptions Validate()
    {
        if (LeaseReads && !CheckQuorum)
        {
            throw new ArgumentException("Lease reads rely on check-quorum leases: set CheckQuorum.", nameof(LeaseReads));
        }

        if (double.IsNaN(MaximumClockDrift) || MaximumClockDrift is < 0 or >= 0.5)
        {
            throw new ArgumentOutOfRangeException(nameof(MaximumClockDrift), MaximumClockDrift, "The clock drift is a fraction in [0, 0.5).");
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(TickInterval, TimeSpan.Zero, nameof(TickInterval));
        ArgumentOutOfRangeException.ThrowIfLessThan(HeartbeatInterval, TickInterval, nameof(HeartbeatInterval));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ElectionTimeoutMinimum, HeartbeatInterval, nameof(ElectionTimeoutMinimum));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ElectionTimeoutMaximum, ElectionTimeoutMinimum, nameof(ElectionTimeoutMaximum));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumInflightAppends, 1, nameof(MaximumInflightAppends));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumBatchBytes, 1, nameof(MaximumBatchBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(CampaignApplyLagEntries, nameof(CampaignApplyLagEntries));
        return this;
    }

    internal int HeartbeatTicks => Ticks(HeartbeatInterval);

    internal int ElectionTicksMin => Ticks(ElectionTimeoutMinimum);

    /// <summary>
    /// Ticks of the leader's clock a lease lasts after the send tick of the heartbeat round a quorum answered. A follower
    /// that got that heartbeat ignores candidates for at least (ElectionTicksMin − 1) of its tick intervals after it (its
    /// next tick may come at once); the leader's read at n ticks after the send tick happens less than n + 1 intervals
    /// after the send; drift shortens the follower's intervals as seen by the leader. So n + 1 ≤ (min − 1)(1 − drift).
    /// Zero or less: leases never serve (every read takes a round).
    /// </summary>
    internal int LeaseTicks => (int)Math.Floor((ElectionTicksMin - 1) * (1 - MaximumClockDrift)) - 1;

    internal int ElectionTicksMax => Math.Max(Ticks(ElectionTimeoutMaximum), ElectionTicksMin + 1);

    /// <summary>Deliberately broken rules, for tests that prove the simulation's checkers catch them. Never set in production.</summary>
    internal RaftTestingFaults TestingFaults { get; init; }

    /// <summary>
    /// The most image bytes one snapshot message carries (STYLE.md 2). A leader sends one chunk at a time and the next
    /// when the follower acknowledges it, so a snapshot of any size costs the leader one chunk of memory per follower
    /// being caught up, and a frame far below <see cref="Transport.RaftFrame.PayloadBytesMax"/>. 1 MiB: a loopback round
    /// trip per MiB keeps a transfer near disk speed; tests lower it to exercise resumption.
    /// </summary>
    internal int SnapshotChunkBytes { get; init; } = DefaultSnapshotChunkBytes;

    internal const int DefaultSnapshotChunkBytes = 1024 * 1024;

    private int Ticks(TimeSpan span) => (int)Math.Max(1, span.Ticks / TickInterval.Ticks);
}

/// <summary>Rule breaks that tests switch on to show the checkers have teeth.</summary>
[Flags]
internal enum RaftTestingFaults
{
    None = 0,

    /// <summary>The vote is left out of the hard state handed to the host, so a crash forgets it (breaks §5.2).</summary>
    SkipVotePersistence = 1,

    /// <summary>The leader commits an entry of an earlier term by counting replicas (breaks §5.4.2, Figure 8).</summary>
    CommitPreviousTermByCounting = 2,

    /// <summary>A leader counts its own pipelined write toward a quorum before that write is durable (breaks Figure 2's
    /// "updated on stable storage before responding", applied to the leader's own acknowledgement).</summary>
    CountOwnWriteBeforeDurable = 4,

    /// <summary>A leader serves a read at its commit index without confirming its leadership with a quorum (breaks
    /// thesis §6.4: a deposed leader in a minority partition returns stale data).</summary>
    ServeReadsWithoutQuorum = 8,

    /// <summary>A leader appends a membership change before it has committed an entry of its own term (the single-server
    /// change bug of thesis §4.1 that its 2015 erratum fixes: two memberships can then commit different entries at one index).</summary>
    ConfigChangeBeforeOwnTermCommit = 16,
}
