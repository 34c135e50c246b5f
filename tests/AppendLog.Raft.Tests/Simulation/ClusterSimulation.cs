using System.Buffers.Binary;
using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Tests.Harness;

namespace AppendLog.Raft.Tests.Simulation;

/// <summary>
/// A deterministic discrete-event simulation of one Raft group. One seed drives everything: the virtual clock,
/// each node's ticks, message delay, loss, duplication and reordering, partitions and one-way link cuts, crashes (a crash loses the
/// node's unsynced log writes and unsynced hard state, as a power cut would) and restarts, client proposals,
/// leadership transfers, membership changes and log compaction. Hosts follow the Ready contract with a random sync
/// latency: while a Ready is being synced, the node's inputs wait in its inbox.
/// <para>
/// Fault model → expected outcome: message loss/duplication/reordering, partitions, crashes of any number of nodes
/// → safety always holds (checked after every event by <see cref="SafetyChecker"/>); after the faults stop, a
/// leader emerges and every member applies every acknowledged entry (liveness, checked at the end).
/// </para>
/// <para>
/// Production faults (<see cref="SimulationOptions.ProductionFaults"/>), with the same expected outcome: EIO on a sync
/// → the host stops before sending anything of that batch (fail-stop, as RaftHost) and restarts later over any prefix of
/// its unsynced entries; a crash → all, none or a prefix of the unsynced entries survive (torn write), the unsynced hard
/// state never; a process pause → no ticks, inputs and storage completions queue, and on resume the ticks are caught up
/// by the clock (at most an election timeout, as RaftHost) before a read is judged; skew → clock rates differ by up to
/// ±15 % (within the leases' drift bound in lease seeds).
/// </para>
/// </summary>
internal sealed class ClusterSimulation
{
    private enum EventKind
    {
        Tick,
        Deliver,
        SyncDone,

        /// <summary>A pipelined leader write became durable.</summary>
        Durable,
        Propose,
        Chaos,
        Restart,
        Heal,

        /// <summary>A paused process runs again.</summary>
        Resume,
    }

    private sealed record SimEvent(EventKind Kind, RaftNodeId Node, RaftMessage? Message = null, int Incarnation = 0);

    /// <summary>Queued inputs handled before the next Ready, as RaftHost's bound.</summary>
    private const int InputsPerReadyMax = 1024;

    private readonly int _seed;
    private readonly SimulationOptions _options;
    private readonly Random _random;
    private readonly PriorityQueue<SimEvent, (long Time, long Sequence)> _events = new();
    private readonly Dictionary<RaftNodeId, RaftTestHost> _hosts = [];
    private readonly Dictionary<RaftNodeId, Queue<SimEvent>> _inbox = [];
    private readonly Dictionary<RaftNodeId, int> _incarnation = [];
    private readonly Dictionary<RaftNodeId, int> _partitionGroup = [];

    /// <summary>Directed links that drop everything (asymmetric faults: A hears B, B does not hear A).</summary>
    private readonly HashSet<(RaftNodeId From, RaftNodeId To)> _cutLinks = [];
    private readonly Dictionary<ulong, (RaftNodeId Node, long Index)> _proposals = [];

    /// <summary>Reads issued and not yet served or failed: the node asked, the highest index applied anywhere then, and the
    /// register read with the point in <see cref="_historyClock"/> it was invoked at.</summary>
    private readonly Dictionary<long, (RaftNodeId Node, long AppliedAnywhereAtStart, int Key, long Invoked)> _reads = [];
    private long _readNext = 1;

    /// <summary>
    /// The key-value history for the linearizability checker: proposal id → key, a write of the id's value, each key's
    /// operations, and, per key, the writes in committed order (index, value) from which a read's value is computed.
    /// Invocations and returns are numbered by <see cref="_historyClock"/> in the order the simulation processes them.
    /// </summary>
    private readonly Dictionary<ulong, (int Key, int Op)> _writeOps = [];
    private readonly List<RegisterOp>[] _history = [.. Enumerable.Range(0, KeysCount).Select(_ => new List<RegisterOp>())];
    private readonly List<(long Index, long Value)>[] _committedWrites = [.. Enumerable.Range(0, KeysCount).Select(_ => new List<(long, long)>())];
    private long _historyClock;
    private long _firstAppliedMax;

    /// <summary>Registers of the key-value history: proposal id modulo this is the key written.</summary>
    private const int KeysCount = 4;
    private readonly List<RaftNodeId> _ids;
    private readonly RaftOptions _raftOptions;

    /// <summary>Snapshot chunks sent past the first, by (from, to, term, snapshot index, offset): a repeat is a resumption.</summary>
    private readonly HashSet<(RaftNodeId, RaftNodeId, long, long, long)> _snapshotChunksSent = [];
    /// <summary>Each node's clock rate (1: real time) and its fractional ticks not yet delivered.</summary>
    private readonly Dictionary<RaftNodeId, double> _tickRate = [];
    private readonly Dictionary<RaftNodeId, double> _tickCredit = [];
    /// <summary>Paused processes: the inputs that reached them meanwhile (in order), and the ticks their clocks owe them.</summary>
    private readonly HashSet<RaftNodeId> _paused = [];
    private readonly Dictionary<RaftNodeId, List<SimEvent>> _pausedInputs = [];
    private readonly Dictionary<RaftNodeId, double> _missedTicks = [];
    private long _sequence;
    private ulong _proposalNext = 1;
    private bool _chaos = true;

    public ClusterSimulation(int seed, SimulationOptions options)
    {
        _seed = seed;
        _options = options;
        _random = new Random(seed);
        var voters = _random.Next(2) == 0 ? 3 : 5;
        var spares = options.MembershipChanges ? 1 : 0;
        // Sometimes one entry per append, so an old-term entry can travel without the leader's no-op (Figure 8).
        var batchBytes = _random.Next(3) == 0 ? 40 : 256;
        var preVote = _random.Next(4) != 0;
        var checkQuorum = _random.Next(4) != 0;
        _raftOptions = new RaftOptions
        {
            TickInterval = TimeSpan.FromMilliseconds(10),
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
            ElectionTimeoutMinimum = TimeSpan.FromMilliseconds(100),
            ElectionTimeoutMaximum = TimeSpan.FromMilliseconds(200),
            MaximumInflightAppends = 4,
            MaximumBatchBytes = batchBytes,
            PreVote = preVote,
            CheckQuorum = checkQuorum,

            // In a third of the seeds with check-quorum, reads are served from leases (chosen from the seed, not drawn).
            // Every node ticks every 10 ms from its own phase: clocks agree in rate, which is what leases assume.
            LeaseReads = options.Reads && checkQuorum && (seed % 3 == 2 || options.LeaseReadsEverywhere),
            // In a third of the seeds a member with more than one entry left to apply defers its campaign (liveness must
            // not suffer). Chosen from the seed, not drawn: the runs of every seed stay what they were.
            CampaignApplyLagEntries = seed % 3 == 0 ? 1 : 1024,
            TestingFaults = options.TestingFaults,
            SnapshotChunkBytes = options.SnapshotChunkBytes,
        };
        _ids = [.. Enumerable.Range(1, voters + spares).Select(i => new RaftNodeId((ulong)i))];
        var bootstrap = new ClusterConfig(_ids.Take(voters), []);
        foreach (var id in _ids)
        {
            var host = new RaftTestHost(id, bootstrap, _raftOptions, seed, options.ResidentEntries)
            {
                PipelineLeaderWrites = options.PipelineLeaderWrites,
                CompactAfterEntries = options.CompactAfterEntries,
                OnApplied = OnApplied,
                OnSnapshotRestored = Checker.ObserveSnapshotRestored,
                OnReadServed = OnReadServed,
                OnReadFailed = (_, requestId) => { _reads.Remove(requestId); Stats.ReadsFailed++; },
            };
            _hosts[id] = host;
            _inbox[id] = new Queue<SimEvent>();
            _incarnation[id] = 0;
            _tickCredit[id] = 0;
            _tickRate[id] = 1;
            _pausedInputs[id] = [];
            _missedTicks[id] = 0;
            Schedule(_random.Next(10), new SimEvent(EventKind.Tick, id));
        }

        if (_raftOptions.LeaseReads)
        {
            // Lease seeds run skewed clocks: each node's rate is drawn in [1 − s/2, 1 + s/2]. By default s keeps every pair
            // within the drift the leases assume ((1 + s/2) / (1 − s/2) − 1 below it).
            var skew = _options.ClockSkew ?? _raftOptions.MaximumClockDrift * 0.9;
            foreach (var id in _ids)
            {
                _tickRate[id] = 1 + ((_random.NextDouble() - 0.5) * skew);
            }
        }
        else if (_options.SkewAllClocks)
        {
            // Without leases, skew costs only liveness (a fast clock campaigns early): rates within ±15 %.
            foreach (var id in _ids)
            {
                _tickRate[id] = 1 + ((_random.NextDouble() - 0.5) * 0.3);
            }
        }

        Schedule(_options.ChaosIntervalMs, new SimEvent(EventKind.Chaos, RaftNodeId.None));
        Schedule(_options.ProposalIntervalMs, new SimEvent(EventKind.Propose, RaftNodeId.None));
    }

    public SafetyChecker Checker { get; } = new();

    public SimulationStats Stats { get; } = new();

    public long NowMs { get; private set; }

    /// <summary>Runs the faulty phase, then the fault-free convergence phase. Returns the violations found.</summary>
    public IReadOnlyList<string> Run()
    {
        for (var step = 0; step < _options.StepsMax && Checker.Violations.Count == 0; step++)
        {
            ProcessNext();
            if (step % 256 == 0)
            {
                CheckLogs();
            }
        }

        if (Checker.Violations.Count == 0)
        {
            Converge();
        }

        if (Checker.Violations.Count == 0)
        {
            CheckLogs();
            Checker.CheckAcknowledgedApplied();
        }

        if (Checker.Violations.Count == 0 && _options.Reads)
        {
            CheckLinearizable();
        }

        Stats.SimulatedMs = NowMs;
        Stats.Acknowledged = Checker.Acknowledged.Count;
        Stats.Leaders = Checker.LeadersElected;
        Stats.Fetches = _hosts.Values.Sum(h => h.Log.FetchCount);
        return Checker.Violations;
    }

    /// <summary>The key-value history (writes are proposals, reads are served linearizable reads) is linearizable, key by key.</summary>
    private void CheckLinearizable()
    {
        for (var key = 0; key < KeysCount; key++)
        {
            Stats.HistoryOperations += _history[key].Count;
            if (LinearizabilityChecker.CheckUniqueWrites(_history[key], initial: 0) is { } failure)
            {
                Checker.Fail($"linearizability: register {key}: {failure}");
            }
        }
    }

    private void Converge()
    {
        _chaos = false;
        _partitionGroup.Clear();
        _cutLinks.Clear();
        foreach (var id in _ids)
        {
            if (!_hosts[id].IsUp)
            {
                RestartNode(id);
            }
        }

        var deadline = NowMs + _options.ConvergeMsMax;
        var nextCheck = NowMs;
        while (NowMs < deadline && Checker.Violations.Count == 0)
        {
            ProcessNext();
            if (NowMs >= nextCheck)
            {
                nextCheck = NowMs + 100;
                if (Converged())
                {
                    return;
                }
            }
        }

        if (Checker.Violations.Count == 0)
        {
            var state = string.Join("; ", _hosts.Values.Select(h =>
                $"{h.Id}: {h.N.Role} t{h.N.Term} commit {h.N.Committed} applied {h.AppliedIndex} last {h.N.LastIndex} durable {h.Log.DurableIndex} syncing {h.InFlight is not null} inbox {_inbox[h.Id].Count} {h.N.Config}"
                + (h.N.Role == RaftRole.Leader ? " progress " + string.Join(",", h.N.Progress.Select(p => $"{p.Key}:{p.Value}")) : "")));
            Checker.Fail($"liveness: no convergence within {_options.ConvergeMsMax} ms after faults stopped " +
                         $"(acknowledged through {Checker.AcknowledgedIndexMax}); {state}");
        }
    }

    private bool Converged()
    {
        // A removed leader without check-quorum may believe it leads an old term forever: take the newest term.
        var leader = _hosts.Values.Where(h => h.IsUp && h.N.Role == RaftRole.Leader).MaxBy(h => h.N.Term);
        if (leader is null)
        {
            return false;
        }

        var target = Math.Max(Checker.AcknowledgedIndexMax, leader.N.Committed);
        return leader.N.Config.Members.All(id => _hosts[id].AppliedIndex >= target);
    }

    private void CheckLogs()
    {
        for (var i = 0; i < _ids.Count; i++)
        {
            for (var j = i + 1; j < _ids.Count; j++)
            {
                Checker.CheckLogMatching(_hosts[_ids[i]], _hosts[_ids[j]]);
            }
        }
    }

    private void Schedule(long delayMs, SimEvent e) => _events.Enqueue(e, (NowMs + delayMs, _sequence++));

    private void ProcessNext()
    {
        if (!_events.TryDequeue(out var e, out var at))
        {
            throw new InvalidOperationException("the simulation ran out of events");
        }

        NowMs = at.Time;
        Stats.Events++;
        switch (e.Kind)
        {
            case EventKind.Tick:
                Schedule(10, e);
                if (_paused.Contains(e.Node))
                {
                    // The timer does not fire in a paused process; the host catches the time up when it runs again.
                    _missedTicks[e.Node] += _tickRate[e.Node];
                    break;
                }

                Input(e);
                break;
            case EventKind.Deliver:
                if (!Connected(e.Message!.From, e.Message.To))
                {
                    Stats.MessagesDropped++;
                    break;
                }

                if (_paused.Contains(e.Node))
                {
                    _pausedInputs[e.Node].Add(e);
                    break;
                }

                Input(e);
                break;
            case EventKind.SyncDone:
            case EventKind.Durable:
                if (e.Incarnation == _incarnation[e.Node] && _paused.Contains(e.Node))
                {
                    _pausedInputs[e.Node].Add(e);
                    break;
                }

                OnStorageDone(e);
                break;
            case EventKind.Resume:
                if (e.Incarnation == _incarnation[e.Node] && _paused.Remove(e.Node))
                {
                    Resume(e.Node);
                }

                break;
            case EventKind.Propose:
                Schedule(_random.Next(1, (2 * _options.ProposalIntervalMs) + 1), e);
                if (_chaos)
                {
                    Propose();
                }

                break;
            case EventKind.Chaos:
                Schedule(_random.Next(1, (2 * _options.ChaosIntervalMs) + 1), e);
                if (_chaos)
                {
                    Chaos();
                }

                break;
            case EventKind.Restart:
                if (!_hosts[e.Node].IsUp && e.Incarnation == _incarnation[e.Node])
                {
                    RestartNode(e.Node);
                }

                break;
            case EventKind.Heal:
                _partitionGroup.Clear();
                _cutLinks.Clear();
                break;
        }
    }

    /// <summary>A sync, or a pipelined write's durability, completed (or failed with EIO).</summary>
    private void OnStorageDone(SimEvent e)
    {
        if (e.Incarnation != _incarnation[e.Node])
        {
            return;
        }

        if (e.Kind == EventKind.SyncDone)
        {
            CompleteSync(e.Node);
            return;
        }

        if (!_hosts[e.Node].IsUp)
        {
            return;
        }

        if (SyncFails() && !_options.HostIgnoresSyncFailure)
        {
            FailStop(e.Node);
            return;
        }

        try
        {
            _hosts[e.Node].CompleteDurable();
        }
        catch (RaftInvariantException ex)
        {
            Checker.Fail($"node {e.Node} at {NowMs} ms: {ex.Message}");
        }

        BeginReady(_hosts[e.Node]);
    }

    /// <summary>Draws whether this sync fails with EIO (no draw at all when EIO is off).</summary>
    private bool SyncFails()
    {
        if (_options.SyncFailureProbability <= 0 || _random.NextDouble() >= _options.SyncFailureProbability)
        {
            return false;
        }

        Stats.SyncFailures++;
        return true;
    }

    /// <summary>
    /// EIO: the host stops (RaftHost's loop ends with the error; ReplicatedLog reports the fault and closes its
    /// connections). What the failed write left on disk is unknown: any prefix of the unsynced entries. An operator
    /// restarts the member later, and it recovers from its disk.
    /// </summary>
    private void FailStop(RaftNodeId id)
    {
        Stats.FailStops++;
        var unsynced = (int)(_hosts[id].Log.LastIndex - _hosts[id].Log.DurableIndex);
        CrashNode(id, logWriteSurvives: false, unsyncedKept: unsynced > 0 ? _random.Next(0, unsynced + 1) : 0);
    }

    /// <summary>A power cut or a fail-stop: the node loses what its disk did not keep, and restarts later.</summary>
    private void CrashNode(RaftNodeId victim, bool logWriteSurvives, int unsyncedKept)
    {
        Stats.Crashes++;
        if (_hosts[victim].InFlight is not null)
        {
            Stats.CrashesDuringSync++;
        }

        _hosts[victim].Crash(logWriteSurvives, unsyncedKept);
        _incarnation[victim]++;
        _inbox[victim].Clear();
        _paused.Remove(victim);
        _pausedInputs[victim].Clear();
        _missedTicks[victim] = 0;
        Schedule(_random.Next(20, 600), new SimEvent(EventKind.Restart, victim, Incarnation: _incarnation[victim]));
    }

    /// <summary>
    /// A paused process runs again. A read may be the first input it takes (a client's request that was queued when it
    /// stopped), before any tick: as RaftHost, the host brings the node's ticks up to the clock before a read. Then the
    /// inputs that queued during the pause are taken in order; the owed ticks come with the next tick.
    /// </summary>
    private void Resume(RaftNodeId id)
    {
        var host = _hosts[id];
        if (_options.Reads && host.IsUp && host.InFlight is null && host.N.Role == RaftRole.Leader && _random.Next(2) == 0)
        {
            Stats.ReadsOnResume++;
            Read(host);
            BeginReady(host);
        }

        var queued = _pausedInputs[id];
        _pausedInputs[id] = [];
        var incarnation = _incarnation[id];
        foreach (var e in queued)
        {
            if (e.Kind == EventKind.Deliver)
            {
                Input(e);
            }
            else
            {
                OnStorageDone(e);
            }

            if (_incarnation[id] != incarnation)
            {
                break; // crashed (EIO) while catching up: the rest is gone with the process
            }
        }
    }

    /// <summary>Gives the node the ticks its clock owes it after a pause (RaftHost.TickToNow: at most an election timeout).</summary>
    private void CatchUpTicks(RaftTestHost host)
    {
        var owed = Math.Min(_missedTicks[host.Id], _raftOptions.ElectionTicksMax);
        _missedTicks[host.Id] = 0;
        _tickCredit[host.Id] += owed;
        try
        {
            for (; _tickCredit[host.Id] >= 1; _tickCredit[host.Id]--)
            {
                host.N.Tick();
            }
        }
        catch (RaftInvariantException ex)
        {
            Checker.Fail($"node {host.Id} at {NowMs} ms: {ex.Message}");
        }
    }

    /// <summary>An input for a node: handled now, or queued while the node syncs a Ready.</summary>
    private void Input(SimEvent e)
    {
        var host = _hosts[e.Node];
        if (!host.IsUp)
        {
            return;
        }

        if (host.InFlight is not null)
        {
            _inbox[e.Node].Enqueue(e);
            return;
        }

        Handle(host, e);
        BeginReady(host);
    }

    private void Handle(RaftTestHost host, SimEvent e)
    {
        try
        {
            switch (e.Kind)
            {
                case EventKind.Tick:
                    // A node whose clock runs at rate r gets r ticks per 10 ms on average (0, 1 or 2 at a time), and after
                    // a pause the ticks its clock owes it (at most an election timeout, as RaftHost.TickToNow).
                    _tickCredit[host.Id] += _tickRate[host.Id] + Math.Min(_missedTicks[host.Id], _raftOptions.ElectionTicksMax);
                    _missedTicks[host.Id] = 0;
                    for (; _tickCredit[host.Id] >= 1; _tickCredit[host.Id]--)
                    {
                        host.N.Tick();
                    }

                    break;
                case EventKind.Deliver:
                    host.N.Step(e.Message!);
                    break;
                default:
                    throw new InvalidOperationException($"not an input: {e.Kind}");
            }
        }
        catch (RaftInvariantException ex)
        {
            Checker.Fail($"node {host.Id} at {NowMs} ms: {ex.Message}");
        }

        Checker.ObserveRole(host);
    }

    private void BeginReady(RaftTestHost host)
    {
        while (host.BeginReady() is { } ready)
        {
            // The leader's own write runs in parallel with its followers' (thesis §10.2.1).
            foreach (var m in ready.MessagesBeforeSync)
            {
                Send(m);
            }

            if (host.InFlight is null)
            {
                // Pipelined: already advanced; its sync completes later, and the node may have more to hand out.
                Checker.ObserveRole(host);
                Schedule(_random.Next(0, _options.SyncLatencyMaxMs + 1), new SimEvent(EventKind.Durable, host.Id, Incarnation: _incarnation[host.Id]));
                continue;
            }

            if (_options.HostSendsBeforeSync)
            {
                foreach (var m in ready.Messages)
                {
                    Send(m);
                }
            }

            // A batch with nothing to persist is not synced (as RaftHost): it completes at once.
            var latency = ready.MustSync ? _random.Next(0, _options.SyncLatencyMaxMs + 1) : 0;
            Schedule(latency, new SimEvent(EventKind.SyncDone, host.Id, Incarnation: _incarnation[host.Id]));
            return;
        }
    }

    private void CompleteSync(RaftNodeId id)
    {
        var host = _hosts[id];
        var failed = host.InFlight is { MustSync: true } && SyncFails();
        if (failed && !_options.HostIgnoresSyncFailure)
        {
            FailStop(id);
            return;
        }

        IReadOnlyList<RaftMessage> messages;
        try
        {
            messages = host.CompleteReady(syncFailedIgnored: failed);
        }
        catch (RaftInvariantException ex)
        {
            Checker.Fail($"node {id} at {NowMs} ms: {ex.Message}");
            return;
        }

        Checker.ObserveRole(host);
        if (!_options.HostSendsBeforeSync)
        {
            foreach (var m in messages)
            {
                Send(m);
            }
        }

        // As RaftHost: every input that queued during the sync (up to a bound) goes into the next Ready. Handling one
        // input per sync let a node with slow syncs fall ever further behind its inbox (seconds late with 40 ms syncs).
        var inbox = _inbox[id];
        for (var taken = 0; host.IsUp && inbox.Count > 0 && taken < InputsPerReadyMax; taken++)
        {
            Handle(host, inbox.Dequeue());
        }

        if (host.InFlight is null)
        {
            BeginReady(host);
        }
    }

    private void Send(RaftMessage m)
    {
        Stats.MessagesSent++;
        if (m.Type == RaftMessageType.Snapshot)
        {
            if (m.SnapshotOffset == 0)
            {
                Stats.SnapshotsSent++;
            }
            else
            {
                Stats.SnapshotChunksAfterFirst++;
                if (!_snapshotChunksSent.Add((m.From, m.To, m.Term, m.Snapshot!.Index, m.SnapshotOffset)))
                {
                    Stats.SnapshotChunksResent++;
                }
            }
        }

        if (!Connected(m.From, m.To) || _random.NextDouble() < (_chaos ? _options.DropProbability : 0))
        {
            Stats.MessagesDropped++;
            return;
        }

        Schedule(_random.Next(1, _options.DelayMaxMs + 1), new SimEvent(EventKind.Deliver, m.To, m));
        if (_chaos && _random.NextDouble() < _options.DuplicateProbability)
        {
            Stats.MessagesDuplicated++;
            Schedule(_random.Next(1, _options.DelayMaxMs + 1), new SimEvent(EventKind.Deliver, m.To, m));
        }
    }

    private bool Connected(RaftNodeId a, RaftNodeId b) =>
        (_partitionGroup.Count == 0 || _partitionGroup[a] == _partitionGroup[b]) && !_cutLinks.Contains((a, b));

    private RaftTestHost? ReadyLeader()
    {
        var leaders = _hosts.Values.Where(h => h.IsUp && h.InFlight is null && !_paused.Contains(h.Id) && h.N.Role == RaftRole.Leader).ToList();
        return leaders.Count == 0 ? null : leaders[_random.Next(leaders.Count)];
    }

    private void Propose()
    {
        var leader = ReadyLeader();
        if (leader is null)
        {
            return;
        }

        var payload = new byte[8];
        var id = _proposalNext++;
        BinaryPrimitives.WriteUInt64LittleEndian(payload, id);
        try
        {
            var index = leader.N.Propose(payload);
            _proposals[id] = (leader.Id, index);
            var key = (int)(id % KeysCount);
            _writeOps[id] = (key, _history[key].Count);
            _history[key].Add(new RegisterOp(IsWrite: true, (long)id, ++_historyClock, long.MaxValue));
            Stats.Proposals++;
        }
        catch (NotLeaderException)
        {
            Stats.ProposalsRefused++;
        }

        if (_options.Reads && _random.Next(3) == 0)
        {
            Read(leader);
        }

        BeginReady(leader);
    }

    /// <summary>
    /// A linearizable read on a node that believes it leads (perhaps deposed, in a minority partition). It must
    /// reflect every write that completed before it began: every entry applied anywhere by then.
    /// </summary>
    private void Read(RaftTestHost leader)
    {
        var id = _readNext++;
        if (!_options.ReadsSkipTickToNow)
        {
            CatchUpTicks(leader);
        }

        try
        {
            leader.N.ReadIndex(id);
            _reads[id] = (leader.Id, Checker.AppliedIndexMax, _random.Next(KeysCount), ++_historyClock);
            Stats.Reads++;
        }
        catch (NotLeaderException)
        {
            Stats.ReadsRefused++;
        }
    }

    private void OnReadServed(RaftTestHost host, long requestId, long index)
    {
        if (!_reads.Remove(requestId, out var read))
        {
            Checker.Fail($"read {requestId} served on node {host.Id} twice, or never issued");
            return;
        }

        Stats.ReadsServed++;
        if (_options.CheckReadIndex)
        {
            Checker.CheckRead(host, read.Node, index, read.AppliedAnywhereAtStart);
        }

        // What the node's state machine holds for the key now, having applied through its applied index.
        _history[read.Key].Add(new RegisterOp(IsWrite: false, ValueAt(read.Key, host.AppliedIndex), read.Invoked, ++_historyClock));
    }

    /// <summary>The register's value after the committed prefix through <paramref name="applied"/> (0 before any write).</summary>
    private long ValueAt(int key, long applied)
    {
        var writes = _committedWrites[key];
        int low = 0, high = writes.Count - 1, found = -1;
        while (low <= high)
        {
            var mid = (low + high) / 2;
            if (writes[mid].Index <= applied)
            {
                found = mid;
                low = mid + 1;
            }
            else
            {
                high = mid - 1;
            }
        }

        return found < 0 ? 0 : writes[found].Value;
    }

    private void OnApplied(RaftTestHost host, RaftEntry entry, ulong hash)
    {
        Checker.ObserveApplied(host, entry, hash);
        try
        {
            OnAppliedKeyValue(host, entry);
        }
        finally
        {
            _firstAppliedMax = Math.Max(_firstAppliedMax, entry.Index);
        }
    }

    private void OnAppliedKeyValue(RaftTestHost host, RaftEntry entry)
    {
        if (entry.Kind == RaftEntryKind.Normal && entry.Data.Length == 8)
        {
            var id = BinaryPrimitives.ReadUInt64LittleEndian(entry.Data.Span);
            if (entry.Index > _firstAppliedMax)
            {
                // The first application of each index comes in index order (a node applies in order, and the first to
                // apply an index applied the one before it first): the committed writes of each key, in order.
                _committedWrites[(int)(id % KeysCount)].Add((entry.Index, (long)id));
            }

            if (_proposals.TryGetValue(id, out var proposal) && proposal.Node == host.Id && proposal.Index == entry.Index)
            {
                _proposals.Remove(id);
                Checker.Acknowledge(entry);
                var (key, op) = _writeOps[id];
                _history[key][op] = _history[key][op] with { Returned = ++_historyClock };
            }
        }
    }

    private void Chaos()
    {
        var roll = _random.Next(100);
        if (roll < 25)
        {
            var up = _ids.Where(id => _hosts[id].IsUp).ToList();
            if (up.Count > 0)
            {
                var victim = up[_random.Next(up.Count)];
                if (!_options.TornCrashes)
                {
                    CrashNode(victim, logWriteSurvives: _random.Next(2) == 0, unsyncedKept: 0);
                }
                else
                {
                    // All, none, or a prefix of the unsynced entries reached the disk.
                    var mode = _random.Next(3);
                    var unsynced = (int)(_hosts[victim].Log.LastIndex - _hosts[victim].Log.DurableIndex);
                    if (mode == 2 && unsynced > 0)
                    {
                        Stats.TornCrashes++;
                        CrashNode(victim, logWriteSurvives: false, unsyncedKept: _random.Next(1, unsynced + 1));
                    }
                    else
                    {
                        CrashNode(victim, logWriteSurvives: mode == 0, unsyncedKept: 0);
                    }
                }
            }
        }
        else if (roll < 45)
        {
            if (_partitionGroup.Count == 0 && _cutLinks.Count == 0 && _random.Next(3) == 0)
            {
                // One-way cuts: a few directed links fail while their reverse still works.
                for (var i = _random.Next(1, 4); i > 0; i--)
                {
                    var from = _ids[_random.Next(_ids.Count)];
                    var to = _ids[_random.Next(_ids.Count)];
                    if (from != to)
                    {
                        _cutLinks.Add((from, to));
                    }
                }

                Stats.OneWayCuts++;
                Schedule(_random.Next(100, 1500), new SimEvent(EventKind.Heal, RaftNodeId.None));
            }
            else if (_partitionGroup.Count == 0 && _cutLinks.Count == 0)
            {
                var leader = _hosts.Values.FirstOrDefault(h => h.IsUp && h.N.Role == RaftRole.Leader);
                var isolateLeader = leader is not null && _random.Next(3) == 0;
                foreach (var id in _ids)
                {
                    _partitionGroup[id] = isolateLeader ? (id == leader!.Id ? 1 : 0) : _random.Next(2);
                }

                Stats.Partitions++;
                Schedule(_random.Next(100, 1500), new SimEvent(EventKind.Heal, RaftNodeId.None));
            }
        }
        else if (roll < 55)
        {
            var leader = ReadyLeader();
            if (leader is not null)
            {
                var voters = leader.N.Config.Voters.Where(v => v != leader.Id).ToList();
                if (voters.Count > 0)
                {
                    leader.N.TransferLeadership(voters[_random.Next(voters.Count)]);
                    Stats.Transfers++;
                    BeginReady(leader);
                }
            }
        }
        else if (roll < 70 && _options.MembershipChanges)
        {
            ChangeMembership();
        }
        else if (roll < 82 && _options.Pauses)
        {
            Pause();
        }
    }

    /// <summary>Stops a process (a leader half the time) for 50-800 ms: a long GC, a stopped VM. Time runs on.</summary>
    private void Pause()
    {
        var candidates = _ids.Where(id => _hosts[id].IsUp && !_paused.Contains(id)).ToList();
        var leader = candidates.FirstOrDefault(id => _hosts[id].N.Role == RaftRole.Leader);
        if (candidates.Count == 0)
        {
            return;
        }

        var victim = !leader.IsNone && _random.Next(2) == 0 ? leader : candidates[_random.Next(candidates.Count)];
        _paused.Add(victim);
        Stats.Pauses++;
        Schedule(_random.Next(50, 801), new SimEvent(EventKind.Resume, victim, Incarnation: _incarnation[victim]));
    }

    private void ChangeMembership()
    {
        var leader = ReadyLeader();
        if (leader is null)
        {
            return;
        }

        var config = leader.N.Config;
        var candidates = new List<ConfigChange>();
        foreach (var id in _ids)
        {
            if (!config.IsMember(id))
            {
                candidates.Add(new ConfigChange(ConfigChangeKind.AddLearner, id));
            }
            else if (config.Learners.Contains(id))
            {
                candidates.Add(new ConfigChange(ConfigChangeKind.AddVoter, id));
                candidates.Add(new ConfigChange(ConfigChangeKind.Remove, id));
            }
            else if (config.Voters.Count > 3)
            {
                candidates.Add(new ConfigChange(ConfigChangeKind.Remove, id));
            }
        }

        if (candidates.Count == 0)
        {
            return;
        }

        var change = candidates[_random.Next(candidates.Count)];
        try
        {
            leader.N.ProposeConfigChange(change);
            Stats.ConfigChanges++;
        }
        catch (InvalidOperationException)
        {
            Stats.ConfigChangesRefused++;
        }

        BeginReady(leader);
    }

    private void RestartNode(RaftNodeId id)
    {
        try
        {
            _hosts[id].Restart();
        }
        catch (RaftInvariantException ex)
        {
            Checker.Fail($"node {id} restart at {NowMs} ms: {ex.Message}");
            return;
        }

        Stats.Restarts++;
        BeginReady(_hosts[id]);
    }
}

/// <summary>Totals of one or many runs, printed by the tests.</summary>
internal sealed class SimulationStats
{
    public long Events { get; set; }

    public long SimulatedMs { get; set; }

    public long MessagesSent { get; set; }

    public long MessagesDropped { get; set; }

    public long MessagesDuplicated { get; set; }

    public long Crashes { get; set; }

    public long CrashesDuringSync { get; set; }

    public long Restarts { get; set; }

    public long Partitions { get; set; }

    public long OneWayCuts { get; set; }

    public long Transfers { get; set; }

    /// <summary>Snapshot transfers started (first chunks sent, or the only one).</summary>
    public long SnapshotsSent { get; set; }

    /// <summary>Snapshot chunks sent at a non-zero offset, and how many of those were sent again (resumed after a loss).</summary>
    public long SnapshotChunksAfterFirst { get; set; }

    public long SnapshotChunksResent { get; set; }

    public long ConfigChanges { get; set; }

    /// <summary>Production faults: syncs that failed with EIO, the fail-stops they caused, crashes that kept a torn
    /// prefix of the unsynced entries, process pauses, and reads taken first thing after a leader's pause.</summary>
    public long SyncFailures { get; set; }

    public long FailStops { get; set; }

    public long TornCrashes { get; set; }

    public long Pauses { get; set; }

    public long ReadsOnResume { get; set; }

    public long ConfigChangesRefused { get; set; }

    public long Proposals { get; set; }

    public long ProposalsRefused { get; set; }

    public long Acknowledged { get; set; }

    public long Reads { get; set; }

    public long ReadsRefused { get; set; }

    public long ReadsServed { get; set; }

    public long ReadsFailed { get; set; }

    /// <summary>Operations of the key-value histories given to the linearizability checker.</summary>
    public long HistoryOperations { get; set; }

    public long Leaders { get; set; }

    /// <summary>Payload reads from "disk" (only when logs keep few payloads in memory).</summary>
    public long Fetches { get; set; }

    public void Add(SimulationStats o)
    {
        Events += o.Events;
        SimulatedMs += o.SimulatedMs;
        MessagesSent += o.MessagesSent;
        MessagesDropped += o.MessagesDropped;
        MessagesDuplicated += o.MessagesDuplicated;
        Crashes += o.Crashes;
        CrashesDuringSync += o.CrashesDuringSync;
        Restarts += o.Restarts;
        Partitions += o.Partitions;
        OneWayCuts += o.OneWayCuts;
        Transfers += o.Transfers;
        SnapshotsSent += o.SnapshotsSent;
        SnapshotChunksAfterFirst += o.SnapshotChunksAfterFirst;
        SnapshotChunksResent += o.SnapshotChunksResent;
        ConfigChanges += o.ConfigChanges;
        SyncFailures += o.SyncFailures;
        FailStops += o.FailStops;
        TornCrashes += o.TornCrashes;
        Pauses += o.Pauses;
        ReadsOnResume += o.ReadsOnResume;
        ConfigChangesRefused += o.ConfigChangesRefused;
        Proposals += o.Proposals;
        ProposalsRefused += o.ProposalsRefused;
        Acknowledged += o.Acknowledged;
        Reads += o.Reads;
        ReadsRefused += o.ReadsRefused;
        ReadsServed += o.ReadsServed;
        ReadsFailed += o.ReadsFailed;
        HistoryOperations += o.HistoryOperations;
        Leaders += o.Leaders;
        Fetches += o.Fetches;
    }

    public override string ToString() =>
        $"events {Events}, simulated {TimeSpan.FromMilliseconds(SimulatedMs)}, leaders {Leaders}, messages {MessagesSent} " +
        $"(dropped {MessagesDropped}, duplicated {MessagesDuplicated}), crashes {Crashes} ({CrashesDuringSync} during a sync), " +
        $"restarts {Restarts}, partitions {Partitions}, one-way cuts {OneWayCuts}, transfers {Transfers}, snapshots sent {SnapshotsSent} (later chunks {SnapshotChunksAfterFirst}, resent {SnapshotChunksResent}), config changes {ConfigChanges} " +
        $"(refused {ConfigChangesRefused}), proposals {Proposals} (refused {ProposalsRefused}), acknowledged {Acknowledged}, " +
        $"reads {Reads} (refused {ReadsRefused}, served {ReadsServed}, failed {ReadsFailed}), history operations checked {HistoryOperations}, fetches {Fetches}" +
        (SyncFailures + TornCrashes + Pauses == 0 ? "" :
            $", EIO syncs {SyncFailures} (fail-stops {FailStops}), torn crashes {TornCrashes}, pauses {Pauses} (reads first on resume {ReadsOnResume})");
}
