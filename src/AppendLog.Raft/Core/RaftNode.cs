using AppendLog.Raft.Membership;
using AppendLog.Raft.Replication;
using AppendLog.Raft.Storage;

namespace AppendLog.Raft.Core;

/// <summary>
/// One Raft node as a deterministic, single-threaded state machine (etcd-raft style): no clocks, threads or I/O.
/// The host feeds it <see cref="Step"/> (a message from a peer), <see cref="Tick"/> (one tick of logical time)
/// and proposals, then drains a <see cref="Ready"/> batch, persists and sends what it says in the documented order,
/// and calls <see cref="Advance"/>. Randomness (election timeouts) comes only from the injected seeded source,
/// so the same inputs always give the same outputs.
/// <para>
/// Rules implemented: leader election with randomized timeouts (§5.2), pre-vote and check-quorum (thesis §9.6,
/// §6.2), log matching with conflict truncation and conflict-term hints (§5.3), commit only by counting replicas of
/// current-term entries (§5.4.2), leadership transfer (thesis §3.10), single-server membership changes that take
/// effect on append, with the leader first committing an entry of its term and allowing one pending change
/// (thesis §4.1 and its 2015 erratum), learners, snapshots with log compaction (§7), and per-follower
/// probe/replicate/snapshot progress with a bounded pipeline of appends.
/// </para>
/// </summary>
internal sealed partial class RaftNode
{
    private readonly RaftOptions _options;
    private readonly Random _random;
    private readonly IRaftLog _storage;
    private readonly RaftLogView _log;
    private readonly List<RaftMessage> _outbox = [];
    private readonly Dictionary<RaftNodeId, bool> _votes = [];
    private readonly Dictionary<RaftNodeId, Progress> _progress = [];

    /// <summary>Membership history above the snapshot: [0] is the snapshot's, the last is in force.</summary>
    private readonly List<(long Index, ClusterConfig Config)> _configs = [];

    private HardState _persistedHardState;
    private Ready? _outstandingReady;
    private HardState _outstandingHardState;
    private int _electionElapsed;
    private int _heartbeatElapsed;
    private int _randomizedElectionTimeout;

    /// <summary>Restarts (or first starts) a node from what its host persisted.</summary>
    public RaftNode(RaftNodeId id, RaftOptions options, IRaftLog log, HardState hardState, Random random)
    {
        Invariant.Assert(!id.IsNone, "a node has an id");
        options.Validate();
        Id = id;
        _options = options;
        _random = random;
        _storage = log;
        _log = new RaftLogView(log, hardState.Commit);
        Term = hardState.Term;
        Vote = hardState.Vote;
        _persistedHardState = new HardState(Term, Vote, _log.Committed);
        RebuildConfigs();
        BecomeFollower(Term, RaftNodeId.None);
    }

    public RaftNodeId Id { get; }

    public long Term { get; private set; }

    public RaftNodeId Vote { get; private set; }

    public RaftRole Role { get; private set; }

    /// <summary>The leader this node knows of in <see cref="Term"/>, or none.</summary>
    public RaftNodeId Leader { get; private set; }

    public RaftNodeId LeadTransferee { get; private set; }

    public long Committed => _log.Committed;

    /// <summary>The last index handed out to apply (Ready.CommittedEntries); a host that applies off its loop may be behind it.</summary>
    public long Applied => _log.Applied;

    /// <summary>The index the node's snapshot covers (a snapshot from the leader not yet installed included).</summary>
    public long SnapshotIndex => _log.Snapshot.Index;

    public long LastIndex => _log.LastIndex;

    public long FirstIndex => _log.FirstIndex;

    public ClusterConfig Config => _configs[^1].Config;

    /// <summary>Index of the newest membership change in the log (the snapshot's index when there is none after it).</summary>
    public long LastConfigIndex => _configs[^1].Index;

    internal IReadOnlyDictionary<RaftNodeId, Progress> Progress => _progress;

    private bool Promotable => Config.IsVoter(Id) && _log.PendingSnapshot is null;

    private HardState CurrentHardState => new(Term, Vote, _log.Committed);

    public bool TryGetTerm(long index, out long term) => _log.TryGetTerm(index, out term);

    /// <summary>Advances logical time by one tick.</summary>
    public void Tick()
    {
        AssertNoOutstandingReady();
        if (Role == RaftRole.Leader)
        {
            TickLeader();
        }
        else
        {
            TickElection();
        }
    }

    /// <summary>Proposes an application entry. Returns the index it will have if it commits.</summary>
    /// <exception cref="NotLeaderException">This node is not the leader, or is handing leadership over.</exception>
    public long Propose(ReadOnlyMemory<byte> data)
    {
        AssertNoOutstandingReady();
        ThrowIfNotAcceptingProposals();
        ArgumentOutOfRangeException.ThrowIfGreaterThan(data.Length, _options.MaximumBatchBytes - RaftEntry.OverheadBytes, nameof(data));
        var index = AppendAsLeader(RaftEntryKind.Normal, data);
        BroadcastAppend();
        return index;
    }

    /// <summary>
    /// Proposes a single-server membership change. Refused until this leader has committed an entry of its own term
    /// (the erratum to thesis §4.1) and while another change is uncommitted.
    /// </summary>
    public long ProposeConfigChange(ConfigChange change)
    {
        AssertNoOutstandingReady();
        ThrowIfNotAcceptingProposals();
        if (_log.TermAt(_log.Committed) != Term && (_options.TestingFaults & RaftTestingFaults.ConfigChangeBeforeOwnTermCommit) == 0)
        {
            throw new InvalidOperationException("The leader has not yet committed an entry of its own term.");
        }

        if (LastConfigIndex > _log.Committed)
        {
            throw new InvalidOperationException("Another membership change is still uncommitted.");
        }

        if (!Config.CanApply(change))
        {
            throw new ArgumentException($"{change} is not a single-server step from {Config}.", nameof(change));
        }

        var index = AppendAsLeader(RaftEntryKind.ConfigChange, change.Encode());
        BroadcastAppend();
        return index;
    }

    /// <summary>Hands leadership to <paramref name="target"/> once its log is up to date (thesis §3.10).</summary>
    public void TransferLeadership(RaftNodeId target)
    {
        AssertNoOutstandingReady();
        if (Role != RaftRole.Leader)
        {
            throw new NotLeaderException(Id, Leader);
        }

        if (target == Id || target == LeadTransferee)
        {
            return;
        }

        if (!Config.IsVoter(target))
        {
            throw new ArgumentException($"Node {target} is not a voter.", nameof(target));
        }

        LeadTransferee = target;
        _leaseRevoked = true;
        _electionElapsed = 0;
        if (_progress[target].Match == _log.LastIndex)
        {
            Send(new RaftMessage { Type = RaftMessageType.TimeoutNow, From = Id, To = target, Term = Term });
        }
        else
        {
            SendAppend(target, sendIfEmpty: true);
        }
    }

    /// <summary>
    /// Replaces the applied log prefix through <paramref name="index"/> with a snapshot of the state machine
    /// (<paramref name="data"/>) and drops those entries from the log.
    /// </summary>
    public void Compact(long index, SnapshotImage data)
    {
        AssertNoOutstandingReady();
        Invariant.Assert(index <= _log.Applied, "only applied entries are compacted");
        Invariant.Assert(index > _log.Snapshot.Index, "compaction moves forward");
        var config = ConfigAt(index);
        _storage.Compact(new RaftSnapshot(new SnapshotMetadata(index, _log.TermAt(index), config), data));
        while (_configs.Count > 1 && _configs[1].Index <= index)
        {
            _configs.RemoveAt(0);
        }

        _configs[0] = (index, config);
    }

    /// <summary>
    /// Back-pressure from a host that applies off its loop: committed entries are handed out (Ready.CommittedEntries)
    /// only through <paramref name="index"/>. The host raises it as its state machine catches up, so committed but
    /// unapplied entries stay bounded however slow the state machine is; the node meanwhile keeps replicating,
    /// committing, voting and sending heartbeats.
    /// </summary>
    public void LimitApplyTo(long index) => _log.ApplyLimit = index;

    /// <summary>
    /// The host loaded the entries its log asked for (<see cref="IRaftLog.NeedsFetch"/>): applying resumes, and a
    /// leader retries the appends that stopped at entries whose payloads were not in memory.
    /// </summary>
    public void EntriesFetched()
    {
        AssertNoOutstandingReady();
        _log.EntriesFetched();
        if (Role != RaftRole.Leader)
        {
            return;
        }

        foreach (var id in _progress.Keys.ToList())
        {
            // Fill the follower's window (each send either pauses the progress or stops at the end of the log or
            // at the next entry not in memory), so one fetch serves as many appends as it loaded.
            while (id != Id && SendAppend(id, sendIfEmpty: false))
            {
            }
        }
    }

    /// <summary>Whether <see cref="GetReady"/> has anything to hand out.</summary>
    public bool HasReady =>
        _outstandingReady is null
        && (CurrentHardState != _persistedHardState
            || _log.Unstable.Count > 0
            || _log.PendingSnapshot is not null
            || _outbox.Count > 0
            || _log.HasEntriesToApply
            || _readsConfirmed.Count > 0
            || _readsFailed.Count > 0);

    /// <summary>Takes the next batch of work. The host must process it (see <see cref="Ready"/>) and then <see cref="Advance"/>.</summary>
    public Ready GetReady()
    {
        AssertNoOutstandingReady();
        var hardState = CurrentHardState;
        HardState? toPersist = null;
        if (hardState != _persistedHardState)
        {
            toPersist = (_options.TestingFaults & RaftTestingFaults.SkipVotePersistence) != 0
                ? hardState with { Vote = RaftNodeId.None }
                : hardState;
        }

        var messages = new List<RaftMessage>();
        var messagesBeforeSync = new List<RaftMessage>();
        foreach (var message in _outbox)
        {
            (MaySendBeforeSync(message) ? messagesBeforeSync : messages).Add(message);
        }

        var ready = new Ready
        {
            MayAdvanceBeforeDurable = Role == RaftRole.Leader
                && _log.PendingSnapshot is null
                && messages.Count == 0
                && (toPersist is null || toPersist.Value with { Commit = _persistedHardState.Commit } == _persistedHardState),
            HardState = toPersist,
            Snapshot = _log.PendingSnapshot,
            Entries = [.. _log.Unstable],
            Messages = messages,
            MessagesBeforeSync = messagesBeforeSync,
            CommittedEntries = _log.NextCommittedEntries(_options.MaximumBatchBytes),
            Role = Role,
            Leader = Leader,
            ReadStates = [.. _readsConfirmed],
            ReadsFailed = [.. _readsFailed],
        };
        _outbox.Clear();
        _readsConfirmed.Clear();
        _readsFailed.Clear();
        _readRoundUnsent = false;
        _outstandingReady = ready;
        _outstandingHardState = hardState;
        return ready;
    }

    /// <summary>The host has persisted, sent and applied <paramref name="ready"/> as its contract says.</summary>
    public void Advance(Ready ready) => AdvanceCore(ready, durable: true);

    /// <summary>
    /// The host handed a <see cref="Ready.MayAdvanceBeforeDurable"/> batch's entries to its log (not yet durable), sent
    /// and applied it. The leader's own acknowledgement waits for <see cref="LocalDurable"/>.
    /// </summary>
    public void AdvanceBeforeDurable(Ready ready)
    {
        Invariant.Assert(ready.MayAdvanceBeforeDurable, "only a batch that allows it is advanced before it is durable");
        AdvanceCore(ready, durable: false);
    }

    /// <summary>The host's log made more of the written entries durable (<see cref="IRaftLog.MarkDurable"/>).</summary>
    public void LocalDurable()
    {
        AssertNoOutstandingReady();
        if (Role == RaftRole.Leader && _progress.TryGetValue(Id, out var self) && self.MaybeUpdate(SelfDurableIndex) && MaybeCommit())
        {
            BroadcastAppend();
            StepDownIfRemoved();
        }
    }

    /// <summary>The last entry of this node's log that is durable and will not be rewritten.</summary>
    private long SelfDurableIndex => (_options.TestingFaults & RaftTestingFaults.CountOwnWriteBeforeDurable) != 0
        ? _log.StableLastIndex
        : Math.Min(_log.StableLastIndex, _storage.DurableIndex);

    private void AdvanceCore(Ready ready, bool durable)
    {
        Invariant.Assert(ReferenceEquals(ready, _outstandingReady), "Advance acknowledges the outstanding Ready");
        // A batch with nothing to persist is not synced (RaftHost skips the sync), so a leader's earlier pipelined
        // writes may still be in flight: only a synced batch proves the whole log durable.
        _log.StableTo(ready.Snapshot, ready.Entries.Count, durable && ready.MustSync);
        if (ready.HardState is not null)
        {
            _persistedHardState = _outstandingHardState;
        }

        if (ready.CommittedEntries.Count > 0)
        {
            _log.AppliedTo(ready.CommittedEntries[^1].Index);
        }

        _outstandingReady = null;
        if (Role == RaftRole.Leader && _progress.TryGetValue(Id, out var self))
        {
            // The leader's own acknowledgement counts only once its entries are durable.
            self.MaybeUpdate(SelfDurableIndex);
            if (MaybeCommit())
            {
                BroadcastAppend();
                StepDownIfRemoved();
            }
        }
    }

    /// <summary>Leader replication in a term whose vote is already durable depends on nothing in this batch.</summary>
    private bool MaySendBeforeSync(RaftMessage message) =>
        message.Type is RaftMessageType.Append or RaftMessageType.Heartbeat or RaftMessageType.Snapshot or RaftMessageType.TimeoutNow
        && message.Term <= _persistedHardState.Term;

    private void AssertNoOutstandingReady() =>
        Invariant.Assert(_outstandingReady is null, "no Step, Tick or proposal between GetReady and Advance");

    private void ThrowIfNotAcceptingProposals()
    {
        if (Role != RaftRole.Leader)
        {
            throw new NotLeaderException(Id, Leader);
        }

        if (!LeadTransferee.IsNone)
        {
            throw new NotLeaderException(Id, LeadTransferee);
        }
    }

    private void Send(RaftMessage message)
    {
        Invariant.Assert(message.To != Id, "a node never messages itself");
        _outbox.Add(message);
    }

    private void ResetRandomizedElectionTimeout() =>
        _randomizedElectionTimeout = _random.Next(_options.ElectionTicksMin, _options.ElectionTicksMax);

    private void Reset(long term)
    {
        if (term != Term)
        {
            Invariant.Assert(term > Term, "the term never goes backwards");
            Term = term;
            Vote = RaftNodeId.None;
        }

        Leader = RaftNodeId.None;
        _electionElapsed = 0;
        _heartbeatElapsed = 0;
        ResetRandomizedElectionTimeout();
        LeadTransferee = RaftNodeId.None;
        _votes.Clear();
        _progress.Clear();
        _outranksACandidate = false;
        _tookOfficeReplaying = false;
        _preVoteInLease = null;
        FailOutstandingReads();
    }

    private void BecomeFollower(long term, RaftNodeId leader)
    {
        Reset(term);
        Role = RaftRole.Follower;
        Leader = leader;
    }

    private void BecomePreCandidate()
    {
        Invariant.Assert(Role != RaftRole.Leader, "a leader does not pre-campaign");
        Role = RaftRole.PreCandidate;
        Leader = RaftNodeId.None;
        _votes.Clear();
        ResetRandomizedElectionTimeout();
    }

    private void BecomeCandidate()
    {
        Invariant.Assert(Role != RaftRole.Leader, "a leader does not campaign");
        Reset(Term + 1);
        Vote = Id;
        Role = RaftRole.Candidate;
    }

    private void BecomeLeader()
    {
        Invariant.Assert(Role == RaftRole.Candidate, "only a candidate becomes leader");
        Reset(Term);
        Role = RaftRole.Leader;
        Leader = Id;
        foreach (var member in Config.Members.Append(Id).Distinct())
        {
            AddProgress(member);
        }

        _progress[Id].MaybeUpdate(SelfDurableIndex);
        _tookOfficeReplaying = IsReplaying;

        // A no-op of the new term: committing it commits every earlier entry (§5.4.2, §8), and it
        // unlocks membership changes (thesis §4.1 erratum).
        AppendAsLeader(RaftEntryKind.Normal, ReadOnlyMemory<byte>.Empty);
    }

    private void AddProgress(RaftNodeId member)
    {
        _progress[member] = new Progress(_log.LastIndex + 1, _options.MaximumInflightAppends) { RecentActive = true };
    }

    private long AppendAsLeader(RaftEntryKind kind, ReadOnlyMemory<byte> data)
    {
        var entry = new RaftEntry(Term, _log.LastIndex + 1, kind, data);
        _log.TruncateAndAppend([entry]);
        OnEntriesAppended([entry]);
        return entry.Index;
    }

    private void RebuildConfigs()
    {
        _configs.Clear();
        _configs.Add((_storage.Snapshot.Index, _storage.Snapshot.Metadata.Config));
        if (_storage.LastIndex >= _storage.FirstIndex)
        {
            var entries = new List<RaftEntry>();
            _storage.ReadConfigChanges(entries);
            OnEntriesAppended(entries);
        }
    }

    /// <summary>Membership changes take effect as soon as they are in the log (thesis §4.1).</summary>
    private void OnEntriesAppended(IReadOnlyList<RaftEntry> entries)
    {
        var changed = false;
        foreach (var entry in entries)
        {
            if (entry.Kind == RaftEntryKind.ConfigChange)
            {
                Invariant.Assert(entry.Index > _configs[^1].Index, "membership changes are appended in order");
                _configs.Add((entry.Index, Config.Apply(ConfigChange.Decode(entry.Data.Span))));
                changed = true;
            }
        }

        if (changed && Role == RaftRole.Leader)
        {
            UpdateProgressSet();
        }
    }

    /// <summary>A conflicting suffix from <paramref name="fromIndex"/> is being replaced: its membership changes are undone.</summary>
    private void TruncateConfigs(long fromIndex)
    {
        while (_configs.Count > 1 && _configs[^1].Index >= fromIndex)
        {
            _configs.RemoveAt(_configs.Count - 1);
        }

        Invariant.Assert(_configs[^1].Index < fromIndex, "the snapshot's membership is never truncated");
    }

    private ClusterConfig ConfigAt(long index)
    {
        for (var i = _configs.Count - 1; i >= 0; i--)
        {
            if (_configs[i].Index <= index)
            {
                return _configs[i].Config;
            }
        }

        throw new RaftInvariantException($"the membership at index {index} is known");
    }

    private void UpdateProgressSet()
    {
        foreach (var member in Config.Members)
        {
            if (!_progress.ContainsKey(member))
            {
                AddProgress(member);
            }
        }

        foreach (var id in _progress.Keys.ToList())
        {
            if (id != Id && !Config.IsMember(id))
            {
                _progress.Remove(id);
            }
        }

        if (!LeadTransferee.IsNone && !Config.IsVoter(LeadTransferee))
        {
            LeadTransferee = RaftNodeId.None;
        }
    }

    /// <summary>A leader that removed itself steps down once the change is committed (thesis §4.2.2).</summary>
    private void StepDownIfRemoved()
    {
        if (Role == RaftRole.Leader && !Config.IsVoter(Id) && _log.Committed >= LastConfigIndex)
        {
            BecomeFollower(Term, RaftNodeId.None);
        }
    }
}
