using System.Text;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>Real members whose Raft logs keep only a small budget of batches in memory.</summary>
[NonParallelizable]
public sealed class CatchUpTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private const long CacheBytes = 16 * 1024;

    private static byte[] Payload(int i) => Encoding.UTF8.GetBytes($"record-{i:D6}-" + new string('x', 100));

    [Test]
    public async Task AFollowerRestartedFarBehind_CatchesUpFromBatchesReadBackFromDisk_WithinTheMemoryBudget()
    {
        await using var cluster = new LoopbackCluster(3, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.Members,
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            Apply = o.Apply,
            MaximumCachedLogBytes = CacheBytes,
            Raft = new RaftOptions { MaximumBatchBytes = 4096, MaximumInflightAppends = 4 },
        });
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var lagging = cluster.Ids.First(id => id != leader.NodeId);
        await cluster.StopAsync(lagging);

        // Far behind: ~350 KB of records (20x the budget) committed by the other two while it is down.
        const int count = 3000;
        var acknowledged = new List<(long Offset, int I)>();
        for (var i = 0; i < count; i += 50)
        {
            var batch = await Task.WhenAll(Enumerable.Range(i, 50).Select(async j => (await cluster.ReplicateAsync(Payload(j), Wait), j)));
            acknowledged.AddRange(batch.Where(b => b.Item1 is not null).Select(b => (b.Item1!.Value, b.j)));
        }

        Assert.That(acknowledged, Has.Count.EqualTo(count), "every record commits on the two remaining members");
        leader = await cluster.AwaitLeaderAsync(Wait);
        Assert.That(leader.LogResidentBytes, Is.LessThanOrEqualTo(CacheBytes + (CacheBytes / 4) + 4096), "the leader keeps only its budget");
        var fetchesBefore = leader.LogFetchCount;

        await cluster.StartAsync(lagging);
        var deadline = DateTimeOffset.UtcNow + Wait;
        var applied = cluster.Applied[lagging];
        while (DateTimeOffset.UtcNow < deadline && !acknowledged.All(a => applied.ContainsKey(a.Offset)))
        {
            await Task.Delay(20);
        }

        Assert.Multiple(() =>
        {
            foreach (var (offset, i) in acknowledged)
            {
                Assert.That(applied.TryGetValue(offset, out var payload) ? payload : null, Is.EqualTo(Payload(i)), $"offset {offset} on the restarted member");
            }

            Assert.That(leader.LogFetchCount, Is.GreaterThan(fetchesBefore), "the leader read old batches back from its log to send them");
            Assert.That(cluster.Node(lagging).LogResidentBytes, Is.LessThanOrEqualTo(CacheBytes + (CacheBytes / 4) + 4096), "the follower keeps only its budget");
        });
    }
}
