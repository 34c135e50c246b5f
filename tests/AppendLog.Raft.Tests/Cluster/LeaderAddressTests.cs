using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>A member that is not the leader names the address the leader advertises to clients.</summary>
[NonParallelizable]
public sealed class LeaderAddressTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static string Address(RaftNodeId id) => $"broker-{id}.example:9092";

    [Test]
    [CancelAfter(60_000)]
    public async Task AFollowerRefusingAReplication_NamesTheLeadersAdvertisedAddress_AndANewLeadersAfterAFailover()
    {
        await using var cluster = new LoopbackCluster(3, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.Members,
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            Apply = o.Apply,
            AdvertisedAddress = Address(o.NodeId),
        });
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var follower = cluster.Running.First(n => n.NodeId != leader.NodeId);
        await AwaitRefusalAsync(follower, leader.NodeId);

        await cluster.StopAsync(leader.NodeId);
        var next = await cluster.AwaitLeaderAsync(Wait);
        var other = cluster.Running.First(n => n.NodeId != next.NodeId);
        await AwaitRefusalAsync(other, next.NodeId);
    }

    private static async Task AwaitRefusalAsync(ReplicatedLog follower, RaftNodeId leader)
    {
        // The follower learns the address when the leader connects to it (its first heartbeat): at most a moment after
        // the election.
        NotLeaderException? refusal = null;
        var deadline = DateTimeOffset.UtcNow + Wait;
        while (DateTimeOffset.UtcNow < deadline && refusal?.LeaderAddress is null)
        {
            refusal = Assert.ThrowsAsync<NotLeaderException>(async () => await follower.ReplicateAsync("x"u8.ToArray()));
            await Task.Delay(10);
        }

        Assert.Multiple(() =>
        {
            Assert.That(refusal!.LeaderId, Is.EqualTo(leader));
            Assert.That(refusal.LeaderAddress, Is.EqualTo(Address(leader)));
            Assert.That(refusal.LeaderEndpoint, Is.Not.Null, "the Raft endpoint is still given");
        });
    }
}
