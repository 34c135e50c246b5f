using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Paper;

/// <summary>
/// A vote cast in the term the node is already in changes the vote alone. It must be persisted before the vote is sent,
/// exactly like a term change (Raft paper §5.2, Figure 2: "votedFor ... updated on stable storage before responding").
/// These tests run the node with the production hard-state file, and restart it from that file alone.
/// </summary>
public sealed class VotePersistenceTests
{
    private static readonly RaftNodeId Self = new(1);
    private static readonly RaftNodeId CandidateA = new(2);
    private static readonly RaftNodeId CandidateB = new(3);

    private static RaftNode Start(string directory, MemoryRaftLog log) =>
        new(Self, PaperOptions.Create(preVote: false), log, new FileHardStateStore(directory).Load(), new Random(1));

    /// <summary>Processes every Ready as RaftHost does (persist, sync, then send); returns what was sent after the sync.</summary>
    private static async Task<List<RaftMessage>> ProcessAsync(RaftNode node, MemoryRaftLog log, FileHardStateStore store)
    {
        var sent = new List<RaftMessage>();
        while (node.HasReady)
        {
            var ready = node.GetReady();
            log.Append(ready.Entries);
            if (ready.HardState is { } hardState)
            {
                store.Save(hardState);
            }

            Assert.That(ready.MessagesBeforeSync.Any(m => m.Type == RaftMessageType.VoteResponse), Is.False, "a vote never leaves before its sync");
            if (ready.MustSync)
            {
                await log.SyncAsync(CancellationToken.None);
                await store.SyncAsync(CancellationToken.None);
            }

            sent.AddRange(ready.Messages);
            node.Advance(ready);
        }

        return sent;
    }

    [Test]
    public async Task AVoteCastInTheCurrentTerm_IsDurableBeforeItIsSent_AndARestartedNodeDoesNotVoteAgain()
    {
        using var dir = new TempDirectory();
        var log = new MemoryRaftLog(RaftSnapshot.Bootstrap(new ClusterConfig([Self, CandidateA, CandidateB], [])));
        var store = new FileHardStateStore(dir.Path);
        var node = Start(dir.Path, log);

        // The node hears of term 5 without voting (an answer from a peer already there): term 5, no vote, persisted.
        node.Step(new RaftMessage { Type = RaftMessageType.AppendResponse, From = CandidateB, To = Self, Term = 5 });
        await ProcessAsync(node, log, store);
        Assert.That(new FileHardStateStore(dir.Path).Load(), Is.EqualTo(new HardState(5, RaftNodeId.None, 0)));

        // Then it votes in term 5: only the vote changes.
        node.Step(new RaftMessage { Type = RaftMessageType.Vote, From = CandidateA, To = Self, Term = 5 });
        var ready = node.GetReady();
        Assert.That(ready.HardState, Is.EqualTo(new HardState(5, CandidateA, 0)), "the vote-only change is handed out to persist");
        Assert.That(ready.MustSync, Is.True);
        Assert.That(ready.Messages.Single(m => m.Type == RaftMessageType.VoteResponse).Reject, Is.False, "the vote goes out after the sync");
        store.Save(ready.HardState!.Value);
        await store.SyncAsync(CancellationToken.None);
        node.Advance(ready);
        Assert.That(new FileHardStateStore(dir.Path).Load().Vote, Is.EqualTo(CandidateA), "the vote is on disk when it is sent");

        // Power cut and restart from the file: asked again in term 5 by another candidate, it refuses.
        var restarted = Start(dir.Path, log);
        Assert.That(restarted.Vote, Is.EqualTo(CandidateA));
        restarted.Step(new RaftMessage { Type = RaftMessageType.Vote, From = CandidateB, To = Self, Term = 5 });
        var answers = await ProcessAsync(restarted, log, new FileHardStateStore(dir.Path));
        Assert.That(answers.Single(m => m.Type == RaftMessageType.VoteResponse).Reject, Is.True, "one vote per term, across a restart");
    }
}
