using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using AppendLog;
using AppendLog.Raft;

namespace RaftCluster;

/// <summary>
/// Three members as three child processes on 127.0.0.1. Each child, while it leads, writes as fast as 8 clients can
/// and prints "ACK offset payload" for every committed write. The parent SIGKILLs the leader under load, waits for a
/// new leader to acknowledge more, restarts the killed member, SIGKILLs everyone, and then reads the three logs from
/// disk: every acknowledged payload must be at its offset in a majority of them, and no offset may have been
/// acknowledged twice with different payloads.
/// </summary>
internal static class MultiProcess
{
    public static async Task<int> RunChildAsync(string[] args)
    {
        var id = new RaftNodeId(ulong.Parse(args[1], CultureInfo.InvariantCulture));
        var members = Members(args[3..]);
        await using var node = new KeyValueNode(id, members, args[2]);
        var output = Console.Out;
        var gate = new object();
        node.Log.LeadershipChanged += (_, e) =>
        {
            lock (gate)
            {
                output.WriteLine($"TERM {e.Term} {e.LeaderId}");
            }
        };
        await node.StartAsync();
        var sequence = 0L;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                if (node.Log.Status.Role != ReplicaRole.Leader)
                {
                    await Task.Delay(10);
                    continue;
                }

                var key = $"n{id}-{Interlocked.Increment(ref sequence)}";
                try
                {
                    var offset = await node.SetAsync(key, "v");
                    lock (gate)
                    {
                        output.WriteLine($"ACK {offset} {key}=v");
                    }
                }
                catch (Exception ex) when (ex is NotLeaderException or ReplicationTimeoutException)
                {
                    // Lost leadership: the outcome is unknown, so nothing is reported.
                }
            }
        })));
        return 0;
    }

    public static async Task<int> RunParentAsync(string root)
    {
        var ports = Enumerable.Range(0, 3).Select(_ => FreePort()).ToArray();
        var acks = new ConcurrentDictionary<long, string>();
        var conflicts = new ConcurrentBag<string>();
        var children = new Process?[3];
        var clock = Stopwatch.StartNew();
        void Say(string text) => Console.WriteLine($"[{clock.Elapsed.TotalSeconds,7:F3}s] {text}");
        var lastAckFrom = 0;

        void Start(int i)
        {
            var info = new ProcessStartInfo(Environment.ProcessPath!)
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            var self = typeof(MultiProcess).Assembly.Location;
            if (!Path.GetFileNameWithoutExtension(Environment.ProcessPath!).Equals("RaftCluster", StringComparison.Ordinal))
            {
                info.ArgumentList.Add(self); // run as "dotnet RaftCluster.dll"
            }

            foreach (var arg in new[] { "node", (i + 1).ToString(CultureInfo.InvariantCulture), Path.Combine(root, "node-" + (i + 1)) }
                .Concat(ports.Select(p => p.ToString(CultureInfo.InvariantCulture))))
            {
                info.ArgumentList.Add(arg);
            }

            var process = Process.Start(info)!;
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    return;
                }

                var parts = e.Data.Split(' ');
                if (parts[0] == "ACK")
                {
                    var offset = long.Parse(parts[1], CultureInfo.InvariantCulture);
                    var existing = acks.GetOrAdd(offset, parts[2]);
                    if (existing != parts[2])
                    {
                        conflicts.Add($"offset {offset} acknowledged as {existing} and as {parts[2]}");
                    }

                    lastAckFrom = i;
                }
                else if (parts[0] == "TERM" && parts[2] == (i + 1).ToString(CultureInfo.InvariantCulture))
                {
                    Say($"node {i + 1} leads in term {parts[1]}");
                }
            };
            process.BeginOutputReadLine();
            children[i] = process;
        }

        async Task AwaitAcks(int count, TimeSpan timeout)
        {
            var deadline = clock.Elapsed + timeout;
            while (acks.Count < count && clock.Elapsed < deadline)
            {
                await Task.Delay(10);
            }
        }

        try
        {
            Say($"three child processes on 127.0.0.1:{string.Join(",", ports)}; data under {root}");
            for (var i = 0; i < 3; i++)
            {
                Start(i);
            }

            await AwaitAcks(3000, TimeSpan.FromSeconds(30));
            var leader = lastAckFrom;
            Say($"{acks.Count} writes acknowledged; SIGKILL node {leader + 1} (the leader) under load");
            children[leader]!.Kill();
            await children[leader]!.WaitForExitAsync();
            var killedAt = clock.Elapsed;
            var before = acks.Count;
            await AwaitAcks(before + 1, TimeSpan.FromSeconds(20));
            Say($"first write acknowledged by the new leader {(clock.Elapsed - killedAt).TotalMilliseconds:F0} ms after the kill");
            await AwaitAcks(before + 3000, TimeSpan.FromSeconds(30));
            Say($"{acks.Count} writes acknowledged; restarting node {leader + 1}");
            Start(leader);
            await Task.Delay(2000);
            Say($"{acks.Count} writes acknowledged; SIGKILL every member");
            foreach (var child in children)
            {
                child!.Kill();
                await child.WaitForExitAsync();
            }

            return await VerifyAsync(root, acks, conflicts, Say);
        }
        finally
        {
            foreach (var child in children)
            {
                if (child is { HasExited: false })
                {
                    child.Kill();
                }
            }
        }
    }

    private static async Task<int> VerifyAsync(string root, ConcurrentDictionary<long, string> acks, ConcurrentBag<string> conflicts, Action<string> say)
    {
        var logs = new List<Dictionary<long, string>>();
        for (var i = 1; i <= 3; i++)
        {
            var records = new Dictionary<long, string>();
            await using var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(root, "node-" + i, "log") });
            await foreach (var record in log.ReadAsync(log.StartOffset))
            {
                if (record.Value is { } value)
                {
                    records[record.Offset] = Encoding.UTF8.GetString(value);
                }
            }

            logs.Add(records);
            say($"node {i}: {records.Count} records on disk");
        }

        var lost = acks.Where(a => logs.Count(l => l.TryGetValue(a.Key, out var v) && v == a.Value) < 2).ToList();
        foreach (var conflict in conflicts.Take(5))
        {
            say("CONFLICT " + conflict);
        }

        foreach (var (offset, payload) in lost.Take(5))
        {
            say($"LOST offset {offset} {payload}: on fewer than 2 members");
        }

        say($"{acks.Count} acknowledged writes; {lost.Count} not on a majority of disks; {conflicts.Count} conflicting acknowledgements");
        return lost.Count == 0 && conflicts.IsEmpty && acks.Count > 0 ? 0 : 1;
    }

    private static Dictionary<RaftNodeId, IPEndPoint> Members(string[] ports) =>
        ports.Select((p, i) => (new RaftNodeId((ulong)(i + 1)), new IPEndPoint(IPAddress.Loopback, int.Parse(p, CultureInfo.InvariantCulture))))
            .ToDictionary(m => m.Item1, m => m.Item2);

    private static int FreePort()
    {
        using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
