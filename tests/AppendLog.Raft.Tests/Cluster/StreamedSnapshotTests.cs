using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using AppendLog.Raft.Core;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>
/// Snapshots bounded by the disk, not by memory, over real storage and TCP: taken on the apply task into a file while the
/// Raft loop goes on, sent in chunks that resume after a lost chunk or a reconnection, and installed on a lagging member.
/// The default run moves a 4 MiB image in 64 KiB chunks; set APPENDLOG_RAFT_SNAPSHOT_MIB=N (for example 256, or 1100 for
/// more than 1 GiB) to move an N MiB image in the default 1 MiB chunks and see the memory peak.
/// </summary>
[NonParallelizable]
public sealed class StreamedSnapshotTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static byte[] Payload(int i) => Encoding.UTF8.GetBytes($"record-{i:D6}");

    private static async Task<List<(long Offset, int I)>> ReplicateAsync(LoopbackCluster cluster, int from, int count)
    {
        var acknowledged = new List<(long, int)>();
        for (var i = from; i < from + count; i += 10)
        {
            var batch = await Task.WhenAll(Enumerable.Range(i, Math.Min(10, from + count - i)).Select(async j => (await cluster.ReplicateAsync(Payload(j), Wait), j)));
            acknowledged.AddRange(batch.Where(b => b.Item1 is not null).Select(b => (b.Item1!.Value, b.j)));
        }

        Assert.That(acknowledged, Has.Count.EqualTo(count), "every record commits");
        return acknowledged;
    }

    private static Task AwaitAsync(Func<bool> condition, TimeSpan timeout, string what) => AwaitAsync(condition, timeout, () => what);

    private static async Task AwaitAsync(Func<bool> condition, TimeSpan timeout, Func<string> what)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (!condition())
        {
            if (DateTimeOffset.UtcNow > deadline)
            {
                Assert.Fail($"timed out waiting until {what()}");
            }

            await Task.Delay(20);
        }
    }

    private static long Terms(LoopbackCluster cluster) => cluster.Running.Max(n => n.Status.Term);

    [Test]
    [CancelAfter(600_000)]
    public async Task ALaggingMember_InstallsALargeSnapshotInChunks_ResumingAfterALostChunkAndAReconnection_InBoundedMemory()
    {
        var mib = Environment.GetEnvironmentVariable("APPENDLOG_RAFT_SNAPSHOT_MIB");
        var large = !string.IsNullOrEmpty(mib);
        var blobBytes = (large ? long.Parse(mib!, CultureInfo.InvariantCulture) : 4) * 1024 * 1024;
        var chunkBytes = large ? RaftOptions.DefaultSnapshotChunkBytes : 64 * 1024;
        var wait = large ? TimeSpan.FromMinutes(8) : Wait;
        var machines = new ConcurrentDictionary<RaftNodeId, BlobStateMachine>();
        LoopbackCluster? self = null;
        await using var cluster = self = new LoopbackCluster(3, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.Members,
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            StateMachine = machines[o.NodeId] = new BlobStateMachine(self!.Applied[o.NodeId], blobBytes),
            SnapshotInterval = 100,
            ReplicateTimeout = wait,

            // One append in flight to a member that is down: the leader's send queue then holds no run of entries that
            // would let the member catch up without the snapshot when it returns.
            Raft = new RaftOptions { SnapshotChunkBytes = chunkBytes, MaximumInflightAppends = 1 },
        })
        {
            UseStateMachine = true,
        };
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var lagging = cluster.Ids.First(id => id != leader.NodeId);
        await cluster.StopAsync(lagging);

        var acknowledged = await ReplicateAsync(cluster, 0, 150);
        // Every running member compacts (whichever leads when the lagging member returns sends it a snapshot).
        await AwaitAsync(() => cluster.Running.All(n => n.SnapshotIndex > 0), wait, "every running member compacted its log into a snapshot");
        var termBefore = Terms(cluster);

        // Lose the fourth chunk once, and cut every connection of the sender once the image is half sent.
        var offsets = new ConcurrentQueue<long>();
        var sends = new ConcurrentQueue<(long Term, long Offset)>();
        long imageBytes = 0;
        var lost = 0;
        var cut = 0;
        var transports = cluster.Running.Select(n => n.Transport!).ToList();
        foreach (var transport in transports)
        {
            transport.DropOutgoing = m =>
            {
                if (m.Type != RaftMessageType.Snapshot || m.To != lagging)
                {
                    return false;
                }

                offsets.Enqueue(m.SnapshotOffset);
                sends.Enqueue((m.Term, m.SnapshotOffset));
                Interlocked.Exchange(ref imageBytes, m.SnapshotLength);
                if (m.SnapshotOffset == 3L * chunkBytes && Interlocked.Exchange(ref lost, 1) == 0)
                {
                    return true;
                }

                if (m.SnapshotOffset >= m.SnapshotLength / 2 && Interlocked.Exchange(ref cut, 1) == 0)
                {
                    transport.DropConnections();
                }

                return false;
            };
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        var managedBefore = GC.GetTotalMemory(forceFullCollection: true);
        var workingSetBefore = Environment.WorkingSet;
        long managedPeak = managedBefore, workingSetPeak = workingSetBefore;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                managedPeak = Math.Max(managedPeak, GC.GetTotalMemory(forceFullCollection: false));
                workingSetPeak = Math.Max(workingSetPeak, Environment.WorkingSet);
                await Task.Delay(10);
            }
        });

        var clock = Stopwatch.StartNew();
        await cluster.StartAsync(lagging);
        var follower = cluster.Node(lagging);
        await AwaitAsync(() => follower.SnapshotCounts.Restored >= 1 && acknowledged.All(a => cluster.Applied[lagging].ContainsKey(a.Offset)), wait,
            () => $"the lagging member installed the snapshot and holds every record (sent {string.Join(",", offsets.Select(o => o / chunkBytes))}; terms {termBefore} → {Terms(cluster)}; applied {cluster.Applied[lagging].Count}; {follower.Status.Fault})");
        var elapsed = clock.Elapsed;
        await sampling.CancelAsync();
        await sampler;
        transports.ForEach(t => t.DropOutgoing = null);

        var sent = offsets.ToList();
        var lostAt = 3L * chunkBytes;
        var lostTerm = sends.First(s => s.Offset == lostAt).Term;
        var afterLoss = sends.SkipWhile(s => s.Offset != lostAt).Skip(1).Where(s => s.Term == lostTerm && s.Offset <= lostAt).ToList();
        TestContext.Out.WriteLine(
            $"image {imageBytes / (1024 * 1024)} MiB in {chunkBytes / 1024} KiB chunks: installed in {elapsed.TotalSeconds:F1} s; " +
            $"{sent.Count} chunks sent for {(imageBytes + chunkBytes - 1) / chunkBytes}; peak managed heap +{(managedPeak - managedBefore) / (1024 * 1024)} MiB, " +
            $"peak working set +{(workingSetPeak - workingSetBefore) / (1024 * 1024)} MiB (three members in this process); " +
            $"terms {termBefore} → {Terms(cluster)}, first chunk sent {sent.Count(o => o == 0)} times");
        Assert.Multiple(() =>
        {
            Assert.That(machines[lagging].LastRestoredBlob, Is.EqualTo((blobBytes, true)), "the whole image arrived intact and streamed into the state machine");
            Assert.That(lost, Is.EqualTo(1), "a chunk was lost");
            Assert.That(cut, Is.EqualTo(1), "the connections were cut mid-transfer");
            Assert.That(afterLoss.Select(s => s.Offset).FirstOrDefault(-1), Is.EqualTo(lostAt), "the transfer resumed at the lost chunk, not at the start");
            Assert.That(sent.Count, Is.LessThan((((imageBytes + chunkBytes - 1) / chunkBytes) * 3 / 2) + 16), "chunks are sent again only when lost or slow to be answered");
            Assert.That(sent.Max(), Is.LessThan(imageBytes), "every message carried one chunk");
            if (large)
            {
                Assert.That(managedPeak - managedBefore, Is.LessThan(Math.Min(imageBytes / 4, 128L * 1024 * 1024)), "the image never sat in memory");
            }
        });

        // The member continues at the same offsets, and restarts from the snapshot it installed.
        var more = await ReplicateAsync(cluster, 150, 20);
        await AwaitAsync(() => more.All(a => cluster.Applied[lagging].ContainsKey(a.Offset)), Wait, "the member applies what follows");
        await cluster.StopAsync(lagging);
        await cluster.StartAsync(lagging);
        await AwaitAsync(() => acknowledged.Concat(more).All(a => cluster.Applied[lagging].ContainsKey(a.Offset)), wait,
            "the restarted member restores its snapshot from disk and applies the rest");
        Assert.That(machines[lagging].LastRestoredBlob, Is.EqualTo((blobBytes, true)));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task ASlowSnapshotWriter_DoesNotStopTheRaftLoop_NoMemberStartsAnElection()
    {
        // Writing a snapshot takes 5 maximum election timeouts on every member. Taken on the Raft loop (as it was), the
        // leader's heartbeats stopped meanwhile and the others elected a new leader.
        var machines = new ConcurrentDictionary<RaftNodeId, BlobStateMachine>();
        LoopbackCluster? self = null;
        await using var cluster = self = new LoopbackCluster(3, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.Members,
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            StateMachine = machines[o.NodeId] = new BlobStateMachine(self!.Applied[o.NodeId], 1024) { SnapshotDelay = TimeSpan.FromMilliseconds(1500) },
            SnapshotInterval = 50,
        })
        {
            UseStateMachine = true,
        };
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var term = Terms(cluster);
        var acknowledged = await ReplicateAsync(cluster, 0, 60);
        await AwaitAsync(() => machines.Values.All(m => m.SnapshotsWritten >= 1), Wait, "every member wrote a snapshot");
        Assert.Multiple(() =>
        {
            Assert.That(Terms(cluster), Is.EqualTo(term), "no election while the snapshots were written");
            Assert.That(cluster.Running.All(n => n.Status.LeaderId == leader.NodeId), Is.True, "every member kept its leader");
            Assert.That(leader.SnapshotCounts.Taken, Is.GreaterThanOrEqualTo(1));
        });
        var more = await ReplicateAsync(cluster, 60, 10);
        Assert.That(more.Select(m => m.Offset), Is.All.GreaterThan(acknowledged.Max(a => a.Offset)));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task ASlowStateMachine_DoesNotStopTheRaftLoop_NoMemberStartsAnElection()
    {
        // One record takes 5 maximum election timeouts to apply, on every member. Applied on the Raft loop (as it was),
        // no heartbeat left or was answered meanwhile, and the members elected a new leader.
        var slow = "slow"u8.ToArray();
        LoopbackCluster? self = null;
        await using var cluster = self = new LoopbackCluster(3, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.Members,
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            Apply = async (record, cancellationToken) =>
            {
                if (record.Payload.Span.SequenceEqual(slow))
                {
                    await Task.Delay(1500, cancellationToken);
                }

                self!.Applied[o.NodeId][record.Offset] = record.Payload.ToArray();
            },
        });
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(Wait);
        await ReplicateAsync(cluster, 0, 10);
        var term = Terms(cluster);
        var clock = Stopwatch.StartNew();
        var slowOffset = await leader.ReplicateAsync(slow);
        Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(1.4)), "the call completed once the record was applied here");
        var after = await leader.ReplicateAsync(Payload(10));
        await AwaitAsync(() => cluster.Ids.All(id => cluster.Applied[id].ContainsKey(after)), Wait, "every member applied past the slow record");
        Assert.Multiple(() =>
        {
            Assert.That(Terms(cluster), Is.EqualTo(term), "no election while the slow record was applied");
            Assert.That(cluster.Running.All(n => n.Status.LeaderId == leader.NodeId), Is.True, "every member kept its leader");
            Assert.That(after, Is.GreaterThan(slowOffset));
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task WhileTheStateMachineIsStuck_CommitsGoOn_ButCommittedUnappliedEntriesStayBounded()
    {
        const int queuedMax = 8;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        LoopbackCluster? self = null;
        await using var cluster = self = new LoopbackCluster(3, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.Members,
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            ApplyEntriesQueuedMax = queuedMax,
            Apply = async (record, cancellationToken) =>
            {
                await gate.Task.WaitAsync(cancellationToken);
                self!.Applied[o.NodeId][record.Offset] = record.Payload.ToArray();
            },
        });
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var calls = new List<Task<long>>();
        for (var i = 0; i < 120; i++)
        {
            calls.Add(leader.ReplicateAsync(Payload(i)).AsTask());
            await Task.Delay(2); // mostly one record per entry
        }

        await AwaitAsync(() => leader.ApplyProgress.Committed > leader.ApplyProgress.Applied + (4 * queuedMax), Wait,
            "the leader kept committing although nothing was applied");
        Assert.Multiple(() =>
        {
            foreach (var member in cluster.Running)
            {
                var (handedOut, applied, _) = member.ApplyProgress;
                Assert.That(handedOut - applied, Is.LessThanOrEqualTo(queuedMax), $"member {member.NodeId}: committed entries handed to the state machine");
            }

            Assert.That(calls.Any(c => c.IsCompleted), Is.False, "a replication completes only once applied here");
        });

        gate.SetResult();
        var offsets = await Task.WhenAll(calls);
        Assert.That(offsets.Distinct().Count(), Is.EqualTo(calls.Count), "every call got its own offset");
        await AwaitAsync(() => cluster.Ids.All(id => offsets.All(cluster.Applied[id].ContainsKey)), Wait, "every member applied everything");
    }
}
