using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Simulation;

/// <summary>The threaded host loop over the in-memory log and transport, with time from a FakeTimeProvider.</summary>
public sealed class RaftHostTests
{
    private sealed class Member
    {
        public required RaftHost Host { get; init; }

        public required MemoryRaftLog Log { get; init; }

        public List<long> Applied { get; } = [];
    }

    private static (List<Member> Members, InMemoryTransport.Network Network, FakeTimeProvider Time) Start(int count, CancellationToken stop)
    {
        var time = new FakeTimeProvider();
        var network = new InMemoryTransport.Network();
        var options = new RaftOptions();
        var ids = Enumerable.Range(1, count).Select(i => new RaftNodeId((ulong)i)).ToList();
        var members = new List<Member>();
        foreach (var id in ids)
        {
            var log = new MemoryRaftLog(RaftSnapshot.Bootstrap(new ClusterConfig(ids, [])));
            var store = new MemoryHardStateStore();
            var node = new RaftNode(id, options, log, store.Load(), new Random((int)id.Value));
            Member? member = null;
            var host = new RaftHost(node, log, store, network.Transport(), time, options,
                (entry, _, _) =>
                {
                    member!.Applied.Add(entry.Index);
                    return ValueTask.CompletedTask;
                },
                (_, _) => ValueTask.CompletedTask);
            member = new Member { Host = host, Log = log };
            network.Register(id, host.Receive);
            members.Add(member);
            _ = Task.Run(() => host.RunAsync(stop), stop);
        }

        return (members, network, time);
    }

    private static async Task<Member> AwaitLeader(List<Member> members, FakeTimeProvider time, Member? except = null)
    {
        for (var i = 0; i < 5000; i++)
        {
            var leader = members.FirstOrDefault(m => m != except && m.Host.Status.Role == RaftRole.Leader);
            if (leader is not null)
            {
                return leader;
            }

            time.Advance(TimeSpan.FromMilliseconds(10));
            await Task.Delay(1);
        }

        throw new AssertionException("no leader was elected");
    }

    private static async Task<long> ProposeWhileTimeRuns(Member leader, FakeTimeProvider time, byte value)
    {
        var proposal = leader.Host.ProposeAsync(new byte[] { value }, CancellationToken.None).AsTask();
        for (var i = 0; i < 5000 && !proposal.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(10));
            await Task.Delay(1);
        }

        return await proposal;
    }

    [Test]
    public async Task ThreeHosts_ElectALeader_AndAProposalCompletesOnceApplied()
    {
        using var stop = new CancellationTokenSource();
        var (members, _, time) = Start(3, stop.Token);
        var leader = await AwaitLeader(members, time);

        var index = await ProposeWhileTimeRuns(leader, time, 1);
        Assert.That(leader.Applied, Does.Contain(index));
        Assert.That(leader.Log.DurableIndex, Is.GreaterThanOrEqualTo(index));
        await stop.CancelAsync();
    }

    [Test]
    public async Task AProposalToAFollower_FailsWithNotLeader()
    {
        using var stop = new CancellationTokenSource();
        var (members, _, time) = Start(3, stop.Token);
        var leader = await AwaitLeader(members, time);
        await ProposeWhileTimeRuns(leader, time, 1);

        var follower = members.First(m => m != leader);
        var ex = Assert.ThrowsAsync<NotLeaderException>(async () => await follower.Host.ProposeAsync(new byte[] { 2 }, CancellationToken.None));
        Assert.That(ex!.LeaderId, Is.EqualTo(leader.Host.Status.Leader));
        await stop.CancelAsync();
    }

    [Test]
    public async Task WhenTheLeaderIsIsolated_TheOthersElectANewOneAndCommit()
    {
        using var stop = new CancellationTokenSource();
        var (members, network, time) = Start(3, stop.Token);
        var leader = await AwaitLeader(members, time);
        await ProposeWhileTimeRuns(leader, time, 1);

        var oldLeaderId = leader.Host.Status.Leader;
        network.Isolate(oldLeaderId);
        var next = await AwaitLeader(members, time, except: leader);
        var index = await ProposeWhileTimeRuns(next, time, 2);
        Assert.That(next.Applied, Does.Contain(index));
        await stop.CancelAsync();
    }

    [Test]
    public async Task TicksFollowTheClock_WhenTimerCallbacksComeLateOrNotAtAll()
    {
        // A starved process gets its timer callbacks late, and a timer does not repeat the ones it missed. The node's
        // election clock must still follow the time that passed: here only one callback in ten arrives, and a single
        // voter must campaign (and win) once an election timeout has passed on the clock, not ten.
        using var stop = new CancellationTokenSource();
        var time = new SparseTimerTimeProvider(keepOneIn: 10);
        var options = new RaftOptions();
        var id = new RaftNodeId(1);
        var log = new MemoryRaftLog(RaftSnapshot.Bootstrap(new ClusterConfig([id], [])));
        var store = new MemoryHardStateStore();
        var host = new RaftHost(new RaftNode(id, options, log, store.Load(), new Random(1)), log, store,
            new InMemoryTransport.Network().Transport(), time, options, (_, _, _) => ValueTask.CompletedTask, (_, _) => ValueTask.CompletedTask);
        var loop = Task.Run(() => host.RunAsync(stop.Token), stop.Token);

        // 2 election timeouts of clock time, in tick-sized steps: 60 callbacks due, 6 delivered.
        var steps = (int)(2 * options.ElectionTimeoutMaximum / options.TickInterval);
        for (var i = 0; i < steps; i++)
        {
            time.Advance(options.TickInterval);
            await Task.Delay(1);
        }

        for (var i = 0; i < 500 && host.Status.Role != RaftRole.Leader; i++)
        {
            await Task.Delay(5);
        }

        Assert.That(time.Delivered, Is.LessThan(options.ElectionTicksMin), "fewer callbacks than an election timeout's ticks");
        Assert.That(host.Status.Role, Is.EqualTo(RaftRole.Leader), "the node counted the time, not the callbacks");
        await stop.CancelAsync();
        Assert.That(async () => await loop, Throws.InstanceOf<OperationCanceledException>());
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ALeaderCutOffFromItsMajority_NeverCompletesAReadBarrier_AndBoundsTheReadsWaiting()
    {
        // Without check-quorum a cut-off leader never steps down by itself: its reads wait, and past the bound fail at once.
        using var stop = new CancellationTokenSource();
        var time = new FakeTimeProvider();
        var network = new InMemoryTransport.Network();
        var options = new RaftOptions { CheckQuorum = false };
        var ids = Enumerable.Range(1, 3).Select(i => new RaftNodeId((ulong)i)).ToList();
        var hosts = new List<RaftHost>();
        foreach (var id in ids)
        {
            var log = new MemoryRaftLog(RaftSnapshot.Bootstrap(new ClusterConfig(ids, [])));
            var store = new MemoryHardStateStore();
            var host = new RaftHost(new RaftNode(id, options, log, store.Load(), new Random((int)id.Value)), log, store,
                network.Transport(), time, options, (_, _, _) => ValueTask.CompletedTask, (_, _) => ValueTask.CompletedTask)
            {
                ReadsOutstandingMax = 3,
            };
            network.Register(id, host.Receive);
            hosts.Add(host);
            _ = Task.Run(() => host.RunAsync(stop.Token), stop.Token);
        }

        RaftHost? leader = null;
        for (var i = 0; i < 5000 && leader is null; i++)
        {
            leader = hosts.FirstOrDefault(h => h.Status.Role == RaftRole.Leader);
            time.Advance(TimeSpan.FromMilliseconds(10));
            await Task.Delay(1);
        }

        Assert.That(leader, Is.Not.Null);
        var read = leader!.ReadIndexAsync(CancellationToken.None).AsTask();
        for (var i = 0; i < 5000 && !read.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(10));
            await Task.Delay(1);
        }

        Assert.That(await read, Is.GreaterThan(0), "a connected leader serves its barrier");
        network.Isolate(leader.Status.Leader);
        var waiting = Enumerable.Range(0, 3).Select(_ => leader.ReadIndexAsync(CancellationToken.None).AsTask()).ToList();
        for (var i = 0; i < 200; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(10));
            await Task.Delay(1);
        }

        Assert.That(waiting.Any(t => t.IsCompleted), Is.False, "cut off, it cannot confirm its leadership: the barriers wait");
        Assert.ThrowsAsync<InvalidOperationException>(async () => await leader.ReadIndexAsync(CancellationToken.None), "past the bound");
        await stop.CancelAsync();
    }

    /// <summary>
    /// A process pause (a long GC, a stopped VM) of a leader with lease reads: while it is paused its clock runs but its
    /// loop sees nothing, the others elect a new leader and commit a write. When it resumes, a read may be taken before
    /// the first tick after the pause; the lease must be judged by the clock, not by the ticks the loop happened to see,
    /// or the read is served stale (it would not include the new leader's write). Breaking it: drop the host's
    /// TickToNow before a read, and this read completes with the old index.
    /// </summary>
    [Test]
    [CancelAfter(30_000)]
    public async Task ALeaderResumingFromAPause_ServesNoLeaseReadPastItsLease_WhenOthersElectedANewLeader()
    {
        using var stop = new CancellationTokenSource();
        var time = new PausingTimeProvider();
        var network = new InMemoryTransport.Network();
        var options = new RaftOptions { LeaseReads = true, CheckQuorum = true };
        var ids = Enumerable.Range(1, 3).Select(i => new RaftNodeId((ulong)i)).ToList();
        var hosts = new List<RaftHost>();
        foreach (var id in ids)
        {
            var log = new MemoryRaftLog(RaftSnapshot.Bootstrap(new ClusterConfig(ids, [])));
            var store = new MemoryHardStateStore();
            var host = new RaftHost(new RaftNode(id, options, log, store.Load(), new Random((int)id.Value)), log, store,
                network.Transport(), time, options, (_, _, _) => ValueTask.CompletedTask, (_, _) => ValueTask.CompletedTask);
            network.Register(id, host.Receive);
            hosts.Add(host);
            _ = Task.Run(() => host.RunAsync(stop.Token), stop.Token);
        }

        async Task<T> WhileTimeRuns<T>(Task<T> task)
        {
            for (var i = 0; i < 5000 && !task.IsCompleted; i++)
            {
                time.Advance(options.TickInterval);
                await Task.Delay(1);
            }

            return await task;
        }

        RaftHost? leader = null;
        for (var i = 0; i < 5000 && leader is null; i++)
        {
            leader = hosts.FirstOrDefault(h => h.Status.Role == RaftRole.Leader);
            time.Advance(options.TickInterval);
            await Task.Delay(1);
        }

        Assert.That(leader, Is.Not.Null);
        await WhileTimeRuns(leader!.ProposeAsync(new byte[] { 1 }, CancellationToken.None).AsTask());
        var before = await WhileTimeRuns(leader.ReadIndexAsync(CancellationToken.None).AsTask());

        // Pause: no timer callback and no message reaches the old leader; time runs for everyone.
        time.Paused.Add(leader);
        network.Isolate(leader.Status.Leader);
        RaftHost? next = null;
        for (var i = 0; i < 5000 && next is null; i++)
        {
            next = hosts.FirstOrDefault(h => h != leader && h.Status.Role == RaftRole.Leader);
            time.Advance(options.TickInterval);
            await Task.Delay(1);
        }

        Assert.That(next, Is.Not.Null, "the others elected a new leader");
        var write = await WhileTimeRuns(next!.ProposeAsync(new byte[] { 2 }, CancellationToken.None).AsTask());
        Assert.That(write, Is.GreaterThan(before));

        // Resume: the read is the first thing the old leader's loop sees.
        var read = leader.ReadIndexAsync(CancellationToken.None).AsTask();
        await Task.WhenAny(read, Task.Delay(500));
        time.Paused.Remove(leader);
        for (var i = 0; i < 100 && !read.IsCompleted; i++)
        {
            time.Advance(options.TickInterval);
            await Task.Delay(1);
        }

        Assert.That(read.IsCompleted, Is.True, "the read ends: cut off, the old leader steps down (check-quorum)");
        Assert.That(async () => await read, Throws.InstanceOf<NotLeaderException>(),
            $"a read that completes would miss the new leader's write at index {write}");
        await stop.CancelAsync();
    }

    /// <summary>A fake clock whose timers skip their callbacks for the hosts (timer states) in <see cref="Paused"/>.</summary>
    private sealed class PausingTimeProvider : FakeTimeProvider
    {
        public HashSet<object> Paused { get; } = [];

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            base.CreateTimer(
                s =>
                {
                    if (s is null || !Paused.Contains(s))
                    {
                        callback(s);
                    }
                },
                state,
                dueTime,
                period);
    }

    /// <summary>A fake clock whose timers deliver only one callback in <c>keepOneIn</c>, as a starved thread pool might.</summary>
    private sealed class SparseTimerTimeProvider(int keepOneIn) : FakeTimeProvider
    {
        private int _calls;

        public int Delivered { get; private set; }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            base.CreateTimer(
                s =>
                {
                    if (Interlocked.Increment(ref _calls) % keepOneIn == 0)
                    {
                        Delivered++;
                        callback(s);
                    }
                },
                state,
                dueTime,
                period);
    }
}
