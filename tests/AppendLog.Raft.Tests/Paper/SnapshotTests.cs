using AppendLog.Raft.Membership;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Paper;

public sealed class SnapshotTests
{
    private static TestCluster ClusterWithCompactingLeader(int spares = 0)
    {
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false), spares: spares);
        cluster[1].CompactAfterEntries = 8;
        cluster.Elect(1);
        return cluster;
    }

    [Test]
    public void AFollowerBehindTheCompactedPrefix_IsRestoredFromTheLeadersSnapshot()
    {
        // Reference: Raft paper §7 (InstallSnapshot)
        var cluster = ClusterWithCompactingLeader();
        cluster.Isolate(3);
        for (byte i = 0; i < 30; i++)
        {
            cluster.Propose(1, i);
        }

        cluster.Stabilize();
        Assert.That(cluster[1].Log.Snapshot.Index, Is.GreaterThan(cluster[3].N.LastIndex), "the leader compacted what node 3 lacks");

        cluster.HealAll();
        cluster.Tick(1, 2);
        cluster.Stabilize();
        cluster.Tick(1, 2);
        cluster.Stabilize();
        Assert.That(cluster[3].Log.Snapshot.Index, Is.GreaterThan(0), "node 3 installed a snapshot");
        Assert.That(cluster[3].AppliedIndex, Is.EqualTo(cluster[1].AppliedIndex));
        Assert.That(cluster[3].AppliedHash, Is.EqualTo(cluster[1].AppliedHash), "same state machine");
    }

    [Test]
    public void ASnapshotCarriesTheMembershipAtItsIndex_AndARestartedNodeKeepsIt()
    {
        // Reference: Raft paper §7 (the snapshot includes the latest configuration as of its last included index)
        var cluster = ClusterWithCompactingLeader(spares: 1);
        cluster.Stabilize();
        cluster.Tick(1, 2);
        cluster.Stabilize();
        cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddLearner, TestCluster.Id(4)));
        for (byte i = 0; i < 20; i++)
        {
            cluster.Propose(1, i);
        }

        cluster.Stabilize();
        Assert.That(cluster[1].Log.Snapshot.Metadata.Config.Learners, Does.Contain(TestCluster.Id(4)));

        cluster[1].Crash();
        cluster[1].Restart();
        Assert.That(cluster[1].N.Config.Learners, Does.Contain(TestCluster.Id(4)));
        Assert.That(cluster[1].N.FirstIndex, Is.EqualTo(cluster[1].Log.Snapshot.Index + 1));
    }

    [Test]
    public void OnlyAppliedEntriesAreCompacted()
    {
        // Reference: Raft paper §7 (each server snapshots only committed, applied state)
        var cluster = new TestCluster(3, PaperOptions.Create());
        cluster.Elect(1);
        var node = cluster[1].N;
        Assert.Throws<RaftInvariantException>(() => node.Compact(node.Applied + 1, new byte[16]));
    }
}
