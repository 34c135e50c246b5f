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

    /// <summary>
    /// The bug of single-server changes (Ongaro, raft-dev 2015), replayed step by step on four voters {1,2,3,4}:
    /// (a) leader 1 (term 1) appends C_a = +5 and only 5 receives it; 1 crashes. (b) 2 wins term 2 with 3 and 4, and
    /// before its no-op commits appends C_b = −1 (quorum 2 of {2,3,4}); 2 and 3 commit it, and the no-op at index 2
    /// with it. (c) 1 restarts with C_a in force, and 4 (which never got term-2 entries) and 5 elect it in term 3: a
    /// majority of C_a. It commits C_a at index 2: two different entries committed at one index.
    /// </summary>
    private static TestCluster SingleServerChangeBugScenario(RaftTestingFaults faults, out bool changeRefused)
    {
        var cluster = new TestCluster(4, PaperOptions.Create(preVote: false, checkQuorum: false, faults: faults), spares: 1);
        cluster.Elect(1);
        Settle(cluster, 1);
        Assert.That(cluster[4].N.Committed, Is.EqualTo(1), "the term-1 no-op is committed everywhere");

        // (a)
        cluster.Cut(1, 2);
        cluster.Cut(1, 3);
        cluster.Cut(1, 4);
        cluster[1].N.ProposeConfigChange(new ConfigChange(ConfigChangeKind.AddVoter, TestCluster.Id(5)));
        cluster.Stabilize();
        Assert.That(cluster[5].N.LastIndex, Is.EqualTo(2), "C_a reached node 5");
        Assert.That(cluster[1].N.Committed, Is.EqualTo(1), "C_a is not committed (2 of 5)");
        cluster[1].Crash();

        // (b) Node 4 votes for 2 but never receives its entries.
        cluster.Drop = m => m.From == TestCluster.Id(2) && m.To == TestCluster.Id(4) && m.Type is RaftMessageType.Append or RaftMessageType.Snapshot;
        cluster.Elect(2);
        Assert.That(cluster[2].N.Role, Is.EqualTo(RaftRole.Leader));
        Assert.That(cluster[2].N.Term, Is.EqualTo(2));
        var removeOne = new ConfigChange(ConfigChangeKind.Remove, TestCluster.Id(1));
        changeRefused = false;
        try
        {
            cluster[2].N.ProposeConfigChange(removeOne);
        }
        catch (InvalidOperationException)
        {
            // The rule: first commit an entry of term 2, which needs node 4 (3 of {1,2,3,4}, node 1 down).
            changeRefused = true;
            cluster.Drop = null;
            Settle(cluster, 2);
            cluster[2].N.ProposeConfigChange(removeOne);
            cluster.Drop = m => m.From == TestCluster.Id(2) && m.To == TestCluster.Id(4) && m.Type is RaftMessageType.Append or RaftMessageType.Snapshot;
        }

        cluster.Stabilize();
        Assert.That(cluster[2].N.Config.Voters, Is.EquivalentTo(new[] { TestCluster.Id(2), TestCluster.Id(3), TestCluster.Id(4) }));
        Assert.That(cluster[2].N.Committed, Is.GreaterThanOrEqualTo(3), "C_b and the no-op before it are committed by 2 and 3");

        // (c) Node 1 returns, cut off from 2 and 3, and campaigns with C_a in force.
        cluster[1].Restart();
        cluster.HealAll();
        cluster.Cut(1, 2);
        cluster.Cut(1, 3);
        cluster.Cut(2, 5);
        cluster.Cut(3, 5);
        for (var round = 0; round < 30 && cluster[1].N.Role != RaftRole.Leader; round++)
        {
            cluster.Tick(1, 25);
            cluster.Stabilize();
        }

        if (cluster[1].N.Role == RaftRole.Leader)
        {
            Settle(cluster, 1);
        }

        return cluster;
    }

    [Test]
    public void TheSingleServerChangeBug_CommitsTwoEntriesAtOneIndex_WhenALeaderChangesMembershipBeforeCommittingInItsTerm()
    {
        // Reference: Ongaro, "bug in single-server membership changes", raft-dev, July 2015. The scenario has teeth: with
        // the rule switched off, the two memberships commit different entries at index 2.
        var cluster = SingleServerChangeBugScenario(RaftTestingFaults.ConfigChangeBeforeOwnTermCommit, out var refused);
        Assert.That(refused, Is.False);
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Leader), "1, 4 and 5 are a majority of C_a");
        Assert.That(cluster[1].N.Committed, Is.GreaterThanOrEqualTo(2));
        Assert.That(cluster[1].N.TryGetTerm(2, out var termOn1) && cluster[2].N.TryGetTerm(2, out var termOn2) && termOn1 != termOn2, Is.True,
            "index 2 is committed as C_a (term 1) on node 1 and as the term-2 no-op on node 2");
    }

    [Test]
    public void TheSingleServerChangeBug_CannotHappen_WhenALeaderFirstCommitsAnEntryOfItsTerm()
    {
        // Reference: thesis §4.1 erratum. Node 2's no-op needs node 4, so 4 holds a term-2 entry and refuses 1 its vote.
        var cluster = SingleServerChangeBugScenario(RaftTestingFaults.None, out var refused);
        Assert.That(refused, Is.True, "the change waited for the no-op of term 2 to commit");
        Assert.That(cluster[1].N.Role, Is.Not.EqualTo(RaftRole.Leader), "1 and 5 are not a majority of C_a");
        foreach (var a in cluster.Hosts.Values)
        {
            foreach (var b in cluster.Hosts.Values)
            {
                for (var index = 1L; index <= Math.Min(a.N.Committed, b.N.Committed); index++)
                {
                    Assert.That(a.N.TryGetTerm(index, out var ta) && b.N.TryGetTerm(index, out var tb) && ta == tb, Is.True,
                        $"nodes {a.Id} and {b.Id} committed the same entry at {index}");
                }
            }
        }
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
