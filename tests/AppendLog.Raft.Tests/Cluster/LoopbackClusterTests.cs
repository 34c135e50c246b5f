using System.Text;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>Three real members (SegmentedLogs in temp directories, TCP on 127.0.0.1) in one process.</summary>
[NonParallelizable]
public sealed class LoopbackClusterTests
{
    private static readonly TimeSpan ElectionWait = TimeSpan.FromSeconds(15);

    private static byte[] Payload(string prefix, int i) => Encoding.UTF8.GetBytes($"{prefix}-{i}");

    /// <summary>Replicates from <paramref name="clients"/> concurrent clients; returns the acknowledged (offset, payload) pairs.</summary>
    private static async Task<List<(long Offset, byte[] Payload)>> LoadAsync(LoopbackCluster cluster, string prefix, int count, int clients)
    {
        var acknowledged = new List<(long, byte[])>();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var payload = Payload(prefix, i);
                if (await cluster.ReplicateAsync(payload, TimeSpan.FromSeconds(20)) is { } offset)
                {
                    lock (acknowledged)
                    {
                        acknowledged.Add((offset, payload));
                    }
                }
            }
        }));
        return acknowledged;
    }

    private static async Task AwaitAppliedAsync(LoopbackCluster cluster, RaftNodeId id, IEnumerable<(long Offset, byte[] Payload)> acknowledged)
    {
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTimeOffset.UtcNow < deadline)
        {
            var applied = cluster.Applied[id];
            if (acknowledged.All(a => applied.TryGetValue(a.Offset, out var p) && p.AsSpan().SequenceEqual(a.Payload)))
            {
                return;
            }

            await Task.Delay(20);
        }

        var missing = acknowledged.Count(a => !cluster.Applied[id].TryGetValue(a.Offset, out var p) || !p.AsSpan().SequenceEqual(a.Payload));
        Assert.Fail($"node {id} is missing {missing} acknowledged records");
    }

    [Test]
    public async Task ThreeMembers_Replicate_SurviveTheLeadersDeath_AndTheOldLeaderCatchesUp()
    {
        await using var cluster = new LoopbackCluster(3);
        await cluster.StartAllAsync();
        var first = await cluster.AwaitLeaderAsync(ElectionWait);

        var before = await LoadAsync(cluster, "before", 300, clients: 8);
        Assert.That(before, Has.Count.EqualTo(300), "with a stable leader every replication is acknowledged");
        Assert.That(before.Select(a => a.Offset).Distinct().Count(), Is.EqualTo(300), "each record has its own offset");
        foreach (var id in cluster.Ids)
        {
            await AwaitAppliedAsync(cluster, id, before);
        }

        var status = first.Status;
        Assert.That(status.Followers, Has.Count.EqualTo(2));
        Assert.That(status.Followers.All(f => f.MatchIndex > 0), Is.True);

        // Kill the leader while clients are writing.
        var during = LoadAsync(cluster, "during", 300, clients: 8);
        await Task.Delay(50);
        await cluster.StopAsync(first.NodeId);
        var second = await cluster.AwaitLeaderAsync(ElectionWait, not: first.NodeId);
        Assert.That(second.NodeId, Is.Not.EqualTo(first.NodeId));
        var acknowledgedDuring = await during;
        var after = await LoadAsync(cluster, "after", 100, clients: 4);
        Assert.That(after, Has.Count.EqualTo(100), "the new leader commits");

        var acknowledged = before.Concat(acknowledgedDuring).Concat(after).ToList();
        foreach (var node in cluster.Running)
        {
            await AwaitAppliedAsync(cluster, node.NodeId, acknowledged);
            var read = new Dictionary<long, byte[]>();
            using var cts = new CancellationTokenSource();
            await foreach (var record in node.ReadCommittedAsync(0, cts.Token))
            {
                read[record.Offset] = record.Payload.ToArray();
                if (record.Offset >= acknowledged.Max(a => a.Offset))
                {
                    break;
                }
            }

            Assert.That(acknowledged.All(a => read.TryGetValue(a.Offset, out var p) && p.AsSpan().SequenceEqual(a.Payload)), Is.True,
                $"node {node.NodeId}'s committed log holds every acknowledged record at its offset");
        }

        // The old leader comes back with its own log and catches up from the new leader.
        await cluster.StartAsync(first.NodeId);
        await AwaitAppliedAsync(cluster, first.NodeId, acknowledged);
        var survivor = cluster.Applied[second.NodeId];
        Assert.That(cluster.Applied[first.NodeId].Keys.Where(survivor.ContainsKey).All(k => cluster.Applied[first.NodeId][k].AsSpan().SequenceEqual(survivor[k])),
            Is.True, "members agree on every offset both applied");
    }

    [Test]
    public async Task AFollower_RefusesToReplicate_AndNamesTheLeaderAndItsEndpoint()
    {
        await using var cluster = new LoopbackCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(ElectionWait);
        var follower = cluster.Running.First(n => n.NodeId != leader.NodeId);
        var ex = Assert.ThrowsAsync<NotLeaderException>(async () => await follower.ReplicateAsync(new byte[] { 1 }));
        Assert.Multiple(() =>
        {
            Assert.That(ex!.LeaderId, Is.EqualTo(leader.NodeId));
            Assert.That(ex.LeaderEndpoint, Is.Not.Null);
        });
    }

    [Test]
    public async Task AMember_ReplaysItsCommittedLog_AfterAFullRestart()
    {
        await using var cluster = new LoopbackCluster(3);
        await cluster.StartAllAsync();
        await cluster.AwaitLeaderAsync(ElectionWait);
        var acknowledged = await LoadAsync(cluster, "x", 50, clients: 4);
        foreach (var id in cluster.Ids.ToList())
        {
            await cluster.StopAsync(id);
        }

        await cluster.StartAllAsync();
        await cluster.AwaitLeaderAsync(ElectionWait);
        foreach (var id in cluster.Ids)
        {
            await AwaitAppliedAsync(cluster, id, acknowledged);
        }
    }

    [Test]
    public async Task ALeaderWithoutAQuorum_TimesOutAReplication_WithATypedError()
    {
        // Check-quorum off, so the leader keeps leading alone and the wait, not a step-down, ends the call.
        await using var cluster = new LoopbackCluster(3, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.Members,
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            Apply = o.Apply,
            Raft = new RaftOptions { CheckQuorum = false },
            ReplicateTimeout = TimeSpan.FromMilliseconds(300),
        });
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(ElectionWait);
        Assert.That(await leader.ReplicateAsync(new byte[] { 1 }), Is.GreaterThan(0));
        foreach (var id in cluster.Ids.Where(id => id != leader.NodeId).ToList())
        {
            await cluster.StopAsync(id);
        }

        var ex = Assert.ThrowsAsync<ReplicationTimeoutException>(async () => await leader.ReplicateAsync(new byte[] { 2 }));
        Assert.That(ex!.Timeout, Is.EqualTo(TimeSpan.FromMilliseconds(300)));
    }

    [Test]
    public async Task LeadershipChanges_AreAnnounced_OnEveryMember()
    {
        await using var cluster = new LoopbackCluster(3);
        await cluster.StartAllAsync();
        var first = await cluster.AwaitLeaderAsync(ElectionWait);
        await cluster.StopAsync(first.NodeId);
        var second = await cluster.AwaitLeaderAsync(ElectionWait, not: first.NodeId);
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(5);
        bool Announced(RaftNodeId member, RaftNodeId leader) =>
            cluster.LeadershipEvents.Any(e => e.Member == member && e.Event.LeaderId == leader && e.Event.IsThisNode == (member == leader));
        while (DateTimeOffset.UtcNow < deadline && !cluster.Running.All(n => Announced(n.NodeId, second.NodeId)))
        {
            await Task.Delay(10);
        }

        Assert.Multiple(() =>
        {
            Assert.That(cluster.Ids.All(id => Announced(id, first.NodeId)), Is.True, "every member announced the first leader");
            Assert.That(cluster.Running.All(n => Announced(n.NodeId, second.NodeId)), Is.True, "the survivors announced the second");
            Assert.That(cluster.LeadershipEvents.Where(e => e.Event.LeaderId == second.NodeId).All(e => e.Event.Term > 1), Is.True);
        });
    }

    [Test]
    public async Task ReadCommitted_ReturnsEveryRecordInOrder_AcrossManyReadChunks_ThenWaitsForMore()
    {
        await using var cluster = new LoopbackCluster(3);
        await cluster.StartAllAsync();
        await cluster.AwaitLeaderAsync(ElectionWait);
        var acknowledged = (await LoadAsync(cluster, "r", 10_000, clients: 64)).OrderBy(a => a.Offset).ToList();
        Assert.That(acknowledged, Has.Count.EqualTo(10_000));
        var follower = cluster.Running.First(n => n.Status.Role != ReplicaRole.Leader);
        await AwaitAppliedAsync(cluster, follower.NodeId, acknowledged);

        using var cts = new CancellationTokenSource();
        var read = new List<CommittedRecord>();
        var reader = Task.Run(async () =>
        {
            await foreach (var record in follower.ReadCommittedAsync(0, cts.Token))
            {
                read.Add(record);
                if (read.Count == acknowledged.Count + 1)
                {
                    return;
                }
            }
        });

        var late = await cluster.ReplicateAsync(Payload("late", 0), TimeSpan.FromSeconds(20));
        await reader.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Multiple(() =>
        {
            Assert.That(read.Take(acknowledged.Count).Select(r => r.Offset), Is.EqualTo(acknowledged.Select(a => a.Offset)));
            Assert.That(read.Take(acknowledged.Count).Zip(acknowledged).All(p => p.First.Payload.Span.SequenceEqual(p.Second.Payload)), Is.True);
            Assert.That(read[^1].Offset, Is.EqualTo(late), "the reader woke for a record committed after it caught up");
        });
    }

    [Test]
    public async Task ALeaderThatFails_StopsLikeACrash_ReportsWhy_AndTheOthersCarryOn()
    {
        // A failure on the Raft loop (here the leader's own state machine throwing; a disk error or a broken invariant
        // takes the same path) once left a zombie: its connections open, its loop dead, callers waiting for their
        // timeouts and readers forever. It must fail-stop: report the fault, fail every call, let the others elect.
        ulong victim = 0; // a member id, read from the members' apply threads
        await using var cluster = new LoopbackCluster(3)
        {
            ApplyFails = (id, record) => id.Value == Interlocked.Read(ref victim) && record.Payload.Span.SequenceEqual("poison"u8),
        };
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(ElectionWait);
        var before = await LoadAsync(cluster, "before", 50, clients: 4);
        Interlocked.Exchange(ref victim, leader.NodeId.Value);
        using var reading = new CancellationTokenSource(ElectionWait);
        var reader = Task.Run(async () =>
        {
            await foreach (var _ in leader.ReadCommittedAsync(0, reading.Token))
            {
            }
        });

        var failed = Assert.ThrowsAsync<InvalidOperationException>(async () => await leader.ReplicateAsync("poison"u8.ToArray()));
        Assert.That(failed!.InnerException, Is.TypeOf<ApplyFailedException>(), "the caller learns why");
        Assert.That(leader.Status.Fault, Is.SameAs(failed.InnerException));
        Assert.That(leader.Status.Role, Is.EqualTo(ReplicaRole.Stopped));
        Assert.That(leader.Status.LeaderId, Is.EqualTo(RaftNodeId.None));
        Assert.That(cluster.LeadershipEvents.Any(e => e.Member == leader.NodeId && e.Event.LeaderId.IsNone && !e.Event.IsThisNode), Is.True,
            "subscribers hear that this member no longer leads");
        var again = Assert.ThrowsAsync<InvalidOperationException>(async () => await leader.ReplicateAsync("after"u8.ToArray()));
        Assert.That(again!.InnerException, Is.SameAs(failed.InnerException), "later calls fail at once, saying why");
        var readFailure = Assert.ThrowsAsync<InvalidOperationException>(async () => await reader);
        Assert.That(readFailure!.InnerException, Is.SameAs(failed.InnerException), "a reader waiting for more is told, not left waiting");

        var next = await cluster.AwaitLeaderAsync(ElectionWait, not: leader.NodeId);
        var after = await LoadAsync(cluster, "after", 50, clients: 4);
        Assert.That(after, Has.Count.EqualTo(50), "the others elect without the failed member and commit");
        Assert.That(cluster.Applied[next.NodeId].Values.Any(p => p.AsSpan().SequenceEqual("poison"u8)), Is.True,
            "the poison record had committed: the failure came after the quorum made it durable");

        // Restarted over the same directory (with a state machine that accepts the record) it catches up.
        Interlocked.Exchange(ref victim, 0);
        await cluster.StopAsync(leader.NodeId);
        await cluster.StartAsync(leader.NodeId);
        await AwaitAppliedAsync(cluster, leader.NodeId, before.Concat(after));
    }

    [Test]
    public async Task AMemberThatCannotBindItsPort_FailsToStart_AndReleasesItsLog()
    {
        using var dir = new Harness.TempDirectory();
        using var squatter = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        squatter.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        squatter.Listen();
        var taken = (System.Net.IPEndPoint)squatter.LocalEndPoint!;
        var options = new ReplicatedLogOptions
        {
            NodeId = new RaftNodeId(1),
            Members = new Dictionary<RaftNodeId, System.Net.IPEndPoint> { [new RaftNodeId(1)] = taken },
            Directory = dir.Path,
        };
        var member = new ReplicatedLog(options);
        Assert.ThrowsAsync<System.Net.Sockets.SocketException>(() => member.StartAsync());
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await member.ReplicateAsync(new byte[] { 1 }));
        await member.DisposeAsync();

        squatter.Close();
        await using var again = new ReplicatedLog(options);
        await again.StartAsync();
        Assert.That(again.NodeId, Is.EqualTo(new RaftNodeId(1)), "the log's directory lock was released");
    }
}
