using AppendLog.Raft.Core;
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

    [Test]
    public void ASnapshotTravelsInChunks_AndALostChunkIsSentAgainFromWhereTheFollowerStopped()
    {
        // Reference: Raft paper §7 (InstallSnapshot with offset, data and done). The test host's images are 16 bytes:
        // in chunks of 4, offsets 0, 4, 8, 12.
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false, snapshotChunkBytes: 4));
        cluster[1].CompactAfterEntries = 8;
        cluster.Elect(1);
        cluster.Isolate(3);
        for (byte i = 0; i < 30; i++)
        {
            cluster.Propose(1, i);
        }

        cluster.Stabilize();
        var offsets = new List<long>();
        var lost = false;
        cluster.Drop = m =>
        {
            if (m.Type != RaftMessageType.Snapshot || m.To != TestCluster.Id(3))
            {
                return false;
            }

            offsets.Add(m.SnapshotOffset);
            Assert.That(m.SnapshotChunk.Length, Is.LessThanOrEqualTo(4), "no message carries more than a chunk");
            if (m.SnapshotOffset == 8 && !lost)
            {
                lost = true;
                return true;
            }

            return false;
        };
        cluster.HealAll();
        for (var round = 0; round < 20 && cluster[3].Log.Snapshot.Index == 0; round++)
        {
            cluster.Tick(1, 2);
            cluster.Stabilize();
        }

        Assert.Multiple(() =>
        {
            Assert.That(cluster[3].Log.Snapshot.Index, Is.GreaterThan(0), "node 3 installed the snapshot");
            Assert.That(cluster[3].AppliedHash, Is.EqualTo(cluster[1].AppliedHash), "from a whole image of the same state");
            Assert.That(offsets, Is.EqualTo(new long[] { 0, 4, 8, 8, 12 }), "the lost chunk was sent again, and nothing before it");
        });
    }

    [Test]
    public void AFollowerThatLostItsHalfReceivedImage_TellsTheLeader_WhichStartsOver()
    {
        // A follower restarted mid-transfer (its partial image is gone) answers the next chunk with 0 bytes held.
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false, snapshotChunkBytes: 4));
        cluster[1].CompactAfterEntries = 8;
        cluster.Elect(1);
        cluster.Isolate(3);
        for (byte i = 0; i < 30; i++)
        {
            cluster.Propose(1, i);
        }

        cluster.Stabilize();
        var offsets = new List<long>();
        var crashed = false;
        cluster.Drop = m =>
        {
            if (m.Type == RaftMessageType.Snapshot && m.To == TestCluster.Id(3))
            {
                offsets.Add(m.SnapshotOffset);
                if (m.SnapshotOffset == 8 && !crashed)
                {
                    crashed = true;
                    cluster[3].Crash();
                    cluster[3].Restart();
                }
            }

            return false;
        };
        cluster.HealAll();
        for (var round = 0; round < 20 && cluster[3].Log.Snapshot.Index == 0; round++)
        {
            cluster.Tick(1, 2);
            cluster.Stabilize();
        }

        Assert.Multiple(() =>
        {
            Assert.That(cluster[3].Log.Snapshot.Index, Is.GreaterThan(0), "node 3 installed the snapshot");
            Assert.That(cluster[3].AppliedHash, Is.EqualTo(cluster[1].AppliedHash));
            Assert.That(offsets, Is.EqualTo(new long[] { 0, 4, 8, 0, 4, 8, 12 }), "the transfer started over after the follower lost its part");
        });
    }
}
