using System.Text;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>Membership changes, learners, leadership transfer and per-follower lag through the public ReplicatedLog.</summary>
[NonParallelizable]
public sealed class ReplicatedLogMembershipTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static readonly RaftNodeId[] Founders = [new(1), new(2), new(3)];

    private static byte[] Payload(int i) => Encoding.UTF8.GetBytes($"m-{i:D5}");

    private static LoopbackCluster NewCluster(int addressBook) => new(addressBook, o => new ReplicatedLogOptions
    {
        NodeId = o.NodeId,
        Members = o.Members,
        Directory = o.Directory,
        RandomSeed = o.RandomSeed,
        Apply = o.Apply,
        InitialVoters = Founders,
    });

    private static async Task<List<(long Offset, int I)>> ReplicateAsync(LoopbackCluster cluster, int from, int count)
    {
        var acknowledged = new List<(long, int)>();
        var batch = await Task.WhenAll(Enumerable.Range(from, count).Select(async j => (await cluster.ReplicateAsync(Payload(j), Wait), j)));
        acknowledged.AddRange(batch.Where(b => b.Item1 is not null).Select(b => (b.Item1!.Value, b.j)));
        Assert.That(acknowledged, Has.Count.EqualTo(count), "every record commits");
        return acknowledged;
    }

    private static async Task EventuallyAsync(Func<bool> condition, string what)
    {
        var deadline = DateTimeOffset.UtcNow + Wait;
        while (!condition())
        {
            if (DateTimeOffset.UtcNow > deadline)
            {
                Assert.Fail($"timed out waiting until {what}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>A leader refuses a change until it committed an entry of its term: retry that refusal only.</summary>
    private static async Task ChangeAsync(Func<ValueTask> change)
    {
        var deadline = DateTimeOffset.UtcNow + Wait;
        while (true)
        {
            try
            {
                await change();
                return;
            }
            catch (InvalidOperationException) when (DateTimeOffset.UtcNow < deadline)
            {
                await Task.Delay(20);
            }
        }
    }

    [Test]
    public async Task ALearnerJoins_CatchesUp_IsPromoted_AndCountsTowardTheQuorum_AfterAVoterIsRemoved()
    {
        await using var cluster = NewCluster(4);
        foreach (var id in Founders)
        {
            await cluster.StartAsync(id);
        }

        var joiner = new RaftNodeId(4);
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var before = await ReplicateAsync(cluster, 0, 100);

        // A node outside the initial voters waits without campaigning until it is added.
        await cluster.StartAsync(joiner);
        await Task.Delay(500);
        Assert.Multiple(() =>
        {
            Assert.That(cluster.Node(joiner).Status.Role, Is.EqualTo(ReplicaRole.Follower));
            Assert.That(cluster.Applied[joiner], Is.Empty, "the leader sends nothing to a non-member");
            Assert.That(leader.Status.Role, Is.EqualTo(ReplicaRole.Leader), "the newcomer did not disrupt the leader");
        });

        await ChangeAsync(() => leader.AddLearnerAsync(joiner));
        Assert.Multiple(() =>
        {
            Assert.That(leader.Status.Learners, Is.EquivalentTo(new[] { joiner }));
            Assert.That(leader.Status.Voters, Is.EquivalentTo(Founders));
        });
        await EventuallyAsync(() => before.All(a => cluster.Applied[joiner].ContainsKey(a.Offset)), "the learner applied the earlier records");
        await EventuallyAsync(
            () => leader.Status.Followers.SingleOrDefault(f => f.NodeId == joiner) is { IsLearner: true, Lag: 0 },
            "the leader reports the learner caught up");

        // One change at a time: a second change while the first is uncommitted is refused.
        var others = Founders.Where(id => id != leader.NodeId).ToList();
        var promote = leader.PromoteLearnerAsync(joiner).AsTask();
        var concurrent = leader.RemoveMemberAsync(others[0]).AsTask();
        await promote;
        Assert.That(async () => await concurrent, Throws.InstanceOf<InvalidOperationException>());
        Assert.That(leader.Status.Voters, Is.EquivalentTo(Founders.Append(joiner)));

        // Remove a founder, then stop another: the leader and the promoted newcomer are 2 of 3 voters.
        await ChangeAsync(() => leader.RemoveMemberAsync(others[0]));
        Assert.That(leader.Status.Voters, Does.Not.Contain(others[0]));
        await cluster.StopAsync(others[0]);
        await cluster.StopAsync(others[1]);
        var after = await leader.ReplicateAsync(Payload(1000)).AsTask().WaitAsync(Wait);
        await EventuallyAsync(() => cluster.Applied[joiner].ContainsKey(after), "the promoted member applied the record it helped commit");
    }

    /// <summary>
    /// The founders' address books list only the founders; the newcomer is added with its endpoint, which travels in the
    /// membership entry. Every founder then reaches it (a founder that becomes leader must, or nothing commits with one
    /// founder down), and a founder restarted later still knows it, from its log.
    /// </summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task AMemberAddedWithItsEndpoint_IsReachedByMembersWhoseAddressBooksNeverListedIt()
    {
        var joiner = new RaftNodeId(4);
        await using var cluster = new LoopbackCluster(4, o => new ReplicatedLogOptions
        {
            NodeId = o.NodeId,
            Members = o.NodeId == joiner ? o.Members : o.Members.Where(m => m.Key != joiner).ToDictionary(),
            Directory = o.Directory,
            RandomSeed = o.RandomSeed,
            Apply = o.Apply,
            InitialVoters = Founders,
        });
        foreach (var id in Founders)
        {
            await cluster.StartAsync(id);
        }

        var leader = await cluster.AwaitLeaderAsync(Wait);
        var before = await ReplicateAsync(cluster, 0, 50);
        await cluster.StartAsync(joiner);
        Assert.That(() => leader.AddLearnerAsync(joiner).AsTask(), Throws.ArgumentException, "not in the leader's address book, and no endpoint given");
        await ChangeAsync(() => leader.AddLearnerAsync(joiner, cluster.Endpoint(joiner)));
        await EventuallyAsync(() => before.All(a => cluster.Applied[joiner].ContainsKey(a.Offset)), "the learner applied the earlier records");
        await ChangeAsync(() => leader.PromoteLearnerAsync(joiner));

        var others = Founders.Where(id => id != leader.NodeId).ToList();
        await EventuallyAsync(
            () => others.All(id => cluster.Node(id).Status.MemberEndpoints.TryGetValue(joiner, out var e) && e.Equals(cluster.Endpoint(joiner))),
            "every founder learned the newcomer's endpoint from the log");

        // A founder that never listed the newcomer leads; with another founder down, a commit needs the newcomer's copy.
        await leader.TransferLeadershipAsync(others[0]).AsTask().WaitAsync(Wait);
        var next = cluster.Node(others[0]);
        await cluster.StopAsync(others[1]);
        var offset = await next.ReplicateAsync(Payload(500)).AsTask().WaitAsync(Wait);
        await EventuallyAsync(() => cluster.Applied[joiner].ContainsKey(offset), "the newcomer applied the record it helped commit");

        // A founder restarted learns the endpoint again from its own log (its address book still lacks it).
        await cluster.StopAsync(leader.NodeId);
        await cluster.StartAsync(others[1]);
        await cluster.StartAsync(leader.NodeId);
        var restarted = cluster.Node(leader.NodeId);
        await EventuallyAsync(
            () => restarted.Status.MemberEndpoints.TryGetValue(joiner, out var e) && e.Equals(cluster.Endpoint(joiner)),
            "the restarted founder knows the newcomer's endpoint");
    }

    [Test]
    public async Task LeadershipTransfer_MakesTheTargetLeader_AndTheOldLeaderRedirects()
    {
        await using var cluster = NewCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(Wait);
        await ReplicateAsync(cluster, 0, 20);
        var target = cluster.Ids.First(id => id != leader.NodeId);

        await leader.TransferLeadershipAsync(target).AsTask().WaitAsync(Wait);
        var next = await cluster.AwaitLeaderAsync(Wait);
        Assert.Multiple(() =>
        {
            Assert.That(next.NodeId, Is.EqualTo(target));
            Assert.That(leader.Status.LeaderId, Is.EqualTo(target));
        });
        Assert.That(async () => await leader.ReplicateAsync(Payload(99)), Throws.InstanceOf<NotLeaderException>()
            .With.Property(nameof(NotLeaderException.LeaderId)).EqualTo(target));
        Assert.That(await next.ReplicateAsync(Payload(100)).AsTask().WaitAsync(Wait), Is.GreaterThan(0));
        Assert.That(async () => await next.TransferLeadershipAsync(new RaftNodeId(3 + 1)), Throws.InstanceOf<ArgumentException>(), "not a voter");
    }

    [Test]
    public async Task Status_ReportsEachFollowersLag_GrowingWhileItIsDown_AndBackToZeroAfterItCatchesUp()
    {
        await using var cluster = NewCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.AwaitLeaderAsync(Wait);
        var down = cluster.Ids.First(id => id != leader.NodeId);
        var up = cluster.Ids.First(id => id != leader.NodeId && id != down);
        await cluster.StopAsync(down);
        await ReplicateAsync(cluster, 0, 200);

        await EventuallyAsync(() => leader.Status.Followers.Single(f => f.NodeId == up).Lag == 0, "the live follower is caught up");
        await EventuallyAsync(() => leader.Status.Followers.Single(f => f.NodeId == down) is { IsActive: false }, "the stopped follower is reported inactive");
        var lagging = leader.Status.Followers.Single(f => f.NodeId == down);
        Assert.That(lagging.Lag, Is.GreaterThan(0), "the stopped follower is behind");
        Assert.That(lagging.MatchIndex, Is.LessThan(leader.Status.LastIndex));

        await cluster.StartAsync(down);
        await EventuallyAsync(() => leader.Status.Followers.Single(f => f.NodeId == down) is { Lag: 0, IsActive: true }, "the restarted follower caught up");
    }
}
