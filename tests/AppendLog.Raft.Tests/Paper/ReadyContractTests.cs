using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Paper;

public sealed class ReadyContractTests
{
    private static RaftNode SingleVoter(MemoryRaftLog log) =>
        new(new RaftNodeId(1), PaperOptions.Create(), log, default, new Random(1));

    [Test]
    public void Advance_RefusesABatchWhoseEntriesTheHostDidNotSync()
    {
        // Reference: Raft paper Figure 2 ("updated on stable storage before responding to RPCs"); the Ready contract
        var log = new MemoryRaftLog(RaftSnapshot.Bootstrap(new ClusterConfig([new RaftNodeId(1)], [])));
        var node = SingleVoter(log);
        for (var i = 0; i < 100 && node.Role != RaftRole.Leader; i++)
        {
            node.Tick();
        }

        var ready = node.GetReady();
        Assert.That(ready.Entries, Is.Not.Empty, "the single voter's no-op");
        log.Append(ready.Entries);
        Assert.Throws<RaftInvariantException>(() => node.Advance(ready));
    }

    [Test]
    public void Advance_RefusesABatchWhoseEntriesTheHostDidNotAppend()
    {
        // Reference: the Ready contract (every entry handed out is in the log before Advance)
        var log = new MemoryRaftLog(RaftSnapshot.Bootstrap(new ClusterConfig([new RaftNodeId(1)], [])));
        var node = SingleVoter(log);
        for (var i = 0; i < 100 && node.Role != RaftRole.Leader; i++)
        {
            node.Tick();
        }

        var ready = node.GetReady();
        log.Sync();
        Assert.Throws<RaftInvariantException>(() => node.Advance(ready));
    }

    [Test]
    public void ALeaderWithItsOwnWriteStillSyncing_AnswersAStalePreVote_WithoutClaimingTheWriteDurable()
    {
        // Reference: Raft thesis §10.2.1 (the leader's own write runs beside replication) and §9.6 (pre-vote). A
        // leader restarting member's stale pre-vote arrives while the leader's pipelined write syncs: the reply is a
        // batch with nothing to persist, which the host does not sync. Advancing it must neither fault the node (it
        // once did, stopping the leader's loop for good) nor count the leader's own copy before its sync.
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false));
        cluster.Elect(1);
        var leader = cluster[1];
        leader.PipelineLeaderWrites = true;
        var index = leader.N.Propose(new byte[] { 7 });
        var written = leader.BeginReady();
        Assert.That(written, Is.Not.Null);
        Assert.That(written!.MayAdvanceBeforeDurable, Is.True);
        Assert.That(leader.InFlight, Is.Null, "advanced before its sync");
        Assert.That(leader.Log.DurableIndex, Is.LessThan(index), "the write is still syncing");

        leader.N.Step(new RaftMessage { Type = RaftMessageType.PreVote, From = TestCluster.Id(3), To = TestCluster.Id(1), Term = leader.N.Term - 1 });
        var reply = leader.BeginReady();
        Assert.That(reply, Is.Not.Null);
        Assert.That(reply!.MustSync, Is.False);
        Assert.That(reply.Messages.Select(m => (m.Type, m.Reject)), Is.EqualTo(new[] { (RaftMessageType.PreVoteResponse, true) }));
        Assert.DoesNotThrow(() => leader.CompleteReady());
        Assert.That(leader.Log.DurableIndex, Is.LessThan(index), "answering did not sync the log");
        Assert.That(leader.N.Progress[TestCluster.Id(1)].Match, Is.LessThan(index), "the leader does not count its copy before its sync");

        leader.CompleteDurable();
        Assert.That(leader.N.Progress[TestCluster.Id(1)].Match, Is.EqualTo(index), "and counts it once durable");
    }

    [Test]
    public void ALeadersAppends_MayLeaveBeforeItsOwnSync_ButAVoteResponseNever()
    {
        // Reference: Raft thesis §10.2.1 (the leader writes to its disk in parallel with replication) and Figure 2
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false));
        cluster.Elect(1);
        cluster[1].N.Propose(new byte[] { 1 });
        var leaderReady = cluster[1].N.GetReady();
        Assert.That(leaderReady.Entries, Is.Not.Empty);
        Assert.That(leaderReady.MessagesBeforeSync, Is.Not.Empty);
        Assert.That(leaderReady.MessagesBeforeSync.Select(m => m.Type), Has.All.EqualTo(RaftMessageType.Append));
        Assert.That(leaderReady.Messages, Is.Empty);

        var voter = cluster[3].N;
        voter.Step(new RaftMessage { Type = RaftMessageType.Vote, From = TestCluster.Id(2), To = TestCluster.Id(3), Term = 9 });
        var voterReady = voter.GetReady();
        Assert.That(voterReady.MessagesBeforeSync, Is.Empty);
        Assert.That(voterReady.Messages.Single().Type, Is.EqualTo(RaftMessageType.VoteResponse));
    }

    [Test]
    public void AFollowersAcknowledgement_WaitsForItsSync()
    {
        // Reference: Raft paper Figure 2 (respond to RPCs only after updating stable storage)
        var cluster = new TestCluster(3, PaperOptions.Create());
        cluster.Elect(1);
        cluster[1].N.Propose(new byte[] { 1 });
        var append = cluster[1].Drain().First(m => m.To == TestCluster.Id(2) && m.Entries.Count > 0);
        cluster[2].N.Step(append);
        var ready = cluster[2].N.GetReady();
        Assert.That(ready.Entries, Is.Not.Empty);
        Assert.That(ready.MessagesBeforeSync, Is.Empty);
        Assert.That(ready.Messages.Single().Type, Is.EqualTo(RaftMessageType.AppendResponse));
    }

    [Test]
    public void StepBetweenGetReadyAndAdvance_IsRefused()
    {
        // Reference: the Ready contract (one batch at a time)
        var cluster = new TestCluster(3, PaperOptions.Create());
        var node = cluster[1].N;
        node.Step(new RaftMessage { Type = RaftMessageType.Vote, From = TestCluster.Id(2), To = TestCluster.Id(1), Term = 3 });
        _ = node.GetReady();
        Assert.Throws<RaftInvariantException>(() => node.Tick());
    }

    [Test]
    public void ASingleVoter_CommitsItsOwnEntriesOnceTheyAreDurable()
    {
        // Reference: Raft paper §5.3 (the leader's own durable copy is one of the majority)
        var host = new RaftTestHost(new RaftNodeId(1), new ClusterConfig([new RaftNodeId(1)], []), PaperOptions.Create(), 1);
        for (var i = 0; i < 100 && host.N.Role != RaftRole.Leader; i++)
        {
            host.N.Tick();
            host.Drain();
        }

        var index = host.N.Propose(new byte[] { 1 });
        Assert.That(host.N.Committed, Is.LessThan(index), "not before the host persisted it");
        host.Drain();
        Assert.That(host.N.Committed, Is.EqualTo(index));
        Assert.That(host.AppliedIndex, Is.EqualTo(index));
    }

    [Test]
    public void RaftOptions_RejectsAHeartbeatNoShorterThanTheElectionTimeout()
    {
        var options = new RaftOptions { HeartbeatInterval = TimeSpan.FromMilliseconds(200), ElectionTimeoutMinimum = TimeSpan.FromMilliseconds(150) };
        Assert.Throws<ArgumentOutOfRangeException>(() => options.Validate());
        Assert.That(new RaftOptions().Validate().ElectionTicksMin, Is.EqualTo(15));
    }
}
