using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Paper;

public sealed class MembershipTests
{
    private static readonly RaftNodeId S4 = TestCluster.Id(4);

    private static void Settle(TestCluster cluster, ulong leader)
    {
        cluster.Stabilize();
        cluster.Tick(leader, 2);
        cluster.Stabilize();
    }

    [Test]
    public void ALeaderRefusesAMembershipChange_UntilItHasCommittedAnEntryOfItsOwnTerm()
    {
        // Reference: Raft thesis §4.1 and its erratum (Ongaro, raft-dev 2015: commit a no-op before a change)
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false), spares: 1);
        cluster.Drop = m => m.Type == RaftMessageType.AppendResponse;
        cluster.Elect(1);
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Leader));
        Assert.Throws<InvalidOperationException>(() => cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddLearner, S4)));

        cluster.Drop = null;
        Settle(cluster, 1);
        Assert.DoesNotThrow(() => cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddLearner, S4)));
    }

    [Test]
    public void ALeaderAllowsOnlyOneUncommittedMembershipChangeAtATime()
    {
        // Reference: Raft thesis §4.1 (a change may start only after the previous one committed)
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false), spares: 1);
        cluster.Elect(1);
        Settle(cluster, 1);
        cluster.Drop = m => m.Type == RaftMessageType.AppendResponse;
        cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddLearner, S4));
        cluster.Stabilize();
        Assert.Throws<InvalidOperationException>(() => cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddVoter, S4)));

        cluster.Drop = null;
        Settle(cluster, 1);
        Assert.DoesNotThrow(() => cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddVoter, S4)));
    }

    [Test]
    public void ALearnerReceivesTheLog_ButNeitherCountsTowardTheQuorumNorCampaigns()
    {
        // Reference: Raft thesis §4.2.1 (non-voting members catch up without affecting availability)
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false), spares: 1);
        cluster.Elect(1);
        Settle(cluster, 1);
        cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddLearner, S4));
        cluster.Propose(1, 42);
        Settle(cluster, 1);
        Assert.That(cluster[4].AppliedIndex, Is.EqualTo(cluster[1].AppliedIndex));
        Assert.That(cluster[4].N.Config.Learners, Does.Contain(S4));

        cluster[2].Crash();
        cluster[3].Crash();
        var committed = cluster[1].N.Committed;
        cluster.Propose(1, 43);
        Settle(cluster, 1);
        Assert.That(cluster[4].N.LastIndex, Is.GreaterThan(committed), "the learner has the new entry");
        Assert.That(cluster[1].N.Committed, Is.EqualTo(committed), "but its acknowledgement forms no quorum");

        cluster.Isolate(4);
        var term = cluster[4].N.Term;
        cluster.Tick(4, 100);
        Assert.That(cluster[4].N.Role, Is.EqualTo(RaftRole.Follower));
        Assert.That(cluster[4].N.Term, Is.EqualTo(term));
    }

    [Test]
    public void APromotedLearner_CountsTowardTheQuorum()
    {
        // Reference: Raft thesis §4.2.1 (a caught-up learner is added as a voter)
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false), spares: 1);
        cluster.Elect(1);
        Settle(cluster, 1);
        cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddLearner, S4));
        Settle(cluster, 1);
        cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddVoter, S4));
        Settle(cluster, 1);
        Assert.That(cluster[1].N.Config.Voters, Has.Count.EqualTo(4));

        cluster[3].Crash();
        var index = cluster.Propose(1, 9);
        Settle(cluster, 1);
        Assert.That(cluster[1].N.Committed, Is.GreaterThanOrEqualTo(index), "nodes 1, 2 and 4 are a quorum of four");
    }

    [Test]
    public void AMembershipChangeTakesEffectWhenAppended_AndIsUndoneWhenItsEntryIsTruncated()
    {
        // Reference: Raft thesis §4.1 (a server uses the latest configuration in its log, committed or not)
        var cluster = new TestCluster(5, PaperOptions.Create(preVote: false, checkQuorum: false), spares: 1);
        cluster.Elect(1);
        Settle(cluster, 1);
        var learner = TestCluster.Id(6);
        cluster.Cut(1, 3);
        cluster.Cut(1, 4);
        cluster.Cut(1, 5);
        cluster.Drop = m => m.Type == RaftMessageType.AppendResponse;
        cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddLearner, learner));
        cluster.Stabilize();
        Assert.That(cluster[2].N.Config.Learners, Does.Contain(learner), "in force on append, before commit");

        cluster.Drop = null;
        cluster.Isolate(1);
        for (var round = 0; round < 20 && cluster[3].N.Role != RaftRole.Leader; round++)
        {
            cluster.Tick(3, 25);
            cluster.Stabilize();
        }

        Assert.That(cluster[3].N.Role, Is.EqualTo(RaftRole.Leader));
        Settle(cluster, 3);
        Assert.That(cluster[2].N.Config.Learners, Does.Not.Contain(learner), "undone with the truncated entry");
    }

    [Test]
    public void ALeaderThatRemovesItself_StepsDownOnceTheChangeIsCommitted_AndTheRestElectANewLeader()
    {
        // Reference: Raft thesis §4.2.2 (removing the current leader)
        var cluster = new TestCluster(3, PaperOptions.Create(), spares: 0);
        cluster.Elect(1);
        Settle(cluster, 1);
        cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.Remove, TestCluster.Id(1)));
        Settle(cluster, 1);
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Follower));
        Assert.That(cluster[2].N.Config.Voters, Is.EquivalentTo(new[] { TestCluster.Id(2), TestCluster.Id(3) }));

        // Both remaining voters' clocks run (their leases expire), and node 1, no longer a voter, never campaigns.
        for (var tick = 0; tick < 500 && cluster.Leader() is null; tick++)
        {
            cluster.Tick(1);
            cluster.Tick(2);
            cluster.Tick(3);
            cluster.Stabilize();
        }

        var leader = cluster.Leader();
        Assert.That(leader, Is.Not.Null);
        Assert.That(leader!.Id, Is.Not.EqualTo(TestCluster.Id(1)));
        var index = cluster.Propose(leader.Id.Value, 5);
        Settle(cluster, leader.Id.Value);
        Assert.That(leader.N.Committed, Is.GreaterThanOrEqualTo(index));
    }

    [Test]
    public void AChangeThatIsNotASingleServerStep_IsRefused()
    {
        // Reference: Raft thesis §4.1 (one server at a time)
        var cluster = new TestCluster(3, PaperOptions.Create());
        cluster.Elect(1);
        Settle(cluster, 1);
        Assert.Throws<ArgumentException>(() => cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddVoter, TestCluster.Id(2))));
        Assert.Throws<ArgumentException>(() => cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.Remove, TestCluster.Id(9))));
    }
}
