using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using AppendLog.Raft.Tests.Harness;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>
/// Real members in one process: each a <see cref="ReplicatedLog"/> over its own SegmentedLog in a temp directory,
/// talking TCP on 127.0.0.1. Records what each member's state machine applied.
/// </summary>
internal sealed class LoopbackCluster : IAsyncDisposable
{
    private readonly TempDirectory _root = new();
    private readonly Dictionary<RaftNodeId, IPEndPoint> _members;
    private readonly Dictionary<RaftNodeId, ReplicatedLog?> _nodes = [];

    private readonly Func<ReplicatedLogOptions, ReplicatedLogOptions> _configure;

    public LoopbackCluster(int size, Func<ReplicatedLogOptions, ReplicatedLogOptions>? configure = null)
    {
        _configure = configure ?? (o => o);
        _members = Enumerable.Range(1, size).ToDictionary(i => new RaftNodeId((ulong)i), _ => new IPEndPoint(IPAddress.Loopback, FreePort()));
    }

    public IEnumerable<RaftNodeId> Ids => _members.Keys;

    /// <summary>Where <paramref name="id"/> listens.</summary>
    public IPEndPoint Endpoint(RaftNodeId id) => _members[id];

    /// <summary>Members get a <see cref="DictionaryStateMachine"/> (with snapshots) instead of an Apply callback.</summary>
    public bool UseStateMachine { get; init; }

    /// <summary>When set and true for a member and a record, that member's Apply callback throws <see cref="ApplyFailedException"/>.</summary>
    public Func<RaftNodeId, CommittedRecord, bool>? ApplyFails { get; set; }

    /// <summary>Per member: offset → payload, as applied by its state machine (cleared at restart: replay refills it).</summary>
    public ConcurrentDictionary<RaftNodeId, ConcurrentDictionary<long, byte[]>> Applied { get; } = new();

    public ReplicatedLog Node(RaftNodeId id) => _nodes[id] ?? throw new InvalidOperationException($"node {id} is down");

    public IEnumerable<ReplicatedLog> Running => _nodes.Values.Where(n => n is not null)!;

    /// <summary>Every leadership event any member raised, in the order each member raised them.</summary>
    public ConcurrentQueue<(RaftNodeId Member, LeadershipChangedEventArgs Event)> LeadershipEvents { get; } = new();

    public async Task StartAsync(RaftNodeId id)
    {
        var applied = Applied[id] = new ConcurrentDictionary<long, byte[]>();
        var node = new ReplicatedLog(_configure(new ReplicatedLogOptions
        {
            NodeId = id,
            Members = _members,
            Directory = _root.Sub("node-" + id),
            RandomSeed = (int)id.Value,
            Apply = UseStateMachine ? null : (record, _) =>
            {
                if (ApplyFails?.Invoke(id, record) == true)
                {
                    throw new ApplyFailedException();
                }

                applied[record.Offset] = record.Payload.ToArray();
                return ValueTask.CompletedTask;
            },
            StateMachine = UseStateMachine ? new DictionaryStateMachine(applied) : null,
        }));
        node.LeadershipChanged += (_, e) => LeadershipEvents.Enqueue((id, e));
        await node.StartAsync();
        _nodes[id] = node;
    }

    public async Task StartAllAsync()
    {
        foreach (var id in Ids)
        {
            await StartAsync(id);
        }
    }

    public async Task StopAsync(RaftNodeId id)
    {
        var node = _nodes[id];
        _nodes[id] = null;
        if (node is not null)
        {
            await node.DisposeAsync();
        }
    }

    /// <summary>Waits until a running member leads and the others running (and not stopped by a fault) agree on it.</summary>
    public async Task<ReplicatedLog> AwaitLeaderAsync(TimeSpan timeout, RaftNodeId? not = null)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (DateTimeOffset.UtcNow < deadline)
        {
            var leaders = Running.Where(n => n.Status.Role == ReplicaRole.Leader && n.NodeId != not).ToList();
            if (leaders.Count == 1 && Running.Where(n => n.Status.Role != ReplicaRole.Stopped).All(n => n.Status.LeaderId == leaders[0].NodeId))
            {
                return leaders[0];
            }

            await Task.Delay(10);
        }

        throw new TimeoutException("No leader was elected in time.");
    }

    /// <summary>Replicates through whoever leads, retrying on redirects; null when the outcome stayed unknown.</summary>
    public async Task<long?> ReplicateAsync(byte[] payload, TimeSpan timeout)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (DateTimeOffset.UtcNow < deadline)
        {
            var leader = Running.FirstOrDefault(n => n.Status.Role == ReplicaRole.Leader);
            if (leader is null)
            {
                await Task.Delay(10);
                continue;
            }

            try
            {
                return await leader.ReplicateAsync(payload);
            }
            catch (Exception ex) when (ex is NotLeaderException or ObjectDisposedException or ReplicationTimeoutException or InvalidOperationException)
            {
                // Redirect or a leader going away: the outcome of this attempt is unknown; try again.
                await Task.Delay(10);
            }
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var id in _nodes.Keys.ToList())
        {
            await StopAsync(id);
        }

        _root.Dispose();
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}

/// <summary>What a member's Apply callback throws when <see cref="LoopbackCluster.ApplyFails"/> says so.</summary>
internal sealed class ApplyFailedException() : Exception("the test's state machine refused a record");
