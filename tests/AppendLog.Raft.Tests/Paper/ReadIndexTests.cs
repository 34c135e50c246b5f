using AppendLog.Raft.Core;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Paper;

/// <summary>Linearizable reads by ReadIndex. Reference: Raft thesis §6.4 ("Processing read-only queries more efficiently").</summary>
public sealed class ReadIndexTests
{
    [Test]
    public void ALeaderServesARead_OnlyAfterAQuorumAnsweredAHeartbeatRoundSentAfterIt()
    {
        var cluster = new TestCluster(3, PaperOptions.Create());
        cluster.Elect(1);
        cluster.Propose(1, 7);
        cluster.Stabilize();
        var leader = cluster[1];
        var committed = leader.N.Committed;

        cluster.Drop = m => m.Type == RaftMessageType.HeartbeatResponse;
        leader.N.ReadIndex(requestId: 41);
        cluster.Stabilize();
        Assert.That(leader.ReadsServed, Is.Empty, "no follower's answer arrived: leadership is unconfirmed");
        Assert.That(leader.N.ReadsOutstanding, Is.EqualTo(1));

        // The next heartbeat carries the same round; its answers confirm it.
        cluster.Drop = null;
        cluster.Tick(1);
        cluster.Stabilize();
        Assert.That(leader.ReadsServed, Is.EqualTo(new[] { (41L, committed, committed) }));
        Assert.That(leader.N.ReadsOutstanding, Is.Zero);
    }

    [Test]
    public void ReadsRegisteredBeforeTheHeartbeatsLeave_ShareOneRound()
    {
        var cluster = new TestCluster(5, PaperOptions.Create());
        cluster.Elect(1);
        cluster.Stabilize();
        var leader = cluster[1];
        leader.N.ReadIndex(1);
        leader.N.ReadIndex(2);
        leader.N.ReadIndex(3);
        var sent = leader.Drain();
        Assert.That(sent.Count(m => m.Type == RaftMessageType.Heartbeat), Is.EqualTo(4), "one heartbeat per follower for three reads");

        cluster.InFlight.AddRange(sent);
        cluster.Stabilize();
        Assert.That(leader.ReadsServed.Select(r => r.RequestId), Is.EqualTo(new long[] { 1, 2, 3 }));
    }

    [Test]
    public void AnAnswerToAnEarlierRound_DoesNotConfirmALaterRead()
    {
        var cluster = new TestCluster(3, PaperOptions.Create());
        cluster.Elect(1);
        cluster.Stabilize();
        var leader = cluster[1];
        leader.N.ReadIndex(1);
        var firstRound = leader.Drain();
        leader.N.ReadIndex(2);
        var secondRound = leader.Drain();

        // Only the first round reaches the followers: it confirms read 1, never read 2.
        cluster.InFlight.AddRange(firstRound);
        cluster.Stabilize();
        Assert.That(leader.ReadsServed.Select(r => r.RequestId), Is.EqualTo(new long[] { 1 }));

        cluster.InFlight.AddRange(secondRound);
        cluster.Stabilize();
        Assert.That(leader.ReadsServed.Select(r => r.RequestId), Is.EqualTo(new long[] { 1, 2 }));
    }

    [Test]
    public void ANewLeader_TakesNoReadIndexUntilItHasCommittedAnEntryOfItsTerm()
    {
        // Until its no-op commits, the leader's commit index may lag entries an earlier leader committed.
        var cluster = new TestCluster(3, PaperOptions.Create());
        cluster.Drop = m => m.Type == RaftMessageType.AppendResponse;
        cluster.Elect(1);
        var leader = cluster[1];
        Assert.That(leader.N.Role, Is.EqualTo(RaftRole.Leader));
        var noOp = leader.N.LastIndex;
        Assert.That(leader.N.Committed, Is.LessThan(noOp), "the no-op of its term is not committed yet");

        leader.N.ReadIndex(9);
        cluster.Tick(1);
        cluster.Stabilize();
        Assert.That(leader.ReadsServed, Is.Empty, "heartbeats were answered, but the read waits for the term's first commit");

        cluster.Drop = null;
        cluster.Tick(1);
        cluster.Stabilize();
        Assert.That(leader.ReadsServed.Single().RequestId, Is.EqualTo(9));
        Assert.That(leader.ReadsServed.Single().Index, Is.GreaterThanOrEqualTo(noOp));
    }

    [Test]
    public void AFollowerRefusesARead_NamingTheLeader()
    {
        var cluster = new TestCluster(3, PaperOptions.Create());
        cluster.Elect(1);
        var ex = Assert.Throws<NotLeaderException>(() => cluster[2].N.ReadIndex(1));
        Assert.That(ex!.LeaderId, Is.EqualTo(TestCluster.Id(1)));
    }

    [Test]
    public void ALeaderHandingOverLeadership_RefusesReads()
    {
        var cluster = new TestCluster(3, PaperOptions.Create());
        cluster.Elect(1);
        cluster.Isolate(2);
        cluster[1].N.TransferLeadership(TestCluster.Id(2));
        Assert.Throws<NotLeaderException>(() => cluster[1].N.ReadIndex(1));
    }

    [Test]
    public void ASoleVoter_ServesAReadAtOnce()
    {
        var cluster = new TestCluster(1, PaperOptions.Create());
        cluster.Elect(1);
        cluster.Stabilize();
        var leader = cluster[1];
        leader.N.ReadIndex(3);
        leader.Drain();
        Assert.That(leader.ReadsServed, Is.EqualTo(new[] { (3L, leader.N.Committed, leader.N.Committed) }));
    }

    /// <summary>
    /// The heart of ReadIndex: a leader cut off in a minority partition while the majority elects a new leader and
    /// commits a write must never serve a read (it would miss that write). With check-quorum it steps down and the read
    /// fails; without, it believes it leads forever and the read waits, until it hears of the newer term and fails.
    /// With <see cref="RaftTestingFaults.ServeReadsWithoutQuorum"/> (the broken rule) the same run serves the stale read,
    /// so this test has teeth.
    /// </summary>
    [TestCase(true, false)]
    [TestCase(false, false)]
    [TestCase(true, true)]
    [TestCase(false, true)]
    public void ADeposedLeaderInAMinorityPartition_NeverServesARead(bool checkQuorum, bool brokenRule)
    {
        var faults = brokenRule ? RaftTestingFaults.ServeReadsWithoutQuorum : RaftTestingFaults.None;
        var cluster = new TestCluster(5, PaperOptions.Create(checkQuorum: checkQuorum, faults: faults));
        cluster.Elect(1);
        cluster.Propose(1, 1);
        cluster.Stabilize();
        var old = cluster[1];
        cluster.Isolate(1);

        // The majority elects a leader of a newer term and commits a write the old leader never sees.
        RaftTestHost? leader = null;
        for (var round = 0; round < 100 && leader is null; round++)
        {
            foreach (var id in new ulong[] { 2, 3, 4, 5 })
            {
                cluster.Tick(id);
            }

            cluster.Stabilize();
            leader = cluster.Hosts.Values.FirstOrDefault(h => h.Id != old.Id && h.N.Role == RaftRole.Leader);
        }

        Assert.That(leader, Is.Not.Null, "the majority elected a leader");
        leader!.N.Propose(new byte[] { 2 });
        cluster.Stabilize();
        var newerCommit = leader.N.Committed;
        Assert.That(old.N.Committed, Is.LessThan(newerCommit), "the old leader misses a committed write");

        // A client that saw that write now reads from the old leader, which may still think it leads.
        if (old.N.Role == RaftRole.Leader)
        {
            old.N.ReadIndex(77);
            for (var i = 0; i < 50; i++)
            {
                cluster.Tick(1);
                cluster.Stabilize();
            }
        }

        if (faults == RaftTestingFaults.ServeReadsWithoutQuorum)
        {
            Assert.That(old.ReadsServed.Select(r => r.Index), Has.Some.LessThan(newerCommit), "the broken rule serves the stale read");
            return;
        }

        Assert.That(old.ReadsServed, Is.Empty, "a deposed leader never serves a read");
        if (checkQuorum)
        {
            Assert.That(old.N.Role, Is.Not.EqualTo(RaftRole.Leader), "check-quorum stepped it down");
        }

        cluster.HealAll();
        for (var i = 0; i < 50 && old.N.Role == RaftRole.Leader; i++)
        {
            cluster.Tick(1);
            cluster.Stabilize();
        }

        Assert.That(old.ReadsServed, Is.Empty);
        Assert.That(old.N.Role, Is.Not.EqualTo(RaftRole.Leader), "it heard of the newer term");
        Assert.That(old.ReadsFailed, Does.Contain(77L), "its read failed, so the client retries on the leader");
    }
}
