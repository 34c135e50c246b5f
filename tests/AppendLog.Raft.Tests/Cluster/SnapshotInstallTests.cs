using System.Text;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>Snapshots end to end over real storage: periodic snapshots, prefix truncation, InstallSnapshot.</summary>
[NonParallelizable]
public sealed class SnapshotInstallTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static byte[] Payload(int i) => Encoding.UTF8.GetBytes($"record-{i:D6}-" + new string('s', 480));

    private static LoopbackCluster NewCluster() => new(3, o => new ReplicatedLogOptions
    {
        NodeId = o.NodeId,
        Members = o.Members,
        Directory = o.Directory,
        RandomSeed = o.RandomSeed,
        StateMachine = o.StateMachine,
        SnapshotInterval = 400,
        SegmentSize = 1024 * 1024,
        MaximumCachedLogBytes = 64 * 1024,
        Raft = new RaftOptions { MaximumBatchBytes = 16 * 1024, MaximumInflightAppends = 4 },
    })
    {
        UseStateMachine = true,
    };

    private static async Task<List<(long Offset, int I)>> ReplicateAsync(LoopbackCluster cluster, int from, int count)
    {
        var acknowledged = new List<(long, int)>();
        for (var i = from; i < from + count; i += 50)
        {
            var batch = await Task.WhenAll(Enumerable.Range(i, Math.Min(50, from + count - i)).Select(async j => (await cluster.ReplicateAsync(Payload(j), Wait), j)));
            acknowledged.AddRange(batch.Where(b => b.Item1 is not null).Select(b => (b.Item1!.Value, b.j)));
        }

        Assert.That(acknowledged, Has.Count.EqualTo(count), "every record commits");
        return acknowledged;
    }

    private static async Task AwaitAppliedAsync(LoopbackCluster cluster, RaftNodeId id, List<(long Offset, int I)> acknowledged)
    {
        var deadline = DateTimeOffset.UtcNow + Wait;
        while (DateTimeOffset.UtcNow < deadline && !acknowledged.All(a => cluster.Applied[id].ContainsKey(a.Offset)))
        {
            await Task.Delay(20);
        }

        Assert.Multiple(() =>
        {
            foreach (var (offset, i) in acknowledged)
            {
                Assert.That(cluster.Applied[id].TryGetValue(offset, out var payload) ? payload : null, Is.EqualTo(Payload(i)), $"offset {offset} on node {id}");
            }
        });
    }

    [Test]
    public async Task AFollowerBehindTheLeadersSnapshot_InstallsIt_ContinuesAtTheSameOffsets_AndRestartsFromItsOwnSnapshot()
    {
        await using var cluster = NewCluster();
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var lagging = cluster.Ids.First(id => id != leader.NodeId);
        await cluster.StopAsync(lagging);

        // ~1.5 MB while it is down: the leader snapshots every 400 offsets and deletes the 1 MiB segments below.
        var acknowledged = await ReplicateAsync(cluster, 0, 3000);
        leader = await cluster.AwaitLeaderAsync(Wait);
        Assert.Multiple(() =>
        {
            Assert.That(leader.SnapshotCounts.Taken, Is.GreaterThanOrEqualTo(5), "a snapshot every 400 offsets");
            Assert.That(leader.LogStartOffset, Is.GreaterThan(0), "whole segments below the snapshot were deleted");
        });

        // A reader asking for compacted records is told so, with where the log starts now; from there it reads.
        var compacted = Assert.ThrowsAsync<RecordsCompactedException>(async () =>
        {
            await foreach (var _ in leader.ReadCommittedAsync(0))
            {
            }
        });
        Assert.That(compacted!.RequestedOffset, Is.Zero);
        Assert.That(compacted.StartOffset, Is.EqualTo(leader.LogStartOffset));
        await using (var records = leader.ReadCommittedAsync(compacted.StartOffset).GetAsyncEnumerator())
        {
            Assert.That(await records.MoveNextAsync(), Is.True);
            Assert.That(records.Current.Offset, Is.GreaterThanOrEqualTo(compacted.StartOffset));
        }

        await cluster.StartAsync(lagging);
        await AwaitAppliedAsync(cluster, lagging, acknowledged);
        var follower = cluster.Node(lagging);
        Assert.Multiple(() =>
        {
            Assert.That(follower.SnapshotCounts.Restored, Is.GreaterThanOrEqualTo(1), "the follower installed the leader's snapshot");
            Assert.That(follower.LogStartOffset, Is.GreaterThan(0), "its log restarted at the snapshot's end offset");
        });

        // Records after the install land at the same offsets on every member.
        var more = await ReplicateAsync(cluster, 3000, 200);
        foreach (var id in cluster.Ids)
        {
            await AwaitAppliedAsync(cluster, id, more);
        }

        // A restart restores its own snapshot, then applies the rest of its log.
        await cluster.StopAsync(lagging);
        await cluster.StartAsync(lagging);
        await AwaitAppliedAsync(cluster, lagging, [.. acknowledged, .. more]);
        Assert.That(cluster.Node(lagging).SnapshotCounts.Restored, Is.EqualTo(1), "restored once at start, from its own snapshot");
    }
}
