using AppendLog.Raft.Core;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Paper;

public sealed class ElectionTests
{
    private static RaftOptions Options(bool preVote = true, bool checkQuorum = true) => new()
    {
        TickInterval = TimeSpan.FromMilliseconds(10),
        HeartbeatInterval = TimeSpan.FromMilliseconds(10),
        ElectionTimeoutMinimum = TimeSpan.FromMilliseconds(100),
        ElectionTimeoutMaximum = TimeSpan.FromMilliseconds(200),
        PreVote = preVote,
        CheckQuorum = checkQuorum,
    };

    [Test]
    public void AMemberStillApplyingALongBacklog_CampaignsOneTimeoutLater_ButStillCampaigns()
    {
        // Not a paper rule but a preference that keeps liveness: a member replaying its log after a restart can win an
        // election, and then its first replication waits for the whole replay (6.5 s once in the bench). Its timeout
        // falls after every caught-up member's, so a member that can serve at once campaigns first.
        var options = new RaftOptions
        {
            TickInterval = TimeSpan.FromMilliseconds(10),
            HeartbeatInterval = TimeSpan.FromMilliseconds(10),
            ElectionTimeoutMinimum = TimeSpan.FromMilliseconds(100),
            ElectionTimeoutMaximum = TimeSpan.FromMilliseconds(200),
            CampaignApplyLagEntries = 5,
        };
        var cluster = new TestCluster(3, options);
        cluster.Elect(1);
        for (var i = 0; i < 20; i++)
        {
            cluster.Propose(1, (byte)i);
        }

        cluster.Stabilize();
        foreach (var id in new ulong[] { 2, 3 })
        {
            cluster[id].Crash();
            cluster[id].Restart();
            Assert.That(cluster[id].N.Committed - cluster[id].N.Applied, Is.GreaterThan(5), $"node {id} restarts with its backlog to apply");
        }

        // Node 3 applies its backlog; node 2 does not (its Readies wait). Neither hears from the leader.
        cluster[3].Drain();
        var caughtUp = TicksToCampaign(cluster[3].N);
        var lagging = TicksToCampaign(cluster[2].N);
        Assert.That(caughtUp, Is.LessThan(options.ElectionTicksMax), "a member that has applied campaigns within the timeout");
        Assert.That(lagging, Is.GreaterThanOrEqualTo(options.ElectionTicksMax), "one still applying campaigns after any caught-up member would");
        Assert.That(lagging, Is.LessThan((2 * options.ElectionTicksMax) - options.ElectionTicksMin), "and then campaigns all the same");

        static int TicksToCampaign(RaftNode node)
        {
            var ticks = 0;
            while (node.Role == RaftRole.Follower && ticks < 1000)
            {
                node.Tick();
                ticks++;
            }

            return ticks;
        }
    }

    [Test]
    public void AFollowerThatHearsNoLeaderForAnElectionTimeout_CampaignsAndWinsAMajority()
    {
        // Reference: Raft paper §5.2 (leader election)
        var cluster = new TestCluster(3, Options(preVote: false));
        cluster.Elect(1);

        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Leader));
        Assert.That(cluster[1].N.Term, Is.EqualTo(1));
        Assert.That(cluster[2].N.Leader, Is.EqualTo(TestCluster.Id(1)));
        Assert.That(cluster[3].N.Leader, Is.EqualTo(TestCluster.Id(1)));
    }

    [Test]
    public void ElectionTimeouts_AreRandomizedWithinTheConfiguredRange_AndRepeatForTheSameSeed()
    {
        // Reference: Raft paper §5.2 (randomized election timeouts)
        static int TicksToCampaign(int seed)
        {
            var cluster = new TestCluster(3, Options(), seed);
            var ticks = 0;
            while (cluster[1].N.Role == RaftRole.Follower)
            {
                cluster[1].N.Tick();
                cluster[1].Drain();
                ticks++;
            }

            return ticks;
        }

        var samples = Enumerable.Range(1, 40).Select(TicksToCampaign).ToList();
        Assert.That(samples, Has.All.InRange(10, 19));
        Assert.That(samples.Distinct().Count(), Is.GreaterThan(3), "timeouts vary across seeds");
        var first = TicksToCampaign(7);
        var replay = TicksToCampaign(7);
        Assert.That(replay, Is.EqualTo(first), "the same seed gives the same timeout");
    }

    [Test]
    public void ANodeGrantsAtMostOneVotePerTerm_EvenAfterACrashAndRestart()
    {
        // Reference: Raft paper §5.2 and Figure 2 (votedFor is persistent state, written before responding)
        var cluster = new TestCluster(3, Options(preVote: false, checkQuorum: false));
        var voter = cluster[3];
        voter.N.Step(new RaftMessage { Type = RaftMessageType.Vote, From = TestCluster.Id(1), To = voter.Id, Term = 5 });
        var first = voter.Drain();
        Assert.That(first.Single().Reject, Is.False);

        voter.Crash();
        voter.Restart();
        Assert.That(voter.N.Vote, Is.EqualTo(TestCluster.Id(1)), "the vote survived the crash");

        voter.N.Step(new RaftMessage { Type = RaftMessageType.Vote, From = TestCluster.Id(2), To = voter.Id, Term = 5 });
        Assert.That(voter.Drain().Single().Reject, Is.True);
    }

    [Test]
    public void AVoteResponse_IsHandedOutOnlyInTheSameReadyThatPersistsTheVote()
    {
        // Reference: Raft paper Figure 2 ("respond to RPCs only after updating stable storage"); the Ready contract
        var cluster = new TestCluster(3, Options(preVote: false));
        var voter = cluster[3];
        voter.N.Step(new RaftMessage { Type = RaftMessageType.Vote, From = TestCluster.Id(1), To = voter.Id, Term = 2 });

        var ready = voter.N.GetReady();
        Assert.That(ready.Messages.Single().Type, Is.EqualTo(RaftMessageType.VoteResponse));
        Assert.That(ready.HardState, Is.EqualTo(new HardState(2, TestCluster.Id(1), 0)));
        Assert.That(ready.MustSync, Is.True);
    }

    [Test]
    public void ACandidateWhoseLogIsBehind_IsDeniedTheVote()
    {
        // Reference: Raft paper §5.4.1 (election restriction)
        var cluster = new TestCluster(3, Options(preVote: false, checkQuorum: false));
        cluster[1].SetDurableState(2, 1, 2);
        cluster[2].SetDurableState(2, 1, 2);
        cluster[3].SetDurableState(2, 1);
        cluster.Elect(3);

        Assert.That(cluster[3].N.Role, Is.Not.EqualTo(RaftRole.Leader));
        cluster.Elect(1);
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Leader));
    }

    [Test]
    public void WithPreVote_APartitionedNodeDoesNotRaiseItsTerm_AndCannotDisruptTheLeaderWhenItReturns()
    {
        // Reference: Raft thesis §9.6 (preventing disruptions when a server rejoins the cluster)
        var cluster = new TestCluster(3, Options());
        cluster.Elect(1);
        var term = cluster[1].N.Term;

        cluster.Isolate(3);
        cluster.Tick(3, 100);
        Assert.That(cluster[3].N.Term, Is.EqualTo(term), "pre-votes fail and the term stays");

        cluster.HealAll();
        cluster.Tick(1, 2);
        cluster.Stabilize();
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Leader));
        Assert.That(cluster[1].N.Term, Is.EqualTo(term));
    }

    [Test]
    public void WithoutPreVote_APartitionedNodeRaisesItsTermWhileAlone()
    {
        // Reference: Raft thesis §9.6 (the problem pre-vote solves)
        var cluster = new TestCluster(3, Options(preVote: false));
        cluster.Elect(1);
        var term = cluster[1].N.Term;
        cluster.Isolate(3);
        cluster.Tick(3, 100);
        Assert.That(cluster[3].N.Term, Is.GreaterThan(term));
    }

    [Test]
    public void WithCheckQuorum_ALeaderThatHearsFromNoQuorumForAnElectionTimeout_StepsDown()
    {
        // Reference: Raft thesis §6.2 (a leader steps down if an election timeout passes without a majority round)
        var cluster = new TestCluster(3, Options());
        cluster.Elect(1);
        cluster.Isolate(1);
        cluster.Tick(1, 25);
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Follower));
    }

    [Test]
    public void WithCheckQuorum_AFollowerThatRecentlyHeardFromItsLeader_IgnoresAHigherTermVoteRequest()
    {
        // Reference: Raft thesis §6.2 / §4.2.3 (leader lease: disruptive servers are ignored)
        var cluster = new TestCluster(3, Options());
        cluster.Elect(1);
        var follower = cluster[2];
        var term = follower.N.Term;
        follower.N.Step(new RaftMessage { Type = RaftMessageType.Vote, From = TestCluster.Id(3), To = follower.Id, Term = term + 5, Index = 100, LogTerm = 100 });

        Assert.That(follower.Drain(), Is.Empty);
        Assert.That(follower.N.Term, Is.EqualTo(term));
        Assert.That(follower.N.Leader, Is.EqualTo(TestCluster.Id(1)));
    }

    [Test]
    public void ALeaderThatSeesAHigherTerm_StepsDownToFollower()
    {
        // Reference: Raft paper §5.1 (a server that learns of a higher term reverts to follower)
        var cluster = new TestCluster(3, Options(preVote: false, checkQuorum: false));
        cluster.Elect(1);
        cluster[1].N.Step(new RaftMessage { Type = RaftMessageType.AppendResponse, From = TestCluster.Id(2), To = TestCluster.Id(1), Term = 9 });
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Follower));
        Assert.That(cluster[1].N.Term, Is.EqualTo(9));
    }

    [Test]
    public void LeadershipTransfer_TheUpToDateTargetCampaignsAtOnceAndWins_EvenInsideTheLease()
    {
        // Reference: Raft thesis §3.10 (leadership transfer, TimeoutNow)
        var cluster = new TestCluster(3, Options());
        cluster.Elect(1);
        cluster.Propose(1, 7);
        cluster.Stabilize();

        cluster[1].N.TransferLeadership(TestCluster.Id(3));
        cluster.Stabilize();
        Assert.That(cluster[3].N.Role, Is.EqualTo(RaftRole.Leader));
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Follower));
    }

    [Test]
    public void DuringALeadershipTransfer_ProposalsAreRefusedWithTheTarget()
    {
        // Reference: Raft thesis §3.10 (the old leader stops accepting client requests)
        var cluster = new TestCluster(3, Options());
        cluster.Elect(1);
        cluster.Isolate(3);
        cluster[1].N.TransferLeadership(TestCluster.Id(3));

        var ex = Assert.Throws<NotLeaderException>(() => cluster[1].N.Propose(new byte[] { 1 }));
        Assert.That(ex!.LeaderId, Is.EqualTo(TestCluster.Id(3)));
        Assert.That(ex.Message, Does.Contain("the leader is 3"));
    }

    [Test]
    public void AFollower_RefusesProposalsNamingTheLeader()
    {
        // Reference: Raft paper §8 (clients are redirected to the leader)
        var cluster = new TestCluster(3, Options());
        cluster.Elect(1);
        var ex = Assert.Throws<NotLeaderException>(() => cluster[2].N.Propose(new byte[] { 1 }));
        Assert.That(ex!.LeaderId, Is.EqualTo(TestCluster.Id(1)));
        Assert.That(ex.NodeId, Is.EqualTo(TestCluster.Id(2)));
    }

    [Test]
    public void AStaleLeader_LearnsTheNewerTermFromTheAnswerToItsAppend_AndStepsDown()
    {
        // Reference: Raft paper §5.1 (stale requests are answered with the current term); etcd-raft's fix for pre-vote
        var cluster = new TestCluster(3, Options());
        cluster.Elect(1);
        var staleTerm = cluster[1].N.Term;
        cluster.Isolate(1);
        RaftTestHost? newLeader = null;
        for (var i = 0; i < 100 && newLeader is null; i++)
        {
            cluster.Tick(2);
            cluster.Tick(3);
            cluster.Stabilize();
            newLeader = cluster.Hosts.Values.FirstOrDefault(h => h.Id != TestCluster.Id(1) && h.N.Role == RaftRole.Leader);
        }

        Assert.That(newLeader, Is.Not.Null);
        Assert.That(newLeader!.N.Term, Is.GreaterThan(staleTerm));
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Leader), "node 1 has not noticed yet");

        cluster.HealAll();
        cluster.Propose(1, 1);
        cluster.Stabilize();
        Assert.That(cluster[1].N.Role, Is.EqualTo(RaftRole.Follower));
        Assert.That(cluster[1].N.Term, Is.GreaterThan(staleTerm));
    }
}
