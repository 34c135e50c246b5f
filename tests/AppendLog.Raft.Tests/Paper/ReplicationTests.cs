using AppendLog.Raft.Core;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Paper;

public sealed class ReplicationTests
{
    private static void ElectUntilLeader(TestCluster cluster, ulong node)
    {
        for (var round = 0; round < 50 && cluster[node].N.Role != RaftRole.Leader; round++)
        {
            cluster.Tick(node, 25);
            cluster.Stabilize();
        }

        Assert.That(cluster[node].N.Role, Is.EqualTo(RaftRole.Leader), $"node {node} wins an election");
    }

    [Test]
    public void CommittedEntries_AreAppliedInTheSameOrderOnEveryNode()
    {
        // Reference: Raft paper §5.3 (log replication) and §5.4.3 (state machine safety)
        var cluster = new TestCluster(3, PaperOptions.Create());
        cluster.Elect(1);
        for (byte i = 1; i <= 20; i++)
        {
            cluster.Propose(1, i);
        }

        cluster.Stabilize();
        cluster.Tick(1, 2);
        cluster.Stabilize();
        var expected = cluster[1].AppliedEntries.Select(e => (e.Index, e.Term, e.Data.ToArray())).ToList();
        Assert.That(expected, Has.Count.EqualTo(21), "the leader's no-op and 20 proposals");
        Assert.That(cluster[2].AppliedEntries.Select(e => (e.Index, e.Term, e.Data.ToArray())), Is.EqualTo(expected));
        Assert.That(cluster[3].AppliedEntries.Select(e => (e.Index, e.Term, e.Data.ToArray())), Is.EqualTo(expected));
    }

    [Test]
    public void ALeaderCutOffFromAMajority_CommitsNothing()
    {
        // Reference: Raft paper §5.3 (an entry is committed once the leader has replicated it on a majority)
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false));
        cluster.Elect(1);
        var committed = cluster[1].N.Committed;
        cluster.Isolate(1);
        cluster.Propose(1, 1);
        cluster.Stabilize();
        Assert.That(cluster[1].N.Committed, Is.EqualTo(committed));
    }

    [Test]
    public void AFollowerWithAConflictingSuffix_TruncatesItAndTakesTheLeadersEntries()
    {
        // Reference: Raft paper §5.3 (delete the existing entry and all that follow it)
        var cluster = new TestCluster(3, PaperOptions.Create(preVote: false, checkQuorum: false));
        cluster[1].SetDurableState(2, 1, 1);
        cluster[2].SetDurableState(2, 1, 1);
        cluster[3].SetDurableState(2, 1, 2, 2);
        ElectUntilLeader(cluster, 1);
        cluster.Tick(1, 2);
        cluster.Stabilize();

        var leaderTerm = cluster[1].N.Term;
        var terms = Enumerable.Range(1, 3).Select(i => cluster[3].N.TryGetTerm(i, out var t) ? t : -1).ToList();
        Assert.That(terms, Is.EqualTo(new long[] { 1, 1, leaderTerm }));
        Assert.That(cluster[3].N.LastIndex, Is.EqualTo(3));
    }

    [Test]
    public void ARejectedAppend_CarriesTheConflictingTerm_SoTheLeaderSkipsThatWholeTermInOneStep()
    {
        // Reference: Raft paper §5.3 (the optimisation: include the term of the conflicting entry and the first index it stores for that term)
        var cluster = new TestCluster(3, PaperOptions.Create(preVote: false, checkQuorum: false));
        cluster[1].SetDurableState(4, 1, 1, 1, 4, 4, 4, 4);
        cluster[2].SetDurableState(4, 1, 1, 1, 4, 4, 4, 4);
        cluster[3].SetDurableState(4, 1, 1, 1, 2, 2, 2, 2, 2, 2);
        var rejections = 0;
        cluster.Drop = m =>
        {
            rejections += m.Type == RaftMessageType.AppendResponse && m.Reject && m.From == TestCluster.Id(3) ? 1 : 0;
            return false;
        };
        ElectUntilLeader(cluster, 1);
        cluster.Tick(1, 2);
        cluster.Stabilize();

        Assert.That(rejections, Is.EqualTo(1), "one rejection skips the follower's four conflicting term-2 entries");
        Assert.That(cluster[3].N.LastIndex, Is.EqualTo(cluster[1].N.LastIndex));
        Assert.That(cluster[3].N.TryGetTerm(4, out var t4) ? t4 : -1, Is.EqualTo(4));
    }

    [Test]
    public void TheLeaderPipelinesAppends_ButKeepsNoMoreThanTheWindowInFlight()
    {
        // Reference: Raft paper §5.3 / etcd-raft progress (replicate state, bounded inflights)
        var cluster = new TestCluster(3, PaperOptions.Create(checkQuorum: false, batchBytes: 30, inflight: 2));
        cluster.Elect(1);
        var appendsToTwo = 0;
        cluster.Drop = m =>
        {
            if (m.Type == RaftMessageType.Append && m.To == TestCluster.Id(2) && m.Entries.Count > 0)
            {
                appendsToTwo++;
            }

            return m.Type == RaftMessageType.AppendResponse && m.From == TestCluster.Id(2);
        };
        for (byte i = 0; i < 10; i++)
        {
            cluster.Propose(1, i);
        }

        cluster.Stabilize();
        Assert.That(appendsToTwo, Is.EqualTo(2));
        Assert.That(cluster[1].N.Progress[TestCluster.Id(2)].IsPaused, Is.True);
        Assert.That(cluster[1].N.Committed, Is.EqualTo(11), "node 3 still forms the quorum");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void ALeaderNeverCommitsAnEarlierTermEntryByCountingReplicas(bool breakTheRule)
    {
        var faults = breakTheRule ? RaftTestingFaults.CommitPreviousTermByCounting : RaftTestingFaults.None;
        // Reference: Raft paper §5.4.2 and Figure 8
        var options = new RaftOptions
        {
            TickInterval = TimeSpan.FromMilliseconds(10),
            HeartbeatInterval = TimeSpan.FromMilliseconds(10),
            ElectionTimeoutMinimum = TimeSpan.FromMilliseconds(100),
            ElectionTimeoutMaximum = TimeSpan.FromMilliseconds(200),
            PreVote = false,
            CheckQuorum = false,
            TestingFaults = faults,
        };
        var cluster = new TestCluster(5, options);
        cluster[1].SetDurableState(3, 1, 2);
        cluster[2].SetDurableState(3, 1);
        cluster[3].SetDurableState(3, 1);
        cluster[4].SetDurableState(3, 1);
        cluster[5].SetDurableState(3, 1, 3);
        cluster.Cut(1, 5);
        cluster.Rewrite = m => m.Type == RaftMessageType.Append ? m with { Entries = [.. m.Entries.Where(e => e.Index < 3)] } : m;

        // (c) S1 leads term 4 and copies its term-2 entry to a majority; its own no-op is lost on the way.
        ElectUntilLeader(cluster, 1);
        Assert.That(cluster[2].N.TryGetTerm(2, out var t) ? t : -1, Is.EqualTo(2));
        Assert.That(cluster[3].N.TryGetTerm(2, out t) ? t : -1, Is.EqualTo(2));
        var oldLeaderCommit = cluster[1].N.Committed;

        // (d) S1 crashes; S5 wins with its term-3 entry and overwrites index 2 everywhere.
        cluster[1].Crash();
        cluster.Rewrite = null;
        ElectUntilLeader(cluster, 5);
        cluster.Tick(5, 2);
        cluster.Stabilize();
        Assert.That(cluster[5].N.Committed, Is.GreaterThanOrEqualTo(2));
        Assert.That(cluster[5].N.TryGetTerm(2, out t) ? t : -1, Is.EqualTo(3));

        if (faults == RaftTestingFaults.None)
        {
            Assert.That(oldLeaderCommit, Is.LessThan(2), "counting replicas of a term-2 entry did not commit it");
        }
        else
        {
            Assert.That(oldLeaderCommit, Is.EqualTo(2), "the broken rule committed the term-2 entry, which was then lost");
        }
    }
}
