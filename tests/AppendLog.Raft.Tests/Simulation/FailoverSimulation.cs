using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Tests.Harness;

namespace AppendLog.Raft.Tests.Simulation;

/// <summary>
/// One leader crash in a three-member group under load, timed on a virtual clock (microseconds) from one seed: the
/// RaftBench fail-over measurement without processes. Each member ticks every 10 ms at its own phase; messages arrive
/// after 0.1-2 ms and are never lost (the network delivers, and the two survivors are a healthy quorum); a Ready's sync
/// takes 0-4 ms, during which the member's inputs wait, and a leader's own writes are pipelined as in RaftHost. A client
/// proposes every 0.5-1.5 ms to whichever member leads. After the log holds a few thousand entries, one follower may be
/// restarted and replay its log slowly (its state machine applies <see cref="ReplayEntriesPerMs"/> entries per ms, as a
/// member that restarted a moment ago), then the leader crashes for good.
/// <para>
/// Fail-over is what the bench measures: from the crash to the first proposal made after it being committed and applied on
/// the member that accepted it (ReplicatedLog.ReplicateAsync completes only then); election is from the crash to the first
/// member that becomes leader.
/// </para>
/// </summary>
internal sealed class FailoverSimulation
{
    /// <summary>The replaying member's state machine speed: far slower than its backlog, so waiting for it shows.</summary>
    public const int ReplayEntriesPerMs = 1;

    private const long TickMicros = 10_000;

    /// <summary>Queued inputs taken before the next Ready, as RaftHost's bound.</summary>
    private const int InputsPerReadyMax = 1024;
    private const long LoadMicros = 3_000_000;
    private const long AfterCrashMicrosMax = 3_000_000;

    private readonly Random _random;
    private readonly bool _replayingFollower;
    private readonly PriorityQueue<Action, (long Time, long Sequence)> _events = new();
    private readonly Dictionary<RaftNodeId, RaftTestHost> _hosts = [];
    private readonly Dictionary<RaftNodeId, Queue<Action<RaftNode>>> _inbox = [];
    private readonly Dictionary<RaftNodeId, long> _replayStartedAt = [];
    private readonly List<(RaftNodeId Node, long Term, long Index)> _proposalsAfterCrash = [];
    private readonly Dictionary<RaftNodeId, string> _lastState = [];
    private long _sequence;
    private long _now;
    private long _crashAt = -1;
    private RaftNodeId _crashed = RaftNodeId.None;

    public FailoverSimulation(int seed, bool replayingFollower)
    {
        _random = new Random(seed);
        _replayingFollower = replayingFollower;
        Options = new RaftOptions
        {
            TickInterval = TimeSpan.FromMilliseconds(10),
            HeartbeatInterval = TimeSpan.FromMilliseconds(30),
            ElectionTimeoutMinimum = TimeSpan.FromMilliseconds(150),
            ElectionTimeoutMaximum = TimeSpan.FromMilliseconds(300),
        };
        var config = new ClusterConfig(Enumerable.Range(1, 3).Select(i => new RaftNodeId((ulong)i)), []);
        foreach (var id in config.Voters)
        {
            _hosts[id] = new RaftTestHost(id, config, Options, seed) { PipelineLeaderWrites = true };
            _inbox[id] = new Queue<Action<RaftNode>>();
            var node = id;
            Schedule(_random.NextInt64(TickMicros), () => OnTick(node));
        }

        Schedule(_random.NextInt64(500, 1_500), Propose);
    }

    public RaftOptions Options { get; }

    /// <summary>The member that was replaying when the leader crashed, or none.</summary>
    public RaftNodeId Replaying { get; private set; } = RaftNodeId.None;

    /// <summary>Crash to the first new leader, ms (NaN: none).</summary>
    public double ElectionMs { get; private set; } = double.NaN;

    /// <summary>Crash to the first post-crash proposal applied on the member that accepted it, ms (NaN: none).</summary>
    public double FailoverMs { get; private set; } = double.NaN;

    /// <summary>The member whose proposal completed the fail-over.</summary>
    public RaftNodeId CommittedBy { get; private set; } = RaftNodeId.None;

    /// <summary>Whether the replaying member was the first to become leader after the crash.</summary>
    public bool ReplayingWonFirst { get; private set; }

    public FailoverSimulation Run()
    {
        RunUntil(LoadMicros);
        var leader = Leader() ?? throw new InvalidOperationException("no leader after the load phase");
        if (_replayingFollower)
        {
            Replaying = _hosts.Keys.Where(id => id != leader.Id).OrderBy(id => id.Value).ElementAt(_random.Next(2));
            _hosts[Replaying].Crash(logWriteSurvives: true);
            _inbox[Replaying].Clear();
            _hosts[Replaying].Restart();
            _replayStartedAt[Replaying] = _now;
            RunUntil(_now + _random.NextInt64(200_000, 600_000));
        }

        leader = Leader() ?? throw new InvalidOperationException("no leader before the crash");
        _crashed = leader.Id;
        _crashAt = _now;
        leader.Crash();
        _inbox[leader.Id].Clear();
        while (_events.Count > 0 && double.IsNaN(FailoverMs) && _now < _crashAt + AfterCrashMicrosMax)
        {
            Step();
        }

        return this;
    }

    private void RunUntil(long time)
    {
        while (_events.TryPeek(out _, out var at) && at.Time <= time)
        {
            Step();
        }

        _now = time;
    }

    private void Step()
    {
        _events.TryDequeue(out var action, out var at);
        _now = at.Time;
        action!();
        if (_crashAt >= 0)
        {
            Observe();
        }
    }

    private void Observe()
    {
        foreach (var host in _hosts.Values.Where(h => h.IsUp))
        {
            var state = $"{host.N.Role} t{host.N.Term} last {host.N.LastIndex} commit {host.N.Committed} applied {host.N.Applied}";
            if (!_lastState.TryGetValue(host.Id, out var last) || !last.StartsWith($"{host.N.Role} t{host.N.Term} ", StringComparison.Ordinal))
            {
                Trace.Add($"{(_now - _crashAt) / 1000.0,8:F1} ms node {host.Id}: {state}");
                _lastState[host.Id] = state;
            }
        }

        if (double.IsNaN(ElectionMs) && Leader() is { } first)
        {
            ElectionMs = (_now - _crashAt) / 1000.0;
            ReplayingWonFirst = first.Id == Replaying;
        }

        foreach (var (node, term, index) in _proposalsAfterCrash)
        {
            var host = _hosts[node];
            if (host.IsUp && host.AppliedIndex >= index && host.N.TryGetTerm(index, out var t) && t == term)
            {
                FailoverMs = (_now - _crashAt) / 1000.0;
                CommittedBy = node;
                return;
            }
        }
    }

    private RaftTestHost? Leader() =>
        _hosts.Values.FirstOrDefault(h => h.IsUp && h.Id != _crashed && h.N.Role == RaftRole.Leader);

    private void Schedule(long delayMicros, Action action) => _events.Enqueue(action, (_now + delayMicros, _sequence++));

    private void OnTick(RaftNodeId id)
    {
        Schedule(TickMicros, () => OnTick(id));
        Input(id, node => node.Tick());
    }

    private void Propose()
    {
        Schedule(_random.NextInt64(500, 1_500), Propose);
        var leader = Leader();
        if (leader is null)
        {
            return;
        }

        Input(leader.Id, node =>
        {
            if (node.Role != RaftRole.Leader || !node.LeadTransferee.IsNone)
            {
                return; // the client is told NotLeader and tries again at its next proposal
            }

            var index = node.Propose(new byte[8]);
            if (_crashAt >= 0)
            {
                _proposalsAfterCrash.Add((node.Id, node.Term, index));
            }
        });
    }

    /// <summary>An input for a member: taken now, or after the Ready it is syncing.</summary>
    private void Input(RaftNodeId id, Action<RaftNode> input)
    {
        var host = _hosts[id];
        if (!host.IsUp)
        {
            return;
        }

        if (host.InFlight is not null)
        {
            _inbox[id].Enqueue(input);
            return;
        }

        LimitReplay(host);
        input(host.N);
        Pump(host);
    }

    /// <summary>A replaying member's state machine has applied only what its speed allows since it restarted.</summary>
    private void LimitReplay(RaftTestHost host)
    {
        if (_replayStartedAt.TryGetValue(host.Id, out var since))
        {
            host.N.LimitApplyTo((_now - since) * ReplayEntriesPerMs / 1000);
        }
    }

    private void Pump(RaftTestHost host)
    {
        while (host.IsUp && host.InFlight is null && host.BeginReady() is { } ready)
        {
            foreach (var message in ready.MessagesBeforeSync)
            {
                Send(message);
            }

            var latency = _random.NextInt64(0, 4_000);
            if (host.InFlight is null)
            {
                // A leader's pipelined write: advanced already, durable later.
                Schedule(latency, () =>
                {
                    if (host.IsUp && host.InFlight is null)
                    {
                        LimitReplay(host);
                        host.CompleteDurable();
                        Pump(host);
                    }
                    else
                    {
                        host.CompleteDurable();
                    }
                });
                continue;
            }

            var syncing = ready;
            Schedule(latency, () => CompleteSync(host, syncing)); // ignored if the member crashed meanwhile
        }
    }

    private void CompleteSync(RaftTestHost host, Ready ready)
    {
        if (!ReferenceEquals(host.InFlight, ready))
        {
            return; // the member crashed meanwhile
        }

        foreach (var message in host.CompleteReady())
        {
            Send(message);
        }

        // As RaftHost: every input that queued during the sync is taken before the next Ready (at most its bound).
        var inbox = _inbox[host.Id];
        LimitReplay(host);
        for (var taken = 0; host.IsUp && taken < InputsPerReadyMax && inbox.TryDequeue(out var input); taken++)
        {
            input(host.N);
        }

        Pump(host);
    }

    /// <summary>Role changes and election messages after the crash (printed when one seed is replayed).</summary>
    public List<string> Trace { get; } = [];

    private void Send(RaftMessage message)
    {
        if (_crashAt >= 0 && message.Type is not (RaftMessageType.Append or RaftMessageType.AppendResponse))
        {
            Trace.Add($"{(_now - _crashAt) / 1000.0,8:F1} ms {message}");
        }

        var to = message.To;
        Schedule(_random.NextInt64(100, 2_000), () => Input(to, node => node.Step(message)));
    }
}
