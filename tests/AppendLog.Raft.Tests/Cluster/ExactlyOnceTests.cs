using System.Buffers.Binary;
using System.Text;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>
/// Exactly-once proposals with client sessions (Raft thesis §6.3) on real members: a retried sequence is applied once and
/// answered with the first attempt's response, across leader changes, restarts and snapshots.
/// </summary>
[NonParallelizable]
public sealed class ExactlyOnceTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static LoopbackCluster NewCluster(long snapshotInterval = 0, int sessionsMax = ReplicatedLogOptions.DefaultMaximumClientSessions) =>
        new(3, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.Members,
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            StateMachine = o.StateMachine,
            SnapshotInterval = snapshotInterval,
            SegmentSize = 1024 * 1024,
            MaximumClientSessions = sessionsMax,
            ReplicateTimeout = TimeSpan.FromSeconds(5),
        })
        {
            UseStateMachine = true,
        };

    private static byte[] Payload(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Filler(int i) => Encoding.UTF8.GetBytes($"filler {i:D4} " + new string('f', 4000));

    /// <summary>How many times a member's state machine applied <paramref name="payload"/>.</summary>
    private static int Applications(LoopbackCluster cluster, RaftNodeId id, byte[] payload) =>
        cluster.Applied[id].Values.Count(p => p.AsSpan().SequenceEqual(payload));

    /// <summary>Calls the session overload through whoever leads, retrying the same sequence while the outcome is unknown.</summary>
    private static async Task<ReplicationResult> ReplicateOnceAsync(LoopbackCluster cluster, byte[] payload, long session, long sequence)
    {
        var deadline = DateTimeOffset.UtcNow + Wait;
        while (true)
        {
            var leader = cluster.Running.FirstOrDefault(n => n.Status.Role == ReplicaRole.Leader);
            try
            {
                if (leader is not null)
                {
                    return await leader.ReplicateAsync(payload, session, sequence);
                }
            }
            catch (Exception ex) when (ex is not SessionExpiredException
                                       && ex is NotLeaderException or ReplicationTimeoutException or ObjectDisposedException or InvalidOperationException
                                       && DateTimeOffset.UtcNow < deadline)
            {
                // The outcome is unknown (a leader went away, or the member stopped): retry the same sequence.
            }

            Assert.That(DateTimeOffset.UtcNow, Is.LessThan(deadline), "the retries completed in time");
            await Task.Delay(20);
        }
    }

    private static async Task<long> OpenSessionAsync(LoopbackCluster cluster)
    {
        var leader = await cluster.AwaitLeaderAsync(Wait);
        return await leader.OpenSessionAsync();
    }

    private static async Task AwaitAllAppliedAsync(LoopbackCluster cluster, byte[] payload)
    {
        var deadline = DateTimeOffset.UtcNow + Wait;
        while (DateTimeOffset.UtcNow < deadline && cluster.Running.Any(n => Applications(cluster, n.NodeId, payload) == 0))
        {
            await Task.Delay(20);
        }
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task ARetryOfTheSameSequence_ReturnsTheFirstResult_AndIsAppliedOnce()
    {
        await using var cluster = NewCluster();
        await cluster.StartAllAsync();
        var session = await OpenSessionAsync(cluster);
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var payload = Payload("transfer 10");

        var first = await leader.ReplicateAsync(payload, session, 1);
        var retry = await leader.ReplicateAsync(payload, session, 1);
        Assert.Multiple(() =>
        {
            Assert.That(first.IsDuplicate, Is.False);
            Assert.That(retry.IsDuplicate, Is.True, "the retry's copy was not applied");
            Assert.That(retry.Offset, Is.EqualTo(first.Offset), "the retry reports the first copy's offset");
            Assert.That(retry.Response.ToArray(), Is.EqualTo(first.Response.ToArray()), "and its response");
            Assert.That(first.Response.Length, Is.EqualTo(8), "the state machine's response came back");
        });

        // The next sequence is applied; then the older one is refused, not applied.
        var next = await leader.ReplicateAsync(Payload("transfer 11"), session, 2);
        Assert.That(next.IsDuplicate, Is.False);
        Assert.ThrowsAsync<SessionExpiredException>(async () => await leader.ReplicateAsync(payload, session, 1));
        Assert.ThrowsAsync<SessionExpiredException>(async () => await leader.ReplicateAsync(payload, session + 1_000_000, 1), "an unknown session");

        await AwaitAllAppliedAsync(cluster, payload);
        foreach (var id in cluster.Ids)
        {
            Assert.That(Applications(cluster, id, payload), Is.EqualTo(1), $"node {id} applied the record once");
        }

        // Readers of the log see the retry's copy too: it is in the log, only the state machine skips it.
        var copies = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await foreach (var record in leader.ReadCommittedAsync(0, cts.Token))
            {
                copies += record.Payload.Span.SequenceEqual(payload) ? 1 : 0;
            }
        }
        catch (OperationCanceledException)
        {
        }

        Assert.That(copies, Is.EqualTo(4), "the first copy, the retry, the refused older sequence and the refused unknown session are all in the log; the opening is not shown");
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task ARetryAfterTheLeaderDied_OnTheNewLeader_IsAppliedOnceEverywhere()
    {
        await using var cluster = NewCluster();
        await cluster.StartAllAsync();
        var session = await OpenSessionAsync(cluster);
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var payload = Payload("debit 5");

        // The first attempt commits, but its answer is lost with the leader (as if the connection broke).
        var first = await leader.ReplicateAsync(payload, session, 1);
        await AwaitAllAppliedAsync(cluster, payload);
        await cluster.StopAsync(leader.NodeId);
        var retry = await ReplicateOnceAsync(cluster, payload, session, 1);
        Assert.Multiple(() =>
        {
            Assert.That(retry.IsDuplicate, Is.True, "the new leader's members knew the first attempt was applied");
            Assert.That(retry.Offset, Is.EqualTo(first.Offset));
            Assert.That(retry.Response.ToArray(), Is.EqualTo(first.Response.ToArray()));
        });

        // A caller that gives up at once (as after a timeout) does not know whether its record will commit; retrying the
        // same sequence until it has an answer applies it exactly once either way.
        var payload2 = Payload("debit 6");
        var newLeader = await cluster.AwaitLeaderAsync(Wait);
        using (var gaveUp = new CancellationTokenSource())
        {
            var attempt = newLeader.ReplicateAsync(payload2, session, 2, gaveUp.Token);
            await gaveUp.CancelAsync();
            try
            {
                await attempt;
            }
            catch (OperationCanceledException)
            {
            }
        }

        var second = await ReplicateOnceAsync(cluster, payload2, session, 2);
        var again = await ReplicateOnceAsync(cluster, payload2, session, 2);
        Assert.That(again.Offset, Is.EqualTo(second.Offset));
        Assert.That(again.IsDuplicate, Is.True);
        await AwaitAllAppliedAsync(cluster, payload2);
        foreach (var node in cluster.Running)
        {
            Assert.That(Applications(cluster, node.NodeId, payload), Is.EqualTo(1), $"node {node.NodeId} applied sequence 1 once");
            Assert.That(Applications(cluster, node.NodeId, payload2), Is.EqualTo(1), $"node {node.NodeId} applied sequence 2 once");
        }
    }

    [TestCase(0L)]
    [TestCase(40L)]
    [CancelAfter(180_000)]
    public async Task TheSessionTable_SurvivesARestartOfEveryMember_AndSnapshots(long snapshotInterval)
    {
        await using var cluster = NewCluster(snapshotInterval);
        await cluster.StartAllAsync();
        var session = await OpenSessionAsync(cluster);
        var payload = Payload("set x=1");
        var first = await ReplicateOnceAsync(cluster, payload, session, 1);

        // With snapshots every 40 offsets, 1.6 MB more put the session record and its opening below the snapshot and
        // out of the log (its first 1 MiB segment is deleted): only the snapshot's session table still knows them.
        for (var i = 0; i < 400; i += 50)
        {
            await Task.WhenAll(Enumerable.Range(i, 50).Select(j => cluster.ReplicateAsync(Filler(j), Wait)));
        }

        await AwaitAllAppliedAsync(cluster, Filler(399));
        foreach (var id in cluster.Ids.ToList())
        {
            await cluster.StopAsync(id);
        }

        foreach (var id in cluster.Ids.ToList())
        {
            await cluster.StartAsync(id);
        }

        if (snapshotInterval > 0)
        {
            Assert.That(cluster.Running.All(n => n.SnapshotCounts.Restored >= 1), Is.True, "every member restarted from a snapshot");
            Assert.That(cluster.Running.All(n => n.LogStartOffset > first.Offset), Is.True, "the session record is no longer in any log");
        }

        var retry = await ReplicateOnceAsync(cluster, payload, session, 1);
        Assert.Multiple(() =>
        {
            Assert.That(retry.IsDuplicate, Is.True, "the restarted members still knew sequence 1");
            Assert.That(retry.Offset, Is.EqualTo(first.Offset));
            Assert.That(retry.Response.ToArray(), Is.EqualTo(first.Response.ToArray()));
        });

        // Every member has replayed (or restored) past the retry once it applied a record replicated after it.
        await ReplicateOnceAsync(cluster, Payload("after restart"), session, 2);
        await AwaitAllAppliedAsync(cluster, Payload("after restart"));
        foreach (var node in cluster.Running)
        {
            Assert.That(Applications(cluster, node.NodeId, payload), Is.EqualTo(1), $"node {node.NodeId} holds it once");
        }
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task OpeningMoreSessionsThanTheLimit_EvictsTheLeastRecentlyUsed_WhoseRetriesExpire()
    {
        await using var cluster = NewCluster(sessionsMax: 2);
        await cluster.StartAllAsync();
        var a = await OpenSessionAsync(cluster);
        var b = await OpenSessionAsync(cluster);
        await ReplicateOnceAsync(cluster, Payload("a1"), a, 1);
        await ReplicateOnceAsync(cluster, Payload("b1"), b, 1);
        await ReplicateOnceAsync(cluster, Payload("a2"), a, 2); // b is now the least recently used
        var c = await OpenSessionAsync(cluster);

        var leader = await cluster.AwaitLeaderAsync(Wait);
        Assert.ThrowsAsync<SessionExpiredException>(async () => await leader.ReplicateAsync(Payload("b1"), b, 1));
        Assert.That((await leader.ReplicateAsync(Payload("a2"), a, 2)).IsDuplicate, Is.True, "a is kept");
        Assert.That((await leader.ReplicateAsync(Payload("c1"), c, 1)).IsDuplicate, Is.False);
        Assert.That(BinaryPrimitives.ReadInt64LittleEndian((await leader.ReplicateAsync(Payload("c1"), c, 1)).Response.Span), Is.GreaterThan(0));
    }

    /// <summary>
    /// Clients that each keep one record in flight in their own session, retrying every unknown outcome with the same
    /// sequence, while the leader is stopped and started again twice: every record is applied exactly once on every
    /// member, at the offset its client was finally told.
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task RetriesThroughLeaderRestarts_ApplyEveryRecordExactlyOnce()
    {
        await using var cluster = NewCluster();
        await cluster.StartAllAsync();
        const int clients = 4;
        const int sequences = 25;
        var results = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        var sessions = new long[clients];
        for (var c = 0; c < clients; c++)
        {
            sessions[c] = await OpenSessionAsync(cluster);
        }

        var kills = 0;
        var chaos = Task.Run(async () =>
        {
            for (var kill = 0; kill < 2; kill++)
            {
                await Task.Delay(400);
                var leader = await cluster.AwaitLeaderAsync(Wait);
                await cluster.StopAsync(leader.NodeId);
                Interlocked.Increment(ref kills);
                await Task.Delay(200);
                await cluster.StartAsync(leader.NodeId);
            }
        });
        var counts = new int[clients];
        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            // Keep writing until the chaos is over, and at least the planned number of sequences.
            for (var sequence = 1; sequence <= sequences || !chaos.IsCompleted; sequence++)
            {
                var text = $"client {c} sequence {sequence}";
                var result = await ReplicateOnceAsync(cluster, Payload(text), sessions[c], sequence);
                results[text] = result.Offset;
                counts[c] = sequence;
                await Task.Delay(5);
            }
        })));
        await chaos;
        Assert.That(kills, Is.EqualTo(2), "the leader was stopped twice while the clients wrote");

        await ReplicateOnceAsync(cluster, Payload("fence"), sessions[0], counts[0] + 1);
        await AwaitAllAppliedAsync(cluster, Payload("fence"));
        foreach (var node in cluster.Running)
        {
            var applied = cluster.Applied[node.NodeId];
            Assert.Multiple(() =>
            {
                foreach (var (text, offset) in results)
                {
                    Assert.That(Applications(cluster, node.NodeId, Payload(text)), Is.EqualTo(1), $"{text} on node {node.NodeId}");
                    Assert.That(applied.TryGetValue(offset, out var payload) ? payload : null, Is.EqualTo(Payload(text)), $"{text} at the offset its client was told");
                }
            });
        }
    }
}
