using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Simulation;

/// <summary>
/// The production <see cref="RaftHost"/> with pipelined leader writes, over a log whose write completion the test controls:
/// the leader's own copy of an entry counts toward a quorum only once its write is durable, never when it is merely
/// written. (The simulation drives the test host, and SIGKILL never loses written data, so only a test that holds the
/// leader's sync back can see the host get this wrong.)
/// </summary>
public sealed class RaftHostDurabilityTests
{
    /// <summary>A <see cref="MemoryRaftLog"/> whose writes become durable only when the test opens the gate.</summary>
    private sealed class GatedRaftLog(MemoryRaftLog inner) : IRaftLog
    {
        private volatile TaskCompletionSource? _gate;

        public MemoryRaftLog Inner => inner;

        /// <summary>Writes made from now on stay undurable until <see cref="Open"/>.</summary>
        public void Close() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Open() => _gate?.TrySetResult();

        public RaftSnapshot Snapshot => inner.Snapshot;

        public long FirstIndex => inner.FirstIndex;

        public long LastIndex => inner.LastIndex;

        public long DurableIndex => inner.DurableIndex;

        public bool NeedsFetch => inner.NeedsFetch;

        public bool TryGetTerm(long index, out long term) => inner.TryGetTerm(index, out term);

        public void Append(IReadOnlyList<RaftEntry> entries) => inner.Append(entries);

        public void Read(long from, long to, long maxBytes, List<RaftEntry> into) => inner.Read(from, to, maxBytes, into);

        public ValueTask FetchAsync(CancellationToken cancellationToken) => inner.FetchAsync(cancellationToken);

        public void ReadConfigChanges(List<RaftEntry> into) => inner.ReadConfigChanges(into);

        /// <summary>When set, every sync and every pipelined write's durability fails with it (EIO from fdatasync).</summary>
        public Exception? SyncFailure { get; set; }

        public async ValueTask SyncAsync(CancellationToken cancellationToken)
        {
            if (SyncFailure is { } failure)
            {
                throw failure;
            }

            if (_gate is { } gate)
            {
                await gate.Task.WaitAsync(cancellationToken);
            }

            await inner.SyncAsync(cancellationToken);
        }

        public async ValueTask<PendingDurability> WriteAsync(CancellationToken cancellationToken)
        {
            var written = await inner.WriteAsync(cancellationToken);
            return _gate is { } gate ? written with { Durable = DurableAfter(gate.Task, written.Durable) } : written;

            static async Task DurableAfter(Task gate, Task durable)
            {
                await gate;
                await durable;
            }
        }

        public void MarkDurable(PendingDurability written) => inner.MarkDurable(written);

        public void InstallSnapshot(RaftSnapshot snapshot) => inner.InstallSnapshot(snapshot);

        public void Compact(RaftSnapshot snapshot) => inner.Compact(snapshot);

        public (long Received, SnapshotImage? Image) ReceiveSnapshotChunk(SnapshotMetadata metadata, long length, long offset, ReadOnlySpan<byte> chunk, RaftNodeId sender) =>
            inner.ReceiveSnapshotChunk(metadata, length, offset, chunk, sender);
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task ALeadersPipelinedWrite_CountsTowardAQuorum_OnlyOnceItIsDurable()
    {
        using var stop = new CancellationTokenSource();
        var time = new FakeTimeProvider();
        var network = new InMemoryTransport.Network();
        var options = new RaftOptions();
        var ids = Enumerable.Range(1, 3).Select(i => new RaftNodeId((ulong)i)).ToList();
        var hosts = new Dictionary<RaftNodeId, (RaftHost Host, GatedRaftLog Log)>();
        foreach (var id in ids)
        {
            var log = new GatedRaftLog(new MemoryRaftLog(RaftSnapshot.Bootstrap(new ClusterConfig(ids, []))));
            var store = new MemoryHardStateStore();
            var node = new RaftNode(id, options, log, store.Load(), new Random((int)id.Value));
            var host = new RaftHost(node, log, store, network.Transport(), time, options,
                (_, _, _) => ValueTask.CompletedTask, (_, _) => ValueTask.CompletedTask)
            {
                PipelineLeaderWrites = true,
            };
            network.Register(id, host.Receive);
            hosts[id] = (host, log);
            _ = Task.Run(() => host.RunAsync(stop.Token), stop.Token);
        }

        RaftNodeId leaderId = default;
        for (var i = 0; i < 5000 && leaderId.IsNone; i++)
        {
            leaderId = hosts.FirstOrDefault(h => h.Value.Host.Status.Role == RaftRole.Leader).Key;
            time.Advance(TimeSpan.FromMilliseconds(10));
            await Task.Delay(1);
        }

        Assert.That(leaderId.IsNone, Is.False, "a leader was elected");
        var (leader, leaderLog) = hosts[leaderId];
        var first = leader.ProposeAsync(new byte[] { 1 }, CancellationToken.None).AsTask();
        await AdvanceUntilAsync(time, () => first.IsCompleted);
        await first; // the group works, with every write durable at once

        // One follower is cut off: a quorum is the leader and the other follower. The leader's writes stay undurable.
        var cut = ids.First(id => id != leaderId);
        var other = ids.First(id => id != leaderId && id != cut);
        network.Isolate(cut);
        leaderLog.Close();
        var before = leaderLog.LastIndex;
        var proposal = leader.ProposeAsync(new byte[] { 2 }, CancellationToken.None).AsTask();
        await AdvanceUntilAsync(time, () => leaderLog.LastIndex > before && hosts[other].Log.DurableIndex >= leaderLog.LastIndex, steps: 2000);
        var index = leaderLog.LastIndex;
        Assert.That(index, Is.EqualTo(before + 1), "the proposal is the leader's next entry");
        Assert.That(hosts[other].Log.DurableIndex, Is.GreaterThanOrEqualTo(index), "the other follower has the entry durable");
        await AdvanceUntilAsync(time, () => proposal.IsCompleted, steps: 100);
        Assert.Multiple(() =>
        {
            Assert.That(leaderLog.DurableIndex, Is.LessThan(index), "the leader's own write of it is not durable yet");
            Assert.That(proposal.IsCompleted, Is.False, "so it is on one member's disk only, and must not commit");
            Assert.That(leader.Status.Committed, Is.LessThan(index));
        });

        leaderLog.Open();
        await AdvanceUntilAsync(time, () => proposal.IsCompleted);
        Assert.That(await proposal, Is.EqualTo(index), "once the leader's write is durable, the entry commits");
        await stop.CancelAsync();
    }

    /// <summary>A hard-state store whose sync fails when told to.</summary>
    private sealed class FailingHardStateStore : IHardStateStore
    {
        private readonly MemoryHardStateStore _inner = new();

        public Exception? SyncFailure { get; set; }

        public HardState Load() => _inner.Load();

        public void Save(HardState state) => _inner.Save(state);

        public ValueTask SyncAsync(CancellationToken cancellationToken) =>
            SyncFailure is { } failure ? ValueTask.FromException(failure) : _inner.SyncAsync(cancellationToken);
    }

    private sealed class RecordingTransport : AppendLog.Raft.Transport.IRaftTransport
    {
        public System.Collections.Concurrent.ConcurrentQueue<RaftMessage> Sent { get; } = new();

        public void Send(RaftMessage message) => Sent.Enqueue(message);
    }

    /// <summary>
    /// EIO on fdatasync (of the log or of the hard state) stops the member (fail-stop): after a failed sync the page
    /// state is unknown (Fsyncgate), so it must neither grant the vote nor acknowledge the entries that batch was to make
    /// durable, and its loop ends with the error (ReplicatedLog then reports the fault and closes its connections).
    /// Breaking it: catch the IOException around the host's syncs and carry on, and the vote and the acknowledgement go out.
    /// </summary>
    [TestCase("log", "vote")]
    [TestCase("log", "append")]
    [TestCase("hard state", "vote")]
    [TestCase("hard state", "append")]
    [CancelAfter(30_000)]
    public async Task AMemberWhoseSyncFails_StopsWithoutSendingWhatItCouldNotPersist(string failing, string request)
    {
        var ids = Enumerable.Range(1, 3).Select(i => new RaftNodeId((ulong)i)).ToList();
        var self = ids[0];
        var peer = ids[1];
        var options = new RaftOptions();
        var log = new GatedRaftLog(new MemoryRaftLog(RaftSnapshot.Bootstrap(new ClusterConfig(ids, []))));
        var store = new FailingHardStateStore();
        var transport = new RecordingTransport();
        var host = new RaftHost(new RaftNode(self, options, log, store.Load(), new Random(1)), log, store, transport,
            new FakeTimeProvider(), options, (_, _, _) => ValueTask.CompletedTask, (_, _) => ValueTask.CompletedTask);
        var eio = new IOException("Input/output error (EIO) from fdatasync");
        if (failing == "log")
        {
            log.SyncFailure = eio;
        }
        else
        {
            store.SyncFailure = eio;
        }

        var loop = host.RunAsync(CancellationToken.None);
        host.Receive(request == "vote"
            ? new RaftMessage { Type = RaftMessageType.Vote, From = peer, To = self, Term = 1 }
            : new RaftMessage
            {
                Type = RaftMessageType.Append, From = peer, To = self, Term = 1,
                Entries = [new RaftEntry(1, 1, RaftEntryKind.Normal, new byte[] { 7 })],
            });

        // Bounded: a host that swallowed the error would run on, and the test must fail, not hang.
        var thrown = Assert.ThrowsAsync<IOException>(async () => await loop.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.That(thrown, Is.SameAs(eio), "the loop stops with the sync's own error");
        Assert.That(transport.Sent.Where(m => m.Type is RaftMessageType.VoteResponse or RaftMessageType.AppendResponse), Is.Empty,
            "no vote granted and no entry acknowledged that the member could not make durable");
        Assert.That(async () => await host.ProposeAsync(new byte[] { 1 }, CancellationToken.None),
            Throws.InstanceOf<System.Threading.Channels.ChannelClosedException>().With.InnerException.SameAs(eio), "later calls fail with the same error");
    }

    private static async Task AdvanceUntilAsync(FakeTimeProvider time, Func<bool> done, int steps = 5000)
    {
        for (var i = 0; i < steps && !done(); i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(10));
            await Task.Delay(1);
        }
    }
}
