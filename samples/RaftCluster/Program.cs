using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using AppendLog.Raft;
using RaftCluster;

// A three-member replicated key-value store on 127.0.0.1, in this process: writes, the leader is killed, a new
// leader takes over and writes on (snapshotting every 500 offsets), the old leader comes back and catches up from the
// leader's snapshot. Run: dotnet run -c Release --project samples/RaftCluster
// With "processes": three child processes, the leader SIGKILLed under load, the disks checked (exit code 1 on a loss).
// With "bench [seconds] [cache MiB]": measures committed 1 KiB writes/s and latency percentiles for 1, 16 and 64
// concurrent clients (each member keeps at most "cache MiB" of batches in memory, 64 by default).
// With "register ID DIR PORT1 PORT2 PORT3": one member of a replicated register set served over stdin/stdout
// (RegisterMember.cs), for the multi-process linearizability test.

if (args.Length > 0 && args[0] == "node")
{
    return await MultiProcess.RunChildAsync(args);
}

if (args.Length > 0 && args[0] == "register")
{
    return await RegisterMember.RunAsync(args);
}

var root = Path.Combine(Path.GetTempPath(), "appendlog-raftcluster-" + Environment.ProcessId);
var members = Enumerable.Range(1, 3).ToDictionary(i => new RaftNodeId((ulong)i), _ => new IPEndPoint(IPAddress.Loopback, FreePort()));
var clock = Stopwatch.StartNew();
void Say(string text) => Console.WriteLine($"[{clock.Elapsed.TotalSeconds,7:F3}s] {text}");

var nodes = new Dictionary<RaftNodeId, KeyValueNode?>();
async Task StartNode(RaftNodeId id)
{
    // A snapshot every 500 offsets, so the demo shows one being installed on a member that was down.
    var node = new KeyValueNode(id, members, Path.Combine(root, "node-" + id), Say, snapshotInterval: 500);
    await node.StartAsync();
    nodes[id] = node;
}

try
{
    if (args.Length > 0 && args[0] == "bench")
    {
        var cacheMiB = args.Length > 2 ? long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 64;
        foreach (var id in members.Keys)
        {
            var node = new KeyValueNode(id, members, Path.Combine(root, "node-" + id), cachedLogBytes: cacheMiB * 1024 * 1024);
            await node.StartAsync();
            nodes[id] = node;
        }

        var seconds = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5;
        await Bench.RunAsync(await AwaitLeader(), TimeSpan.FromSeconds(seconds), [1, 16, 64]);
        return 0;
    }

    if (args.Length > 0 && args[0] == "processes")
    {
        Directory.CreateDirectory(root);
        return await MultiProcess.RunParentAsync(root);
    }

    Say($"starting 3 members on {string.Join(", ", members.Select(m => $"node {m.Key} = {m.Value}"))}; data under {root}");
    foreach (var id in members.Keys)
    {
        await StartNode(id);
    }

    var leader = await AwaitLeader();
    Say($"node {leader.Id} leads");

    for (var i = 0; i < 5; i++)
    {
        var offset = await leader.SetAsync($"user:{i}", $"alice-{i}");
        Say($"SET user:{i}=alice-{i} committed at offset {offset}");
    }

    var bulk = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, 1000).Select(i => leader.SetAsync($"counter:{i % 10}", i.ToString(System.Globalization.CultureInfo.InvariantCulture)).AsTask()));
    Say($"1000 concurrent SETs committed in {bulk.Elapsed.TotalMilliseconds:F0} ms");
    await AwaitConverged();
    PrintStatus();

    Say($"killing the leader, node {leader.Id}");
    var killed = leader.Id;
    var killedAt = clock.Elapsed;
    await leader.DisposeAsync();
    nodes[killed] = null;

    var next = await AwaitLeader();
    var offsetAfter = await Retry(() => next.SetAsync("after-failover", "yes"));
    Say($"node {next.Id} leads; first write after the kill committed at offset {offsetAfter}, " +
        $"{(clock.Elapsed - killedAt).TotalMilliseconds:F0} ms after the kill");
    for (var i = 0; i < 5; i++)
    {
        await next.SetAsync($"user:{i}", $"bob-{i}");
    }

    await Task.WhenAll(Enumerable.Range(0, 1500).Select(i => next.SetAsync($"down:{i % 20}", i.ToString(System.Globalization.CultureInfo.InvariantCulture)).AsTask()));
    Say("1505 more SETs committed on the new leader while the old one is down (it snapshots every 500 offsets and drops the log before)");
    PrintStatus();

    Say($"restarting node {killed} from its own log");
    await StartNode(killed);
    await AwaitConverged();
    var restarted = nodes[killed]!;
    Say($"node {killed} caught up: user:0={restarted.State["user:0"]}, after-failover={restarted.State["after-failover"]}, " +
        $"{restarted.State.Count} keys, same as node {next.Id}: {restarted.State.OrderBy(p => p.Key).SequenceEqual(next.State.OrderBy(p => p.Key))}; " +
        $"dictionary restored from a snapshot {restarted.SnapshotRestores} time(s) (its own at start, then the leader's)");
    PrintStatus();
    return 0;
}
finally
{
    foreach (var node in nodes.Values)
    {
        if (node is not null)
        {
            await node.DisposeAsync();
        }
    }

    if (Directory.Exists(root))
    {
        Directory.Delete(root, recursive: true);
    }
}

async Task<KeyValueNode> AwaitLeader()
{
    for (var i = 0; i < 1000; i++)
    {
        var leader = nodes.Values.FirstOrDefault(n => n is not null && n.Log.Status.Role == ReplicaRole.Leader);
        if (leader is not null)
        {
            return leader;
        }

        await Task.Delay(10);
    }

    throw new TimeoutException("no leader after 10 s");
}

async Task AwaitConverged()
{
    for (var i = 0; i < 1000; i++)
    {
        var running = nodes.Values.Where(n => n is not null).Select(n => n!).ToList();
        var end = running.Max(n => n.Log.Status.CommittedEndOffset);
        if (running.All(n => n.Log.Status.CommittedEndOffset == end))
        {
            return;
        }

        await Task.Delay(10);
    }
}

void PrintStatus()
{
    foreach (var node in nodes.Values)
    {
        if (node is null)
        {
            continue;
        }

        var s = node.Log.Status;
        var followers = s.Followers.Count == 0 ? "" : "; followers " + string.Join(", ", s.Followers.Select(f => $"node {f.NodeId} match {f.MatchIndex} lag {f.Lag}"));
        Say($"  node {s.NodeId}: {s.Role,-9} term {s.Term} commit index {s.CommitIndex} committed end offset {s.CommittedEndOffset} keys {node.State.Count}{followers}");
    }
}

static async Task<long> Retry(Func<ValueTask<long>> write)
{
    for (var attempt = 0; ; attempt++)
    {
        try
        {
            return await write();
        }
        catch (NotLeaderException) when (attempt < 100)
        {
            await Task.Delay(10);
        }
    }
}

static int FreePort()
{
    using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    return ((IPEndPoint)probe.LocalEndPoint!).Port;
}
