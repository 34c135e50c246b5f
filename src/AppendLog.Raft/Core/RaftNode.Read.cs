namespace AppendLog.Raft.Core;

/// <summary>
/// Linearizable reads by ReadIndex (thesis §6.4), without writing to the log:
/// <list type="number">
/// <item>The leader takes its commit index as the read's index. That index covers every entry committed anywhere
///   before the read arrived only once the leader has committed an entry of its own term (before that, entries of
///   earlier terms may be committed that its commit index does not show yet), so a read that arrives earlier waits
///   until that first commit and takes the commit index then.</item>
/// <item>The leader confirms it is still the leader: it sends a heartbeat round and waits until a quorum of voters
///   (itself included) answered a round sent after the read was registered. A leader deposed in a minority partition
///   never gets that quorum (the majority moved to a higher term), so its read never completes here; it fails when the
///   leader steps down (check-quorum, a higher term, removal).</item>
/// <item>The host serves the read once it has applied through the read's index (<see cref="Ready.ReadStates"/>).</item>
/// </list>
/// Rounds are numbered, and a heartbeat and its answer carry the number (in <see cref="RaftMessage.Index"/>, unused by
/// heartbeats otherwise). A round is confirmed when a quorum answered it or a later one; reads registered before a
/// round's heartbeats were handed out share that round, so a burst of reads costs one heartbeat per follower.
/// <para>
/// Followers, candidates and a leader handing over leadership refuse reads with <see cref="NotLeaderException"/>: the
/// client retries on the leader it names. Forwarding a read to the leader would save the client a round trip but add a
/// message type and failure cases to the protocol; refusing keeps the rule simple and the outcome certain.
/// </para>
/// </summary>
internal sealed partial class RaftNode
{
    /// <summary>Reads waiting for a quorum to confirm their round, oldest (lowest round) first.</summary>
    private readonly List<(long RequestId, long Index, long Round)> _readsPending = [];

    /// <summary>Reads that arrived before this leader committed an entry of its term.</summary>
    private readonly List<long> _readsAwaitingTermCommit = [];

    /// <summary>Reads confirmed since the last Ready, and reads failed since then.</summary>
    private readonly List<ReadState> _readsConfirmed = [];
    private readonly List<long> _readsFailed = [];

    /// <summary>The highest round each voter answered in this term.</summary>
    private readonly Dictionary<RaftNodeId, long> _readRoundAcked = [];

    /// <summary>The last round started (monotonic over the node's life, so a stale answer never counts for a newer round).</summary>
    private long _readRound;

    /// <summary>Whether <see cref="_readRound"/>'s heartbeats are still in the outbox (not yet handed out in a Ready).</summary>
    private bool _readRoundUnsent;

    /// <summary>Lease reads: ticks this node has led in its term (the leader's clock), each round's first send tick
    /// (rounds not yet confirmed), and the send tick of the latest round a quorum confirmed (null: no lease).</summary>
    private long _leaderTicks;
    private readonly Queue<(long Round, long Tick)> _leaseRounds = new();
    private long? _leaseStartTick;

    /// <summary>A leadership transfer was started in this term: the target's election ignores leases, so none is trusted.</summary>
    private bool _leaseRevoked;

    /// <summary>Ticks since this node started (capped): with lease reads it votes for no one until an election timeout has
    /// passed, so a restart cannot cut short a lease it helped grant before it crashed.</summary>
    private int _ticksSinceStart;

    /// <summary>Reads registered and not yet confirmed or failed (for tests and bounds).</summary>
    public int ReadsOutstanding => _readsPending.Count + _readsAwaitingTermCommit.Count;

    /// <summary>
    /// Starts a linearizable read identified by <paramref name="requestId"/> (chosen by the host, unique among its
    /// outstanding reads). The outcome comes in a later <see cref="Ready"/>: in <see cref="Ready.ReadStates"/> with the
    /// index to apply through before serving, or in <see cref="Ready.ReadsFailed"/> if leadership is lost first.
    /// </summary>
    /// <exception cref="NotLeaderException">This node is not the leader, or is handing leadership over.</exception>
    public void ReadIndex(long requestId)
    {
        AssertNoOutstandingReady();
        ThrowIfNotAcceptingProposals();
        if (_log.TermAt(_log.Committed) != Term)
        {
            _readsAwaitingTermCommit.Add(requestId);
            return;
        }

        RegisterRead(requestId);
    }

    private void RegisterRead(long requestId)
    {
        Invariant.Assert(Role == RaftRole.Leader, "only a leader registers reads");
        Invariant.Assert(_log.TermAt(_log.Committed) == Term, "a read index is taken only after a commit of the leader's term");
        if ((_options.TestingFaults & RaftTestingFaults.ServeReadsWithoutQuorum) != 0 || IsSoleVoter() || InReadLease())
        {
            _readsConfirmed.Add(new ReadState(requestId, _log.Committed));
            return;
        }

        if (!_readRoundUnsent)
        {
            _readRound++;
            _readRoundUnsent = true;
            _leaseRounds.Enqueue((_readRound, _leaderTicks));
            BroadcastHeartbeats();
        }

        _readsPending.Add((requestId, _log.Committed, _readRound));
    }

    private bool IsSoleVoter() => Config.Voters.Count == 1 && Config.IsVoter(Id);

    /// <summary>Lease reads: a quorum answered a heartbeat this leader sent at most <see cref="RaftOptions.LeaseTicks"/> ticks ago.</summary>
    private bool InReadLease() =>
        _options.LeaseReads && !_leaseRevoked && LeadTransferee.IsNone
        && _leaseStartTick is { } start && _leaderTicks - start <= _options.LeaseTicks;

    /// <summary>A tick of the leader's clock; with lease reads every heartbeat broadcast starts a round, renewing the lease.</summary>
    private void TickReadLease()
    {
        _leaderTicks++;
        if (_options.LeaseReads && !_readRoundUnsent)
        {
            _readRound++;
            _readRoundUnsent = true;
            _leaseRounds.Enqueue((_readRound, _leaderTicks));
        }
    }

    /// <summary>Sends every follower a heartbeat carrying the current read round.</summary>
    private void BroadcastHeartbeats()
    {
        foreach (var (id, pr) in _progress)
        {
            if (id != Id)
            {
                Send(new RaftMessage
                {
                    Type = RaftMessageType.Heartbeat,
                    From = Id,
                    To = id,
                    Term = Term,
                    Index = _readRound,
                    Commit = Math.Min(pr.Match, _log.Committed),
                });
            }
        }
    }

    /// <summary>A follower answered a heartbeat of <paramref name="round"/> in this term.</summary>
    private void OnReadRoundAcked(RaftNodeId from, long round)
    {
        if ((_readsPending.Count == 0 && !_options.LeaseReads) || !Config.IsVoter(from))
        {
            return;
        }

        Invariant.Assert(round <= _readRound, "a follower answers only rounds this leader started");
        if (_readRoundAcked.TryGetValue(from, out var acked) && acked >= round)
        {
            return;
        }

        _readRoundAcked[from] = round;
        var confirmed = QuorumReadRound();
        while (_leaseRounds.TryPeek(out var lease) && lease.Round <= confirmed)
        {
            _leaseRounds.Dequeue();
            _leaseStartTick = lease.Tick;
        }

        var done = 0;
        while (done < _readsPending.Count && _readsPending[done].Round <= confirmed)
        {
            var (requestId, index, _) = _readsPending[done];
            _readsConfirmed.Add(new ReadState(requestId, index));
            done++;
        }

        _readsPending.RemoveRange(0, done);
    }

    /// <summary>The highest round answered by a quorum of voters (the leader answers every round it starts).</summary>
    private long QuorumReadRound()
    {
        var rounds = new List<long>(Config.Voters.Count);
        foreach (var voter in Config.Voters)
        {
            rounds.Add(voter == Id ? _readRound : _readRoundAcked.GetValueOrDefault(voter));
        }

        rounds.Sort();
        return rounds[rounds.Count - Config.Quorum];
    }

    /// <summary>The leader committed an entry of its term: reads that waited for it take their index now.</summary>
    private void ReleaseReadsAwaitingTermCommit()
    {
        if (_readsAwaitingTermCommit.Count == 0 || Role != RaftRole.Leader || _log.TermAt(_log.Committed) != Term)
        {
            return;
        }

        foreach (var requestId in _readsAwaitingTermCommit)
        {
            RegisterRead(requestId);
        }

        _readsAwaitingTermCommit.Clear();
    }

    /// <summary>Leadership ended (or a new term began): every read not yet confirmed fails.</summary>
    private void FailOutstandingReads()
    {
        foreach (var (requestId, _, _) in _readsPending)
        {
            _readsFailed.Add(requestId);
        }

        _readsFailed.AddRange(_readsAwaitingTermCommit);
        _readsPending.Clear();
        _readsAwaitingTermCommit.Clear();
        _readRoundAcked.Clear();
        _leaseRounds.Clear();
        _leaseStartTick = null;
        _leaderTicks = 0;
        _leaseRevoked = false;
    }
}

/// <summary>A confirmed read: serve it once the state machine has applied through <paramref name="Index"/>.</summary>
internal readonly record struct ReadState(long RequestId, long Index);
