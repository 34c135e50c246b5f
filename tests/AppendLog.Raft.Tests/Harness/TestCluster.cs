using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;

namespace AppendLog.Raft.Tests.Harness;

/// <summary>
/// A synchronous cluster for rule-by-rule tests: messages queue until the test delivers them, and the test decides
/// which links are cut. Everything is deterministic for a given seed.
/// </summary>
internal sealed class TestCluster
{
    private readonly HashSet<(RaftNodeId, RaftNodeId)> _cut = [];

    public TestCluster(int voters, RaftOptions? options = null, int seed = 1, int spares = 0)
    {
        Options = options ?? new RaftOptions
        {
            TickInterval = TimeSpan.FromMilliseconds(10),
            HeartbeatInterval = TimeSpan.FromMilliseconds(10),
            ElectionTimeoutMinimum = TimeSpan.FromMilliseconds(100),
            ElectionTimeoutMaximum = TimeSpan.FromMilliseconds(200),
        };
        var config = new ClusterConfig(Enumerable.Range(1, voters).Select(i => new RaftNodeId((ulong)i)), []);
        for (var i = 1; i <= voters + spares; i++)
        {
            var id = new RaftNodeId((ulong)i);
            Hosts[id] = new RaftTestHost(id, config, Options, seed);
        }
    }

    public RaftOptions Options { get; }

    public Dictionary<RaftNodeId, RaftTestHost> Hosts { get; } = [];

    /// <summary>Messages sent and not yet delivered or dropped.</summary>
    public List<RaftMessage> InFlight { get; } = [];

    public RaftTestHost this[ulong id] => Hosts[new RaftNodeId(id)];

    public static RaftNodeId Id(ulong id) => new(id);

    /// <summary>Cuts both directions between <paramref name="node"/> and every other node.</summary>
    public void Isolate(ulong node)
    {
        foreach (var other in Hosts.Keys)
        {
            Cut(node, other.Value);
        }
    }

    public void Cut(ulong a, ulong b)
    {
        _cut.Add((Id(a), Id(b)));
        _cut.Add((Id(b), Id(a)));
    }

    public void HealAll() => _cut.Clear();

    /// <summary>Processes every Ready, queueing what they send.</summary>
    public void Flush()
    {
        foreach (var host in Hosts.Values)
        {
            if (host.IsUp)
            {
                InFlight.AddRange(host.Drain());
            }
        }
    }

    /// <summary>Delivers queued messages (and what they cause) until the network is quiet. Cut links drop.</summary>
    public void Stabilize(int roundsMax = 1000)
    {
        Flush();
        for (var round = 0; round < roundsMax && InFlight.Count > 0; round++)
        {
            var batch = InFlight.ToList();
            InFlight.Clear();
            foreach (var m in batch)
            {
                Deliver(m);
            }

            Flush();
        }
    }

    /// <summary>Messages for which this returns true are dropped.</summary>
    public Func<RaftMessage, bool>? Drop { get; set; }

    /// <summary>Rewrites messages in flight (for example to strip entries), before delivery.</summary>
    public Func<RaftMessage, RaftMessage>? Rewrite { get; set; }

    public void Deliver(RaftMessage m)
    {
        m = Rewrite?.Invoke(m) ?? m;
        if (_cut.Contains((m.From, m.To)) || !Hosts[m.To].IsUp || (Drop?.Invoke(m) ?? false))
        {
            return;
        }

        Hosts[m.To].N.Step(m);
        InFlight.AddRange(Hosts[m.To].Drain());
    }

    public void Tick(ulong node, int ticks = 1)
    {
        for (var i = 0; i < ticks; i++)
        {
            this[node].N.Tick();
            InFlight.AddRange(this[node].Drain());
        }
    }

    /// <summary>Ticks <paramref name="node"/> until it campaigns, then delivers everything.</summary>
    public void Elect(ulong node)
    {
        for (var i = 0; i < 1000 && this[node].N.Role == RaftRole.Follower; i++)
        {
            Tick(node);
        }

        Stabilize();
    }

    public RaftTestHost? Leader() => Hosts.Values.FirstOrDefault(h => h.IsUp && h.N.Role == RaftRole.Leader);

    public long Propose(ulong node, byte value)
    {
        var index = this[node].N.Propose(new byte[] { value });
        Flush();
        return index;
    }
}
