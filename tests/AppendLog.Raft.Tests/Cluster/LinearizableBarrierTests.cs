using System.Text;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary><see cref="ReplicatedLog.LinearizableBarrierAsync"/> on real members over loopback TCP.</summary>
[NonParallelizable]
public sealed class LinearizableBarrierTests
{
    private static readonly TimeSpan ElectionWait = TimeSpan.FromSeconds(15);

    [Test]
    [CancelAfter(60_000)]
    public async Task ABarrierOnTheLeader_CoversEveryAcknowledgedRecord_AndItsStateMachineHasAppliedThem()
    {
        await using var cluster = new LoopbackCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(ElectionWait);
        var offsets = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => leader.ReplicateAsync(Encoding.UTF8.GetBytes($"r{i}")).AsTask()));

        var end = await leader.LinearizableBarrierAsync();
        Assert.That(end, Is.GreaterThan(offsets.Max()), "the barrier covers every record acknowledged before it");
        var applied = cluster.Applied[leader.NodeId];
        Assert.That(offsets.All(applied.ContainsKey), Is.True, "and the leader's state machine has applied them");

        var barriers = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => leader.LinearizableBarrierAsync().AsTask()));
        Assert.That(barriers, Has.All.GreaterThanOrEqualTo(end), "concurrent barriers complete too, never behind an earlier one");
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task AFollower_RefusesABarrier_NamingTheLeaderAndItsEndpoint()
    {
        await using var cluster = new LoopbackCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(ElectionWait);
        var follower = cluster.Running.First(n => n.NodeId != leader.NodeId);

        var ex = Assert.ThrowsAsync<NotLeaderException>(async () => await follower.LinearizableBarrierAsync());
        Assert.That(ex!.LeaderId, Is.EqualTo(leader.NodeId));
        Assert.That(ex.LeaderEndpoint, Is.Not.Null);
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task ALeaderThatLostItsMajority_NeverCompletesABarrier()
    {
        await using var cluster = new LoopbackCluster(3, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.Members,
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            Apply = o.Apply,
            ReplicateTimeout = TimeSpan.FromSeconds(3),
        });
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(ElectionWait);
        await leader.ReplicateAsync(new byte[] { 1 });
        foreach (var id in cluster.Ids.Where(id => id != leader.NodeId).ToList())
        {
            await cluster.StopAsync(id);
        }

        // Either it is still leader and the barrier waits for answers that never come (then fails when check-quorum steps
        // it down, or times out), or it already stepped down and refuses: it never returns.
        var ex = Assert.CatchAsync(async () => await leader.LinearizableBarrierAsync());
        Assert.That(ex, Is.InstanceOf<NotLeaderException>().Or.InstanceOf<ReplicationTimeoutException>());
    }
}
