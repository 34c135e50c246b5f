using System.Threading.Channels;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Transport;

namespace AppendLog.Raft.Core;

/// <summary>A snapshot of a host's state, for routing clients and for monitoring.</summary>
internal sealed record RaftHostStatus(RaftRole Role, RaftNodeId Leader, long Term)
{
    public long Committed { get; init; }

    public long Applied { get; init; }

    /// <summary>The last index handed to the apply task (at most <see cref="RaftHost.ApplyEntriesQueuedMax"/> past <see cref="Applied"/>).</summary>
    public long HandedOut { get; init; }

    public long LastIndex { get; init; }

    /// <summary>On a leader: each other member, the highest index known to match its log, whether it is a learner, and
    /// whether it was heard from within the current check-quorum period. Empty elsewhere.</summary>
    public IReadOnlyList<(RaftNodeId Id, long Match, bool IsLearner, bool RecentActive)> Followers { get; init; } = [];

    /// <summary>The membership in force on this node (the latest in its log, committed or not).</summary>
    public ClusterConfig Config { get; init; } = ClusterConfig.Empty;
}

/// <summary>
/// Runs one <see cref="RaftNode"/> for real: a single loop owns the node, takes inputs (peer messages, ticks from
/// a <see cref="TimeProvider"/> timer, proposals) from a bounded channel, and processes each <see cref="Ready"/> in
/// the contract's order: write the log and hard state, await their sync, send, hand committed entries to apply, advance.
/// It is generic over the storage seams and the transport, so the SegmentedLog adapter and the TCP transport plug in
/// unchanged.
/// <para>
/// The state machine runs on its own task, not on the loop: the loop hands committed entries (and snapshots to restore)
/// to a queue that the apply task drains in order, so a slow state machine never delays votes, heartbeats or
/// acknowledgements. The queue is bounded by back-pressure on the node (<see cref="RaftNode.LimitApplyTo"/>): at most
/// <see cref="ApplyEntriesQueuedMax"/> entries are handed out beyond the last one applied. Snapshots are taken on the
/// apply task too, between two entries (a consistent point of the state machine), into a file
/// (<see cref="TakeSnapshot"/>); the loop then compacts the log with it.
/// </para>
/// <para>
/// A proposal completes when its entry is applied here, with its index; it fails with
/// <see cref="NotLeaderException"/> when this node is not the leader or when a different entry (of another leader)
/// ends up at its index. A storage failure faults the host: the loop stops and every waiter fails with it.
/// </para>
/// </summary>
internal sealed class RaftHost
{
    /// <summary>Inputs queued for the loop (STYLE.md 2): peers' messages beyond this are dropped, proposals wait.</summary>
    private const int InputsQueuedMax = 4096;

    /// <summary>Inputs handled before the node's Ready is processed: bounds the work (and the latency) one sync carries.</summary>
    private const int InputsPerReadyMax = 1024;

    private readonly RaftNode _node;
    private readonly IRaftLog _log;
    private readonly IHardStateStore _hardState;
    private readonly IRaftTransport _transport;
    private readonly TimeProvider _time;
    private readonly TimeSpan _tickInterval;
    private readonly int _ticksCatchUpMax;
    private readonly Func<RaftEntry, long, CancellationToken, ValueTask> _apply;
    private readonly Func<RaftSnapshot, CancellationToken, ValueTask> _restore;
    private readonly Func<RaftEntry, long> _resultOf;
    private readonly Channel<Input> _inputs = Channel.CreateBounded<Input>(new BoundedChannelOptions(InputsQueuedMax)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });

    /// <summary>Work for the apply task, in log order. Bounded through <see cref="RaftNode.LimitApplyTo"/>, not by the channel.</summary>
    private readonly Channel<ApplyWork> _applyQueue = Channel.CreateUnbounded<ApplyWork>(new UnboundedChannelOptions
    {
        SingleReader = true,
        SingleWriter = true,
    });

    /// <summary>The last index the apply task applied (or restored a snapshot through); written there, read anywhere.</summary>
    private long _applied;

    /// <summary>1 while an <see cref="AppliedInput"/> is queued for the loop (so the apply task queues at most one).</summary>
    private int _appliedSignalled;

    /// <summary>What stopped the apply task (the state machine or snapshot writer threw), handed to the loop.</summary>
    private volatile Exception? _applyFault;

    /// <summary>The state machine's failure once it happened (the host is then stopping), else null.</summary>
    internal Exception? ApplyFault => _applyFault;

    /// <summary>Proposals waiting to be applied, by index; each remembers the term it was proposed in.</summary>
    private readonly Dictionary<long, (long Term, TaskCompletionSource<long> Completion)> _pending = [];

    /// <summary>Linearizable reads handed to the node and not yet confirmed or failed, by request id.</summary>
    private readonly Dictionary<long, TaskCompletionSource<long>> _reads = [];

    /// <summary>Confirmed reads waiting for the state machine to apply through their index.</summary>
    private readonly List<(ReadState Read, TaskCompletionSource<long> Completion)> _readsWaiting = [];
    private long _readNext;

    /// <summary>When the loop started, and the ticks given to the node since (see <see cref="TickToNow"/>).</summary>
    private long _startTimestamp;
    private long _ticksDone;

    public RaftHost(
        RaftNode node,
        IRaftLog log,
        IHardStateStore hardState,
        IRaftTransport transport,
        TimeProvider time,
        RaftOptions options,
        Func<RaftEntry, long, CancellationToken, ValueTask> apply,
        Func<RaftSnapshot, CancellationToken, ValueTask> restore,
        Func<RaftEntry, long>? resultOf = null)
    {
        _node = node;
        _log = log;
        _hardState = hardState;
        _transport = transport;
        _time = time;
        _tickInterval = options.TickInterval;
        _ticksCatchUpMax = options.ElectionTicksMax;
        _apply = apply;
        _restore = restore;
        _resultOf = resultOf ?? (static entry => entry.Index);
    }

    /// <summary>
    /// The most committed entries handed to the apply task and not yet applied (STYLE.md 2). Past it the node keeps
    /// committed entries to itself until the state machine catches up: memory stays bounded (the entries' payloads stay
    /// in the log, which drops and re-reads them under its own budget), and the loop never waits.
    /// </summary>
    public int ApplyEntriesQueuedMax { get; init; } = 4096;

    private abstract record ApplyWork;

    /// <summary>Apply <paramref name="Entry"/> (whose result for its proposer is <paramref name="Result"/>), then complete <paramref name="Proposal"/>.</summary>
    private sealed record EntryWork(RaftEntry Entry, long Result, TaskCompletionSource<long>? Proposal) : ApplyWork;

    private sealed record RestoreWork(RaftSnapshot Snapshot) : ApplyWork;

    private abstract record Input;

    /// <summary>The apply task moved <see cref="_applied"/>.</summary>
    private sealed record AppliedInput : Input
    {
        public static readonly AppliedInput Instance = new();
    }

    /// <summary>The apply task took a snapshot through <paramref name="Index"/>: compact the log with it.</summary>
    private sealed record CompactInput(long Index, SnapshotImage Image) : Input;

    private sealed record TickInput : Input
    {
        public static readonly TickInput Instance = new();
    }

    private sealed record MessageInput(RaftMessage Message) : Input;

    private sealed record ConfigChangeInput(ConfigChange Change, TaskCompletionSource<long> Completion) : Input;

    private sealed record TransferInput(RaftNodeId Target, TaskCompletionSource Completion) : Input;

    private sealed record ReadInput(TaskCompletionSource<long> Completion) : Input;

    /// <summary>A pipelined write became durable (or failed: <paramref name="Error"/>).</summary>
    private sealed record DurableInput(PendingDurability Written, Exception? Error) : Input;

    /// <summary>A proposal whose payload is built on the loop from the current term (a record batch carries its term).</summary>
    private sealed record ProposeInput(Func<long, ReadOnlyMemory<byte>> Encode, TaskCompletionSource<long> Completion) : Input;

    private volatile RaftHostStatus _status = new(RaftRole.Follower, RaftNodeId.None, 0);

    /// <summary>The node's role and leader as of the last processed batch (read from any thread; may be stale).</summary>
    public RaftHostStatus Status => _status;

    /// <summary>
    /// Called on the loop with the membership in force whenever it changed (and once at start), before any message of
    /// the batch that carries the change is sent: the transport learns a new member's address before the leader's first
    /// append to it. Must not block.
    /// </summary>
    public Action<ClusterConfig>? MembershipChanged { get; init; }

    /// <summary>The membership last handed to <see cref="MembershipChanged"/>.</summary>
    private ClusterConfig? _membershipSeen;

    /// <summary>Called on the loop after a batch that changed the term or the known leader. Must not block.</summary>
    public Action<RaftHostStatus>? LeadershipChanged { get; init; }

    /// <summary>
    /// Called on the apply task whenever it has applied what was queued, with the applied index: returns a snapshot's
    /// image (of the state machine as of that index) to compact the log through that index, or null to wait. It may take
    /// long (a large state machine written to disk): the loop goes on meanwhile, and only applying waits.
    /// </summary>
    public Func<long, CancellationToken, ValueTask<SnapshotImage?>>? TakeSnapshot { get; init; }

    /// <summary>
    /// Lets a leader go on to its next batch while its own write of the previous one is being made durable
    /// (<see cref="Ready.MayAdvanceBeforeDurable"/>); off: every batch waits for its sync.
    /// </summary>
    public bool PipelineLeaderWrites { get; init; }

    /// <summary>
    /// The most linearizable reads waiting at once (STYLE.md 2): handed to the node and not yet confirmed, or confirmed
    /// and waiting to be applied. Reads pile up only on a leader that cannot reach a quorum (without check-quorum it never
    /// steps down by itself, and a caller that gave up does not take its read back); past the bound a read fails at once.
    /// </summary>
    public int ReadsOutstandingMax { get; init; } = 64 * 1024;

    /// <summary>Hands a message from a peer to the loop. Dropped when the queue is full (Raft tolerates loss).</summary>
    public void Receive(RaftMessage message) => _inputs.Writer.TryWrite(new MessageInput(message));

    /// <summary>Proposes <paramref name="data"/>; completes with its index once it is committed and applied here.</summary>
    /// <exception cref="NotLeaderException">This node is not the leader, or the entry was replaced by another leader's.</exception>
    public async ValueTask<long> ProposeAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var committed = await SubmitAsync(_ => data, cancellationToken).ConfigureAwait(false);
        return await committed.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Queues a proposal whose payload <paramref name="encode"/> builds on the loop from the term it is proposed in.
    /// The returned task completes once the proposal is queued (back-pressure); the inner task completes with the
    /// host's result for the entry (its index unless a result function was given) once it is committed and applied.
    /// </summary>
    public async ValueTask<Task<long>> SubmitAsync(Func<long, ReadOnlyMemory<byte>> encode, CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _inputs.Writer.WriteAsync(new ProposeInput(encode, completion), cancellationToken).ConfigureAwait(false);
        return completion.Task;
    }

    /// <summary>
    /// Proposes a single-server membership change; the returned task completes with the entry's index once it is
    /// committed and applied here.
    /// </summary>
    /// <exception cref="NotLeaderException">Not the leader (or handing leadership over).</exception>
    /// <exception cref="InvalidOperationException">Another change is uncommitted, or the leader has not committed an entry of its term yet.</exception>
    /// <exception cref="ArgumentException">Not a single-server step from the current membership.</exception>
    public async ValueTask<long> ProposeConfigChangeAsync(ConfigChange change, CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _inputs.Writer.WriteAsync(new ConfigChangeInput(change, completion), cancellationToken).ConfigureAwait(false);
        return await completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Starts handing leadership to <paramref name="target"/>; completes once the leader has started the transfer.</summary>
    /// <exception cref="NotLeaderException">Not the leader.</exception>
    /// <exception cref="ArgumentException">The target is not a voter.</exception>
    public async ValueTask TransferLeadershipAsync(RaftNodeId target, CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _inputs.Writer.WriteAsync(new TransferInput(target, completion), cancellationToken).ConfigureAwait(false);
        await completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A linearizable read barrier (ReadIndex, thesis §6.4; see RaftNode.Read.cs): completes with a Raft index once this
    /// node has confirmed with a quorum that it was still the leader after the call began, and has applied through that
    /// index, which covers every entry committed before the call. State read after that is linearizable.
    /// </summary>
    /// <exception cref="NotLeaderException">Not the leader, handing leadership over, or leadership was lost before the read was confirmed.</exception>
    /// <exception cref="InvalidOperationException"><see cref="ReadsOutstandingMax"/> reads are already waiting.</exception>
    public async ValueTask<long> ReadIndexAsync(CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _inputs.Writer.WriteAsync(new ReadInput(completion), cancellationToken).ConfigureAwait(false);
        return await completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs the loop until <paramref name="cancellationToken"/> is cancelled or storage fails.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        _startTimestamp = _time.GetTimestamp();
        _applied = _node.Applied;
        PublishMembership();
        _node.LimitApplyTo(_applied + ApplyEntriesQueuedMax);
        using var applyStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var applyTask = Task.Run(() => ApplyLoopAsync(applyStop), CancellationToken.None);
        using var timer = _time.CreateTimer(
            static state => ((RaftHost)state!)._inputs.Writer.TryWrite(TickInput.Instance), this, _tickInterval, _tickInterval);
        try
        {
            await foreach (var input in _inputs.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // Take every input already queued (up to a bound) before the next Ready, so one sync covers them all:
                // proposals that arrived during the last sync become one write, and a follower's pipelined
                // AppendEntries share one fdatasync ("debounced" follower flushes, as the leader's group commit).
                Handle(input);
                for (var taken = 1; taken < InputsPerReadyMax && _inputs.Reader.TryRead(out var more); taken++)
                {
                    Handle(more);
                }

                await ProcessReadiesAsync(cancellationToken).ConfigureAwait(false);

                // Entries whose payloads were dropped from memory: read them back and let the node retry (a lagging
                // follower's appends, the replay at start). At least one fetch per round, more while no input waits.
                for (var fetches = 0; _log.NeedsFetch && (fetches == 0 || _inputs.Reader.Count == 0); fetches++)
                {
                    await _log.FetchAsync(cancellationToken).ConfigureAwait(false);
                    _node.EntriesFetched();
                    await ProcessReadiesAsync(cancellationToken).ConfigureAwait(false);

                    // A replay reads from read-ahead and applies without ever waiting, so this loop would keep its
                    // thread-pool thread for seconds; on a busy machine the timer callbacks and socket receives that
                    // bring ticks and votes then queued behind it (a replaying member answered pre-votes 0.5 s late).
                    await Task.Yield();
                }
            }
        }
        catch (Exception ex)
        {
            // The apply task failed (it closed the inputs with its exception), or the host was stopped, or storage failed.
            ex = _applyFault ?? (ex is ChannelClosedException { InnerException: { } inner } ? inner : ex);
            var failure = ex is OperationCanceledException ? new OperationCanceledException("The Raft host stopped.", ex) : ex;

            // Stop applying before anything is failed: no state machine call runs after the host stopped.
            await applyStop.CancelAsync().ConfigureAwait(false);
            _applyQueue.Writer.TryComplete();
            await applyTask.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            while (_applyQueue.Reader.TryRead(out var work))
            {
                (work as EntryWork)?.Proposal?.TrySetException(failure);
            }

            // Nothing reads the inputs any more: close them (later submissions fail at once) and fail what is queued.
            _inputs.Writer.TryComplete(failure);
            while (_inputs.Reader.TryRead(out var input))
            {
                switch (input)
                {
                    case ProposeInput p:
                        p.Completion.TrySetException(failure);
                        break;
                    case ConfigChangeInput c:
                        c.Completion.TrySetException(failure);
                        break;
                    case TransferInput t:
                        t.Completion.TrySetException(failure);
                        break;
                    case ReadInput r:
                        r.Completion.TrySetException(failure);
                        break;
                }
            }

            FailAll(failure);
            if (ReferenceEquals(ex, _applyFault))
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(ex);
            }

            throw;
        }
    }

    /// <summary>
    /// The apply task: applies the queued work in order, completes proposals with their results, tells the loop how far
    /// it got, and takes snapshots when it has caught up with the queue. A failure stops the host (as a storage failure
    /// does): the inputs are closed with it, and the loop rethrows it.
    /// </summary>
    private async Task ApplyLoopAsync(CancellationTokenSource stop)
    {
        var cancellationToken = stop.Token;
        ApplyWork? current = null;
        try
        {
            var reader = _applyQueue.Reader;
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var work))
                {
                    current = work;
                    switch (work)
                    {
                        case RestoreWork restore:
                            await _restore(restore.Snapshot, cancellationToken).ConfigureAwait(false);
                            Volatile.Write(ref _applied, restore.Snapshot.Index);
                            break;
                        case EntryWork entry:
                            Invariant.Assert(entry.Entry.Index == Volatile.Read(ref _applied) + 1, "entries are applied in index order, each once");
                            await _apply(entry.Entry, entry.Result, cancellationToken).ConfigureAwait(false);
                            Volatile.Write(ref _applied, entry.Entry.Index);
                            entry.Proposal?.TrySetResult(entry.Result);
                            break;
                    }

                    current = null;
                    await SignalAppliedAsync(cancellationToken).ConfigureAwait(false);
                }

                var applied = Volatile.Read(ref _applied);
                if (TakeSnapshot is { } take && await take(applied, cancellationToken).ConfigureAwait(false) is { } image)
                {
                    await _inputs.Writer.WriteAsync(new CompactInput(applied, image), cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host stopped.
        }
        catch (ChannelClosedException)
        {
            // The loop stopped: nothing reads the inputs any more.
        }
#pragma warning disable CA1031 // The state machine's failure stops the host; the loop rethrows it.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _applyFault = ex;
            (current as EntryWork)?.Proposal?.TrySetException(ex);
            _inputs.Writer.TryComplete(ex);
        }
    }

    /// <summary>Queues one <see cref="AppliedInput"/> unless one already waits (the loop reads the latest applied index).</summary>
    private async ValueTask SignalAppliedAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _appliedSignalled, 1) == 0)
        {
            await _inputs.Writer.WriteAsync(AppliedInput.Instance, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask ProcessReadiesAsync(CancellationToken cancellationToken)
    {
        while (_node.HasReady)
        {
            await ProcessReadyAsync(_node.GetReady(), cancellationToken).ConfigureAwait(false);
        }
    }

    private void Handle(Input input)
    {
        switch (input)
        {
            case TickInput:
                TickToNow();
                break;
            case AppliedInput:
                Volatile.Write(ref _appliedSignalled, 0);
                _node.LimitApplyTo(Volatile.Read(ref _applied) + ApplyEntriesQueuedMax);
                ServeReads();
                break;
            case CompactInput c:
                if (c.Index > _node.SnapshotIndex)
                {
                    _node.Compact(c.Index, c.Image);
                }

                // Otherwise a snapshot from the leader overtook it; its file goes with the next compaction or restart.
                break;
            case MessageInput m:
                _node.Step(m.Message);
                break;
            case ProposeInput p:
                try
                {
                    var index = _node.Propose(p.Encode(_node.Term));
                    _pending[index] = (_node.Term, p.Completion);
                }
                catch (Exception ex) when (ex is NotLeaderException or ArgumentOutOfRangeException)
                {
                    p.Completion.TrySetException(ex);
                }

                break;
            case ConfigChangeInput c:
                try
                {
                    var index = _node.ProposeConfigChange(c.Change);
                    _pending[index] = (_node.Term, c.Completion);
                }
                catch (Exception ex) when (ex is NotLeaderException or InvalidOperationException or ArgumentException)
                {
                    c.Completion.TrySetException(ex);
                }

                break;
            case ReadInput r:
                if (_reads.Count + _readsWaiting.Count >= ReadsOutstandingMax)
                {
                    r.Completion.TrySetException(new InvalidOperationException(
                        $"{ReadsOutstandingMax} linearizable reads are already waiting on this node: it cannot confirm its leadership now."));
                    break;
                }

                // Bring the node's clock to now before it judges its lease: after a pause of the process (a long GC, a
                // stopped VM) the read may be taken before the tick that follows it, and a lease counted in ticks that
                // never came would still look valid although the others elected a new leader meanwhile.
                TickToNow();
                try
                {
                    var requestId = ++_readNext;
                    _node.ReadIndex(requestId);
                    _reads[requestId] = r.Completion;
                }
                catch (NotLeaderException ex)
                {
                    r.Completion.TrySetException(ex);
                }

                break;
            case DurableInput d:
                if (d.Error is not null)
                {
                    throw new IOException("A log write failed; the Raft host stops.", d.Error);
                }

                _log.MarkDurable(d.Written);
                _node.LocalDurable();
                break;
            case TransferInput t:
                try
                {
                    _node.TransferLeadership(t.Target);
                    t.Completion.TrySetResult();
                }
                catch (Exception ex) when (ex is NotLeaderException or ArgumentException)
                {
                    t.Completion.TrySetException(ex);
                }

                break;
        }
    }

    /// <summary>
    /// Ticks the node once per tick interval elapsed on the clock since the last ticks, not once per timer callback:
    /// in a starved process (a member replaying its log on a busy machine) callbacks come late and a timer does not
    /// repeat the ones it missed, so the node's election and lease clocks fell behind real time: such a member kept
    /// ignoring pre-votes as "in lease" for a second after its leader died. At most an election timeout is caught up.
    /// </summary>
    private void TickToNow()
    {
        var due = _time.GetElapsedTime(_startTimestamp).Ticks / _tickInterval.Ticks;
        var ticks = Math.Min(due - _ticksDone, _ticksCatchUpMax);
        for (var i = 0; i < ticks; i++)
        {
            _node.Tick();
        }

        _ticksDone = Math.Max(_ticksDone, due);
    }

    private void PublishMembership()
    {
        var config = _node.Config;
        if (!ReferenceEquals(config, _membershipSeen))
        {
            _membershipSeen = config;
            MembershipChanged?.Invoke(config);
        }
    }

    private async ValueTask ProcessReadyAsync(Ready ready, CancellationToken cancellationToken)
    {
        PublishMembership();

        // 1-4: persist, then sync. Nothing below may run before the sync completes.
        if (ready.Snapshot is not null)
        {
            _log.InstallSnapshot(ready.Snapshot);
        }

        _log.Append(ready.Entries);
        if (ready.HardState is { } hardState)
        {
            _hardState.Save(hardState);
        }

        foreach (var message in ready.MessagesBeforeSync)
        {
            _transport.Send(message);
        }

        if (PipelineLeaderWrites && ready.MayAdvanceBeforeDurable)
        {
            // A leader's batch that waits for nothing durable but its own entries: hand them to the log and go on;
            // the next batch's appends leave while this one syncs, and the leader counts its own copy when it is durable.
            var written = await _log.WriteAsync(cancellationToken).ConfigureAwait(false);
            if (written.Durable.IsCompletedSuccessfully)
            {
                _log.MarkDurable(written); // nothing was waiting to become durable
            }
            else
            {
                _ = NotifyDurableAsync(written, cancellationToken);
            }

            HandOutToApply(ready);
            _node.AdvanceBeforeDurable(ready);
            HandleReads(ready);
            PublishStatus();
            return;
        }

        if (ready.MustSync)
        {
            await _log.SyncAsync(cancellationToken).ConfigureAwait(false);
            await _hardState.SyncAsync(cancellationToken).ConfigureAwait(false);
        }

        // 5: messages may depend on what was just made durable.
        foreach (var message in ready.Messages)
        {
            _transport.Send(message);
        }

        // 6: apply (on the apply task), completing the proposals whose entries these are.
        HandOutToApply(ready);
        _node.Advance(ready);
        HandleReads(ready);
        PublishStatus();
    }

    /// <summary>Queues the batch's snapshot and committed entries for the apply task, with their proposals and results.</summary>
    private void HandOutToApply(Ready ready)
    {
        if (ready.Snapshot is not null)
        {
            _applyQueue.Writer.TryWrite(new RestoreWork(ready.Snapshot));
            FailPendingThrough(ready.Snapshot.Index);
        }

        foreach (var entry in ready.CommittedEntries)
        {
            TaskCompletionSource<long>? completion = null;
            if (_pending.Remove(entry.Index, out var proposal))
            {
                if (proposal.Term == entry.Term)
                {
                    completion = proposal.Completion;
                }
                else
                {
                    proposal.Completion.TrySetException(new NotLeaderException(_node.Id, _node.Leader));
                }
            }

            // The result is computed here, on the loop, which owns the log (the apply task must not read it).
            Invariant.Assert(_applyQueue.Writer.TryWrite(new EntryWork(entry, _resultOf(entry), completion)), "the apply queue is open while the loop runs");
        }
    }

    /// <summary>Ready step 7: fail the reads the node gave up, and serve every confirmed read whose index is applied.</summary>
    private void HandleReads(Ready ready)
    {
        foreach (var requestId in ready.ReadsFailed)
        {
            if (_reads.Remove(requestId, out var failed))
            {
                failed.TrySetException(new NotLeaderException(_node.Id, _node.Leader));
            }
        }

        foreach (var read in ready.ReadStates)
        {
            Invariant.Assert(_reads.Remove(read.RequestId, out var completion), "a confirmed read was registered here");
            _readsWaiting.Add((read, completion!));
        }

        if (_readsWaiting.Count == 0)
        {
            return;
        }

        ServeReads();
    }

    /// <summary>Completes every confirmed read whose index the state machine has applied.</summary>
    private void ServeReads()
    {
        if (_readsWaiting.Count == 0)
        {
            return;
        }

        var applied = Volatile.Read(ref _applied);
        foreach (var (read, completion) in _readsWaiting)
        {
            if (read.Index <= applied)
            {
                completion.TrySetResult(read.Index);
            }
        }

        _readsWaiting.RemoveAll(waiting => waiting.Read.Index <= applied);
    }

    /// <summary>Waits (off the loop) for a write to become durable, then tells the loop.</summary>
    private async Task NotifyDurableAsync(PendingDurability written, CancellationToken cancellationToken)
    {
        Exception? error = null;
        try
        {
            await written.Durable.ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Any storage failure is handed to the loop, which stops the host with it.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            error = ex;
        }

        try
        {
            await _inputs.Writer.WriteAsync(new DurableInput(written, error), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException)
        {
            // The host stopped.
        }
    }

    private void PublishStatus()
    {
        var previous = _status;
        var followers = new List<(RaftNodeId Id, long Match, bool IsLearner, bool RecentActive)>();
        var config = _node.Config;
        if (_node.Role == RaftRole.Leader)
        {
            foreach (var (id, progress) in _node.Progress)
            {
                if (id != _node.Id)
                {
                    followers.Add((id, progress.Match, !config.IsVoter(id), progress.RecentActive));
                }
            }
        }

        _status = new RaftHostStatus(_node.Role, _node.Leader, _node.Term)
        {
            Committed = _node.Committed,
            Applied = Volatile.Read(ref _applied),
            HandedOut = _node.Applied,
            LastIndex = _node.LastIndex,
            Followers = followers,
            Config = config,
        };
        if (previous.Leader != _node.Leader || previous.Term != _node.Term)
        {
            LeadershipChanged?.Invoke(_status);
        }
    }

    /// <summary>A snapshot replaced the log through <paramref name="index"/>: whether those proposals committed is unknown here.</summary>
    private void FailPendingThrough(long index)
    {
        foreach (var key in _pending.Keys.Where(k => k <= index).ToList())
        {
            _pending.Remove(key, out var proposal);
            proposal.Completion.TrySetException(new NotLeaderException(_node.Id, _node.Leader));
        }
    }

    private void FailAll(Exception ex)
    {
        foreach (var (_, proposal) in _pending)
        {
            proposal.Completion.TrySetException(ex);
        }

        _pending.Clear();
        foreach (var (_, read) in _reads)
        {
            read.TrySetException(ex);
        }

        _reads.Clear();
        foreach (var (_, read) in _readsWaiting)
        {
            read.TrySetException(ex);
        }

        _readsWaiting.Clear();
    }
}
