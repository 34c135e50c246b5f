using AppendLog.Raft.Core;

namespace AppendLog.Raft.Replication;

internal enum ProgressState : byte
{
    /// <summary>Where the follower's log matches is unknown: one append at a time, then wait for its answer.</summary>
    Probe,

    /// <summary>The follower matches through <see cref="Progress.Match"/>: appends are pipelined up to the in-flight window.</summary>
    Replicate,

    /// <summary>The follower needs entries the leader compacted away: a snapshot is on its way; appends wait.</summary>
    Snapshot,
}

/// <summary>
/// The leader's view of one follower. Watermarks: <c>Match &lt; Next</c>; <c>Match</c> only grows (within a term);
/// entries in [Match + 1, Next) are in flight or were lost.
/// </summary>
internal sealed class Progress
{
    public Progress(long next, int inflightsMax)
    {
        Next = next;
        Inflights = new Inflights(inflightsMax);
    }

    /// <summary>The highest index known to be durable on the follower and matching the leader's log.</summary>
    public long Match { get; private set; }

    /// <summary>The next index to send.</summary>
    public long Next { get; private set; }

    public ProgressState State { get; private set; }

    /// <summary>Probe state: an append was sent and its answer (or a heartbeat answer) has not come back.</summary>
    public bool ProbeSent { get; set; }

    /// <summary>Snapshot state: the index of the snapshot being sent.</summary>
    public long PendingSnapshot { get; private set; }

    /// <summary>Snapshot state: image bytes of <see cref="PendingSnapshot"/> the follower holds (the next chunk starts here).</summary>
    public long SnapshotAcked { get; private set; }

    /// <summary>Snapshot state: an acknowledgement moved <see cref="SnapshotAcked"/> since the last heartbeat answer.</summary>
    public bool SnapshotAdvanced { get; set; }

    /// <summary>
    /// The last snapshot acknowledged in part, and how far: kept when the progress leaves the snapshot state (a probe after
    /// a heartbeat answer, a rejection), so sending the same snapshot again resumes instead of starting over.
    /// </summary>
    private (long Index, long Offset) _snapshotResume;

    /// <summary>
    /// The last index the follower said it handed to its state machine (the Commit field of its answers); 0 until it
    /// answers in this term. A leader still replaying a backlog picks a caught-up member by it (RaftNode.Backlog.cs).
    /// </summary>
    public long Applied { get; set; }

    /// <summary>Heard from within the current check-quorum period.</summary>
    public bool RecentActive { get; set; }

    public Inflights Inflights { get; }

    public bool IsPaused => State switch
    {
        ProgressState.Probe => ProbeSent,
        ProgressState.Replicate => Inflights.IsFull,
        _ => true,
    };

    public void BecomeProbe()
    {
        // After a snapshot, the follower has at least the snapshot's entries.
        Next = State == ProgressState.Snapshot ? Math.Max(Match + 1, PendingSnapshot + 1) : Match + 1;
        State = ProgressState.Probe;
        ResetState();
    }

    public void BecomeReplicate()
    {
        State = ProgressState.Replicate;
        Next = Match + 1;
        ResetState();
    }

    public void BecomeSnapshot(long snapshotIndex)
    {
        State = ProgressState.Snapshot;
        ResetState();
        PendingSnapshot = snapshotIndex;
        SnapshotAcked = _snapshotResume.Index == snapshotIndex ? _snapshotResume.Offset : 0;
    }

    /// <summary>The follower holds the first <paramref name="received"/> bytes of the pending snapshot's image.</summary>
    public void SnapshotAcknowledged(long received)
    {
        Invariant.Assert(State == ProgressState.Snapshot, "snapshot acknowledgements move only a snapshot transfer");
        Invariant.Assert(received >= 0, "a follower holds a non-negative number of bytes");
        SnapshotAcked = received;
        SnapshotAdvanced = true;
        _snapshotResume = (PendingSnapshot, received);
    }

    /// <summary>The follower acknowledged everything through <paramref name="index"/>.</summary>
    /// <returns>Whether <see cref="Match"/> moved.</returns>
    public bool MaybeUpdate(long index)
    {
        var updated = false;
        if (Match < index)
        {
            Match = index;
            ProbeSent = false;
            updated = true;
        }

        Next = Math.Max(Next, index + 1);
        Invariant.Assert(Match < Next, "progress: match < next");
        return updated;
    }

    /// <summary>The pipelined state sends optimistically: the next append starts after <paramref name="lastSent"/>.</summary>
    public void OptimisticUpdate(long lastSent)
    {
        Next = lastSent + 1;
    }

    /// <summary>
    /// The follower rejected an append whose previous entry was <paramref name="rejected"/>, and hinted that its log
    /// may match through <paramref name="matchHint"/>.
    /// </summary>
    /// <returns>False when the rejection is stale (answers an append this progress has moved past).</returns>
    public bool MaybeDecreaseTo(long rejected, long matchHint)
    {
        if (State == ProgressState.Replicate)
        {
            if (rejected <= Match)
            {
                return false;
            }

            Next = Match + 1;
            return true;
        }

        if (Next - 1 != rejected)
        {
            return false;
        }

        Next = Math.Max(Math.Min(rejected, matchHint + 1), Match + 1);
        ProbeSent = false;
        return true;
    }

    private void ResetState()
    {
        ProbeSent = false;
        PendingSnapshot = 0;
        SnapshotAcked = 0;
        SnapshotAdvanced = false;
        Inflights.Reset();
    }

    public override string ToString() => $"{State} match={Match} next={Next} inflight={Inflights.Count}";
}

/// <summary>A bounded FIFO of the last indexes of in-flight appends to one follower (STYLE.md 2: a limit on the window).</summary>
internal sealed class Inflights
{
    private readonly long[] _lastIndexes;
    private int _start;

    public Inflights(int countMax)
    {
        Invariant.Assert(countMax > 0, "the in-flight window holds at least one append");
        _lastIndexes = new long[countMax];
    }

    public int Count { get; private set; }

    public bool IsFull => Count == _lastIndexes.Length;

    public void Add(long lastIndex)
    {
        Invariant.Assert(!IsFull, "inflights: no add past the window");
        if (Count > 0)
        {
            Invariant.Assert(lastIndex > _lastIndexes[(_start + Count - 1) % _lastIndexes.Length], "inflights: increasing");
        }

        _lastIndexes[(_start + Count) % _lastIndexes.Length] = lastIndex;
        Count++;
    }

    /// <summary>Frees every in-flight append whose last index is at or below <paramref name="index"/>.</summary>
    public void FreeThrough(long index)
    {
        while (Count > 0 && _lastIndexes[_start] <= index)
        {
            _start = (_start + 1) % _lastIndexes.Length;
            Count--;
        }
    }

    public void FreeFirst()
    {
        if (Count > 0)
        {
            _start = (_start + 1) % _lastIndexes.Length;
            Count--;
        }
    }

    public void Reset()
    {
        Count = 0;
        _start = 0;
    }
}
