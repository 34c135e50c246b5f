using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Transport;

namespace AppendLog.Raft;

/// <summary>
/// One member of a Raft-replicated log: a <see cref="SegmentedLog"/> on this machine, kept identical on every member
/// over TCP. The leader accepts <see cref="ReplicateAsync(ReadOnlyMemory{byte}, CancellationToken)"/>; it gathers the payloads waiting at that moment into one
/// Raft entry (one record batch, built once and stored verbatim by every follower) and completes each call with its
/// record's offset once a quorum has the batch durable. Every member applies committed records, in order, to
/// <see cref="ReplicatedLogOptions.Apply"/>, and serves them with <see cref="ReadCommittedAsync"/>.
/// <para>
/// Offsets are the same on every member, so a reader can move between members and resume from the same offset.
/// Raft's own entries (a new leader's no-op) also take one offset each and are never shown to readers, so committed
/// offsets have gaps.
/// </para>
/// <para>
/// Memory is bounded by <see cref="ReplicatedLogOptions.MaximumCachedLogBytes"/> plus a few dozen bytes per entry:
/// batches older than that are read back from the local log for a follower that is behind. The state machine runs on its
/// own task behind a bounded backlog of committed entries, so it never delays elections or heartbeats; its snapshots are
/// files, sent to lagging members in chunks. Messages between members are neither encrypted nor authenticated: use a
/// private network.
/// </para>
/// </summary>
[Experimental(RaftExperiments.Raft)]
public sealed class ReplicatedLog : IAsyncDisposable
{
    /// <summary>Bytes a record adds to its payload inside a batch, at most (length, attributes, deltas, key and header counts as varints).</summary>
    private const int RecordOverheadBytesMax = 24;

    /// <summary>Bytes a session header adds to a record, at most (header count, key "alog.raft.session" and a 16-byte value, with their varint lengths).</summary>
    private const int SessionHeaderBytesMax = 40;

    /// <summary>The write buffer of a snapshot file being taken: the state machine's small writes reach the disk in runs this size.</summary>
    private const int SnapshotWriteBufferBytes = 256 * 1024;

    /// <summary>Records read under one read lease (see <see cref="ReadChunkAsync"/>).</summary>
    private const int ReadChunkRecordsMax = 4096;

    private readonly ReplicatedLogOptions _options;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<Request> _requests;
    private readonly Channel<LeadershipChangedEventArgs> _leadershipEvents = Channel.CreateUnbounded<LeadershipChangedEventArgs>(
        new UnboundedChannelOptions { SingleReader = true });
    private readonly int _entryPayloadBytesMax;

    /// <summary>The replicated client session table: touched only on the apply task (apply, snapshot, restore).</summary>
    private readonly ClientSessions _sessions;

    /// <summary>
    /// Callers of the session overload of ReplicateAsync on this member, by (session, sequence); lock on itself. Each
    /// collects the outcome of every copy of its sequence applied while it waits, by offset, and keeps its own copy's.
    /// </summary>
    private readonly Dictionary<(long SessionId, long Sequence), List<Dictionary<long, ReplicationResult?>>> _sessionWaiters = [];
    private readonly object _commitGate = new();
    private TaskCompletionSource _commitAdvanced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _committedEndOffset;
    private long _snapshotEndOffset;
    private long _snapshotsTaken;
    private long _snapshotsRestored;
    private SegmentedLog? _log;
    private SegmentedRaftLog? _raftLog;
    private TcpRaftTransport? _transport;
    private RaftHost? _host;
    private Task _loop = Task.CompletedTask;
    private Task _batcher = Task.CompletedTask;
    private Task _events = Task.CompletedTask;
    private volatile Exception? _fault;
    private int _state; // 0 new, 1 started, 2 disposed

    /// <summary>Creates a member; nothing runs until <see cref="StartAsync"/>.</summary>
    /// <param name="options">The member's settings (validated here).</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public ReplicatedLog(ReplicatedLogOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Validate();
        _time = options.TimeProvider ?? TimeProvider.System;
        _requests = Channel.CreateBounded<Request>(new BoundedChannelOptions(options.MaximumPendingReplications)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _entryPayloadBytesMax = options.Raft.MaximumBatchBytes - RaftEntry.OverheadBytes - EntryBatch.HeaderSize;
        _sessions = new ClientSessions(options.MaximumClientSessions);
    }

    /// <summary>Raised (on a thread-pool thread, in order) when the term or the known leader changes.</summary>
    public event EventHandler<LeadershipChangedEventArgs>? LeadershipChanged;

    /// <summary>This member's id.</summary>
    public RaftNodeId NodeId => _options.NodeId;

    /// <summary>Messages the transport dropped because they exceed a frame (none since snapshots travel in chunks; tests and diagnostics).</summary>
    internal long OversizeMessagesDropped => _transport?.OversizeMessagesDropped ?? 0;

    /// <summary>Reads of dropped batches back from the local log (tests and diagnostics).</summary>
    internal long LogFetchCount => _raftLog?.FetchCount ?? 0;

    /// <summary>Snapshots this member took of its state machine, and restored (at start or from its leader).</summary>
    internal (long Taken, long Restored) SnapshotCounts => (Interlocked.Read(ref _snapshotsTaken), Interlocked.Read(ref _snapshotsRestored));

    /// <summary>The first offset still in the local log (moves with snapshots).</summary>
    internal long LogStartOffset => _log?.StartOffset ?? 0;

    /// <summary>The Raft index the latest snapshot covers.</summary>
    internal long SnapshotIndex => _raftLog?.Snapshot.Index ?? 0;

    /// <summary>The transport (tests: dropping messages and connections).</summary>
    internal TcpRaftTransport? Transport => _transport;

    /// <summary>Raft indexes handed to the apply task, and applied by it (tests and diagnostics).</summary>
    internal (long HandedOut, long Applied, long Committed) ApplyProgress =>
        _host?.Status is { } s ? (s.HandedOut, s.Applied, s.Committed) : (0, 0, 0);

    /// <summary>Application payload bytes the Raft log holds in memory now (tests and diagnostics).</summary>
    internal long LogResidentBytes => _raftLog?.ResidentBytes ?? 0;

    /// <summary>The member's state now (a snapshot; it may change as soon as it is read).</summary>
    public ReplicatedLogStatus Status
    {
        get
        {
            var host = _host?.Status ?? new RaftHostStatus(RaftRole.Follower, RaftNodeId.None, 0);
            var followers = host.Followers
                .Select(f => new FollowerStatus(f.Id, f.Match, Math.Max(0, host.LastIndex - f.Match), f.IsLearner, f.RecentActive))
                .ToList();
            var fault = _fault;
            return new ReplicatedLogStatus(
                NodeId, fault is null ? (ReplicaRole)host.Role : ReplicaRole.Stopped, host.Term, fault is null ? host.Leader : RaftNodeId.None,
                host.Committed, host.LastIndex,
                Volatile.Read(ref _committedEndOffset), followers)
            {
                Voters = host.Config.Voters,
                Learners = host.Config.Learners,
                MemberEndpoints = host.Config.Members
                    .Select(id => KeyValuePair.Create(id, EndpointOf(id)))
                    .Where(pair => pair.Value is not null)
                    .ToDictionary(pair => pair.Key, pair => pair.Value!),
                Fault = fault,
            };
        }
    }

    /// <summary>
    /// Opens (or recovers) the local log and hard state, replays the committed records into the state machine as
    /// they are re-committed, starts listening on this member's endpoint and joins the group.
    /// </summary>
    /// <param name="cancellationToken">Cancels opening the log.</param>
    /// <returns>A task that completes when the member runs (it may not know a leader yet). When starting fails, everything
    /// opened is closed again and this instance counts as disposed.</returns>
    /// <exception cref="InvalidOperationException">Already started or disposed.</exception>
    /// <exception cref="System.Net.Sockets.SocketException">This member's endpoint cannot be bound.</exception>
    /// <exception cref="InvalidDataException">The hard state file is damaged.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            throw new InvalidOperationException("The replicated log was already started or disposed.");
        }

        System.IO.Directory.CreateDirectory(_options.Directory);
        var logOptions = new LogOptions { Directory = Path.Combine(_options.Directory, "log"), TimeProvider = _time };
        if (_options.SegmentSize is { } segmentSize)
        {
            logOptions = logOptions with { SegmentSize = segmentSize, MaximumBatchSize = (int)Math.Min(logOptions.MaximumBatchSize, segmentSize) };
        }

        if (_options.FlushPolicy is { } policy)
        {
            logOptions = logOptions with { FlushPolicy = policy };
        }

        _log = await SegmentedLog.OpenAsync(logOptions, cancellationToken).ConfigureAwait(false);
        try
        {
            // The first membership carries the initial voters' endpoints from the address book; members added later carry
            // their own in the entry that adds them, so every member learns them from the log.
            var initialVoters = _options.InitialVoters ?? _options.Members.Keys;
            var bootstrap = RaftSnapshot.Bootstrap(new ClusterConfig(
                initialVoters, [], initialVoters.Select(id => KeyValuePair.Create(id, _options.Members[id].ToString()))));
            _raftLog = await SegmentedRaftLog.OpenAsync(
                _log, bootstrap, _options.Directory, _time, cancellationToken, _options.MaximumCachedLogBytes).ConfigureAwait(false);
            if (_raftLog.Snapshot.Index > 0)
            {
                await RestoreAsync(_raftLog.Snapshot, cancellationToken).ConfigureAwait(false);
            }

            var hardState = new FileHardStateStore(_options.Directory);
            var random = new Random(_options.RandomSeed ?? Random.Shared.Next());
            var node = new RaftNode(NodeId, _options.Raft, _raftLog, hardState.Load(), random);
            _transport = new TcpRaftTransport(
                NodeId, _options.Members[NodeId], _options.Members, Receive, _time, _options.ClusterId, _options.AdvertisedAddress);
            var raftLog = _raftLog;
            _host = new RaftHost(node, raftLog, hardState, _transport, _time, _options.Raft, ApplyAsync, RestoreAsync,
                entry => raftLog.BaseOffsetOf(entry.Index))
            {
                LeadershipChanged = OnLeadershipChanged,
                MembershipChanged = OnMembershipChanged,
                TakeSnapshot = TakeSnapshotAsync,
                PipelineLeaderWrites = true,
                ApplyEntriesQueuedMax = _options.ApplyEntriesQueuedMax,
            };
        }
        catch
        {
            // Leave nothing open (the log holds a directory lock) when the member cannot start.
            if (_transport is not null)
            {
                await _transport.DisposeAsync().ConfigureAwait(false);
            }

            await _log.DisposeAsync().ConfigureAwait(false);
            _transport = null;
            _log = null;
            _host = null;
            Volatile.Write(ref _state, 2);
            throw;
        }

        _transport.Start();
        var host = _host;
        _loop = Task.Run(() => RunHostAsync(host));
        _batcher = Task.Run(BatchLoopAsync);
        _events = Task.Run(EventLoopAsync);
    }

    /// <summary>
    /// Replicates <paramref name="payload"/> and returns its record's offset once the record is committed: durable on a
    /// quorum of members (this leader's own fdatasync counting as one) and applied here.
    /// </summary>
    /// <remarks>The callers of one committed batch are completed one after another on one task, with their continuations
    /// inline: code after the await that blocks for long delays the rest of its batch (move such work off with Task.Run).</remarks>
    /// <param name="payload">The record's payload (the caller must not change it until the call completes).</param>
    /// <param name="cancellationToken">Cancels the wait only: a payload already queued may still be committed.</param>
    /// <returns>The record's offset, the same on every member.</returns>
    /// <exception cref="NotLeaderException">This member is not the leader (the exception names the leader and its endpoint when known), or lost leadership before the payload committed.</exception>
    /// <exception cref="ReplicationTimeoutException">Not committed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>; the outcome is unknown.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The payload does not fit one entry (<see cref="RaftOptions.MaximumBatchBytes"/>).</exception>
    /// <exception cref="InvalidOperationException">Not started, or the member stopped after a failure (<see cref="ReplicatedLogStatus.Fault"/>, also the inner exception).</exception>
    /// <exception cref="ObjectDisposedException">Disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public async ValueTask<long> ReplicateAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        return await SubmitAsync(new Request(payload, null), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Queues <paramref name="request"/> for the leader's next entry and waits for its offset (see <see cref="ReplicateAsync(ReadOnlyMemory{byte}, CancellationToken)"/>).</summary>
    private async ValueTask<long> SubmitAsync(Request request, CancellationToken cancellationToken)
    {
        ThrowIfNotRunning();
        ArgumentOutOfRangeException.ThrowIfGreaterThan(request.EncodedBytesMax, _entryPayloadBytesMax, "payload");
        var status = _host!.Status;
        if (status.Role != RaftRole.Leader)
        {
            throw NotLeader(status.Leader);
        }

        await _requests.Writer.WriteAsync(request, cancellationToken).ConfigureAwait(false);
        try
        {
            return await request.Completion.Task.WaitAsync(_options.ReplicateTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new ReplicationTimeoutException(_options.ReplicateTimeout);
        }
    }

    /// <summary>
    /// Opens a client session for exactly-once replication (Raft thesis §6.3): a record, committed like any other, whose
    /// offset becomes the session's id on every member. Give the id and increasing sequence numbers to
    /// <see cref="ReplicateAsync(ReadOnlyMemory{byte}, long, long, CancellationToken)"/>.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait only: the session may still be opened (an unused session is evicted in time).</param>
    /// <returns>The session id.</returns>
    /// <exception cref="NotLeaderException">This member is not the leader, or lost leadership before the record committed.</exception>
    /// <exception cref="ReplicationTimeoutException">Not committed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>; open another.</exception>
    /// <exception cref="InvalidOperationException">Not started, or the member stopped after a failure.</exception>
    /// <exception cref="ObjectDisposedException">Disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<long> OpenSessionAsync(CancellationToken cancellationToken = default) =>
        SubmitAsync(new Request(ReadOnlyMemory<byte>.Empty, SessionTag.Open), cancellationToken);

    /// <summary>
    /// Replicates <paramref name="payload"/> at most once within the client session <paramref name="sessionId"/> and returns
    /// the state machine's response. Every member keeps, per session, the latest sequence applied and its response (in the
    /// replicated state, so through leader changes, restarts and snapshots): when a call's outcome was unknown
    /// (<see cref="ReplicationTimeoutException"/>, <see cref="NotLeaderException"/>, a lost connection), call again with the
    /// same sequence, on whichever member leads: if the first attempt was applied the record is not applied again, and the
    /// first attempt's offset and response come back (<see cref="ReplicationResult.IsDuplicate"/>).
    /// </summary>
    /// <remarks>
    /// A session carries one record at a time: start sequence <c>n + 1</c> only after <c>n</c> returned a result (numbering
    /// starts at 1; gaps are allowed). A retry's second copy stays in the log and is returned by
    /// <see cref="ReadCommittedAsync"/>; only the state machine sees each sequence once.
    /// </remarks>
    /// <param name="payload">The record's payload (the caller must not change it until the call completes).</param>
    /// <param name="sessionId">A session from <see cref="OpenSessionAsync"/>.</param>
    /// <param name="sequence">The client's number for this record, from 1, increasing within the session.</param>
    /// <param name="cancellationToken">Cancels the wait only: a payload already queued may still be applied (retry to learn its result).</param>
    /// <returns>Where the record was applied and the state machine's response.</returns>
    /// <exception cref="SessionExpiredException">The session is unknown or was evicted, or the sequence is older than its latest: not applied.</exception>
    /// <exception cref="NotLeaderException">This member is not the leader, or lost leadership before the record committed: retry with the same sequence.</exception>
    /// <exception cref="ReplicationTimeoutException">Not applied within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>: retry with the same sequence.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The payload does not fit one entry, or the sequence is below 1.</exception>
    /// <exception cref="InvalidOperationException">Not started, or the member stopped after a failure.</exception>
    /// <exception cref="ObjectDisposedException">Disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public async ValueTask<ReplicationResult> ReplicateAsync(
        ReadOnlyMemory<byte> payload, long sessionId, long sequence, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sequence, 1);
        var key = (sessionId, sequence);
        var outcomes = new Dictionary<long, ReplicationResult?>();
        lock (_sessionWaiters)
        {
            if (!_sessionWaiters.TryGetValue(key, out var waiters))
            {
                _sessionWaiters[key] = waiters = [];
            }

            waiters.Add(outcomes);
        }

        try
        {
            // The loop applies the record before it completes the proposal with the record's offset, so this call's own
            // copy's outcome is there by then. (An earlier copy applied meanwhile, say while a restarted leader replays
            // its log, is recorded too but is not this call's answer: its own copy then comes out a duplicate.)
            var offset = await SubmitAsync(new Request(payload, new SessionTag(false, sessionId, sequence)), cancellationToken).ConfigureAwait(false);
            ReplicationResult? outcome;
            lock (_sessionWaiters)
            {
                Invariant.Assert(outcomes.TryGetValue(offset, out outcome), "a committed session record was applied before its proposal completed");
            }

            return outcome ?? throw new SessionExpiredException(sessionId, sequence);
        }
        finally
        {
            lock (_sessionWaiters)
            {
                if (_sessionWaiters.TryGetValue(key, out var waiters) && waiters.Remove(outcomes) && waiters.Count == 0)
                {
                    _sessionWaiters.Remove(key);
                }
            }
        }
    }

    /// <summary>
    /// A linearizable read barrier (ReadIndex, Raft thesis §6.4): completes once this member has confirmed, with a
    /// heartbeat round answered by a quorum, that it was still the leader after the call began, and its state machine has
    /// applied every record committed before the call. Reading the state machine (or <see cref="ReadCommittedAsync"/>
    /// below the returned offset) after it completes observes every replication acknowledged before the call began, on any
    /// member. Nothing is written to the log. A leader cut off from the majority never completes a barrier: it fails when
    /// the leader steps down (within an election timeout, with <see cref="RaftOptions.CheckQuorum"/>) or times out.
    /// </summary>
    /// <remarks>
    /// Only the leader serves barriers; a follower refuses at once with <see cref="NotLeaderException"/> naming the leader,
    /// and the client retries there. Concurrent barriers share heartbeat rounds. A new leader completes its first barrier
    /// only after it has committed an entry of its own term (its no-op, within one round trip of its election). With
    /// <see cref="RaftOptions.LeaseReads"/> a leader within its lease completes the barrier without a heartbeat round.
    /// </remarks>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The offset after the last record applied here when the barrier completed: every record committed before
    /// the call has a lower offset and is applied.</returns>
    /// <exception cref="NotLeaderException">This member is not the leader (the exception names the leader when known), is handing leadership over, or lost leadership before the barrier completed.</exception>
    /// <exception cref="ReplicationTimeoutException">Not confirmed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/> (for example, cut off from the majority without check-quorum).</exception>
    /// <exception cref="InvalidOperationException">Not started, or the member stopped after a failure (<see cref="ReplicatedLogStatus.Fault"/>, also the inner exception), or 65,536 barriers are already waiting here (a leader cut off from its majority without check-quorum).</exception>
    /// <exception cref="ObjectDisposedException">Disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public async ValueTask<long> LinearizableBarrierAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfNotRunning();
        var host = _host!;
        var status = host.Status;
        if (status.Role != RaftRole.Leader)
        {
            throw NotLeader(status.Leader);
        }

        try
        {
            await host.ReadIndexAsync(cancellationToken).AsTask()
                .WaitAsync(_options.ReplicateTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new ReplicationTimeoutException(_options.ReplicateTimeout);
        }
        catch (NotLeaderException ex)
        {
            throw NotLeader(ex.LeaderId);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && _state == 2)
        {
            throw new ObjectDisposedException(nameof(ReplicatedLog));
        }
        catch (ChannelClosedException ex)
        {
            throw Stopped(_fault ?? ex.InnerException ?? ex);
        }
        catch (Exception ex) when (ex is not OperationCanceledException && _fault is { } fault)
        {
            throw Stopped(fault);
        }

        return Volatile.Read(ref _committedEndOffset);
    }

    /// <summary>
    /// Adds <paramref name="nodeId"/> as a learner: it receives the log (a snapshot first when it is far behind) but
    /// neither votes nor counts toward a quorum. Call on the leader; completes once the change is committed. Its endpoint
    /// is taken from this member's address book (<see cref="ReplicatedLogOptions.Members"/>) and replicated with the
    /// change, so the other members need not list it; <see cref="AddLearnerAsync(RaftNodeId, IPEndPoint, CancellationToken)"/>
    /// names it instead. Start the new member with the same <see cref="ReplicatedLogOptions.InitialVoters"/> as the others.
    /// </summary>
    /// <param name="nodeId">A node of <see cref="ReplicatedLogOptions.Members"/> that is not a member yet.</param>
    /// <param name="cancellationToken">Cancels the wait only: the change may still be committed.</param>
    /// <returns>A task that completes when the change is committed and applied on this member.</returns>
    /// <exception cref="NotLeaderException">This member is not the leader (or lost leadership before the change committed).</exception>
    /// <exception cref="InvalidOperationException">Another membership change is still uncommitted, or this leader has not committed an entry of its term yet: retry shortly.</exception>
    /// <exception cref="ArgumentException">The node is not in the address book, or is already a member.</exception>
    /// <exception cref="ReplicationTimeoutException">Not committed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>.</exception>
    public ValueTask AddLearnerAsync(RaftNodeId nodeId, CancellationToken cancellationToken = default) =>
        ChangeMembershipAsync(new ConfigChange(ConfigChangeKind.AddLearner, nodeId, BookAddress(nodeId, required: true)), cancellationToken);

    /// <summary>
    /// Adds <paramref name="nodeId"/>, listening for Raft traffic on <paramref name="endpoint"/>, as a learner (see
    /// <see cref="AddLearnerAsync(RaftNodeId, CancellationToken)"/>). The endpoint is replicated with the change: every
    /// member, this one included, sends to it there whatever its address book says. The new member must be started with
    /// the same <see cref="ReplicatedLogOptions.InitialVoters"/> as the others and an address book holding itself and the
    /// current members (to reach them before it has received the membership); it learns later changes from the log.
    /// </summary>
    /// <param name="nodeId">A node that is not a member yet.</param>
    /// <param name="endpoint">Where the node listens for Raft traffic.</param>
    /// <param name="cancellationToken">Cancels the wait only: the change may still be committed.</param>
    /// <returns>A task that completes when the change is committed and applied on this member.</returns>
    /// <exception cref="NotLeaderException">This member is not the leader (or lost leadership before the change committed).</exception>
    /// <exception cref="InvalidOperationException">Another membership change is still uncommitted, or this leader has not committed an entry of its term yet: retry shortly.</exception>
    /// <exception cref="ArgumentException">The node is already a member, or its id is 0.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="endpoint"/> is null.</exception>
    /// <exception cref="ReplicationTimeoutException">Not committed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>.</exception>
    public ValueTask AddLearnerAsync(RaftNodeId nodeId, IPEndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        return ChangeMembershipAsync(new ConfigChange(ConfigChangeKind.AddLearner, nodeId, endpoint.ToString()), cancellationToken);
    }

    /// <summary>
    /// Makes <paramref name="nodeId"/> a voter: a new node, or a learner being promoted (add it as a learner first and
    /// let it catch up, so the group's quorum never waits for a member that is far behind). One change at a time. A new
    /// node's endpoint comes from the address book and is replicated with the change; a learner keeps the one it was
    /// added with.
    /// </summary>
    /// <param name="nodeId">A learner, or a node of <see cref="ReplicatedLogOptions.Members"/>.</param>
    /// <param name="cancellationToken">Cancels the wait only: the change may still be committed.</param>
    /// <returns>A task that completes when the change is committed and applied on this member.</returns>
    /// <exception cref="NotLeaderException">This member is not the leader.</exception>
    /// <exception cref="InvalidOperationException">Another membership change is still uncommitted, or this leader has not committed an entry of its term yet: retry shortly.</exception>
    /// <exception cref="ArgumentException">The node is neither a learner nor in the address book, or is already a voter.</exception>
    /// <exception cref="ReplicationTimeoutException">Not committed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>.</exception>
    public ValueTask AddVoterAsync(RaftNodeId nodeId, CancellationToken cancellationToken = default)
    {
        ThrowIfNotRunning();
        var isMember = _host!.Status.Config.IsMember(nodeId);
        return ChangeMembershipAsync(new ConfigChange(ConfigChangeKind.AddVoter, nodeId, BookAddress(nodeId, required: !isMember)), cancellationToken);
    }

    /// <summary>
    /// Makes <paramref name="nodeId"/>, listening for Raft traffic on <paramref name="endpoint"/>, a voter (see
    /// <see cref="AddVoterAsync(RaftNodeId, CancellationToken)"/>); the endpoint is replicated with the change.
    /// </summary>
    /// <param name="nodeId">A learner, or a node that is not a member yet.</param>
    /// <param name="endpoint">Where the node listens for Raft traffic.</param>
    /// <param name="cancellationToken">Cancels the wait only: the change may still be committed.</param>
    /// <returns>A task that completes when the change is committed and applied on this member.</returns>
    /// <exception cref="NotLeaderException">This member is not the leader.</exception>
    /// <exception cref="InvalidOperationException">Another membership change is still uncommitted, or this leader has not committed an entry of its term yet: retry shortly.</exception>
    /// <exception cref="ArgumentException">The node is already a voter, or its id is 0.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="endpoint"/> is null.</exception>
    /// <exception cref="ReplicationTimeoutException">Not committed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>.</exception>
    public ValueTask AddVoterAsync(RaftNodeId nodeId, IPEndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        return ChangeMembershipAsync(new ConfigChange(ConfigChangeKind.AddVoter, nodeId, endpoint.ToString()), cancellationToken);
    }

    /// <summary>Promotes the learner <paramref name="nodeId"/> to voter (see <see cref="AddVoterAsync(RaftNodeId, CancellationToken)"/>).</summary>
    /// <param name="nodeId">A current learner.</param>
    /// <param name="cancellationToken">Cancels the wait only: the change may still be committed.</param>
    /// <returns>A task that completes when the change is committed and applied on this member.</returns>
    /// <exception cref="ArgumentException">The node is not a learner.</exception>
    /// <exception cref="NotLeaderException">This member is not the leader.</exception>
    /// <exception cref="InvalidOperationException">Another membership change is still uncommitted: retry shortly.</exception>
    /// <exception cref="ReplicationTimeoutException">Not committed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>.</exception>
    public ValueTask PromoteLearnerAsync(RaftNodeId nodeId, CancellationToken cancellationToken = default)
    {
        ThrowIfNotRunning();
        if (!_host!.Status.Config.Learners.Contains(nodeId))
        {
            throw new ArgumentException($"Node {nodeId} is not a learner.", nameof(nodeId));
        }

        return AddVoterAsync(nodeId, cancellationToken);
    }

    /// <summary>
    /// Removes the voter or learner <paramref name="nodeId"/>. A leader that removes itself steps down once the change
    /// is committed, and the others elect a new leader.
    /// </summary>
    /// <param name="nodeId">A current member.</param>
    /// <param name="cancellationToken">Cancels the wait only: the change may still be committed.</param>
    /// <returns>A task that completes when the change is committed and applied on this member.</returns>
    /// <exception cref="NotLeaderException">This member is not the leader.</exception>
    /// <exception cref="InvalidOperationException">Another membership change is still uncommitted, or this leader has not committed an entry of its term yet: retry shortly.</exception>
    /// <exception cref="ArgumentException">The node is not a member, or is the last voter.</exception>
    /// <exception cref="ReplicationTimeoutException">Not committed within <see cref="ReplicatedLogOptions.ReplicateTimeout"/>.</exception>
    public ValueTask RemoveMemberAsync(RaftNodeId nodeId, CancellationToken cancellationToken = default) =>
        ChangeMembershipAsync(new ConfigChange(ConfigChangeKind.Remove, nodeId), cancellationToken);

    /// <summary>
    /// Hands leadership to the voter <paramref name="target"/> (thesis §3.10): the leader stops accepting replications,
    /// brings the target up to date, and tells it to campaign at once. Completes when this member sees the target lead.
    /// </summary>
    /// <param name="target">A voter other than this member.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes when <paramref name="target"/> is the leader this member knows of.</returns>
    /// <exception cref="NotLeaderException">This member is not the leader.</exception>
    /// <exception cref="ArgumentException">The target is not a voter.</exception>
    /// <exception cref="ReplicationTimeoutException">The target did not take over within <see cref="ReplicatedLogOptions.ReplicateTimeout"/> (the old leader resumes after an election timeout).</exception>
    public async ValueTask TransferLeadershipAsync(RaftNodeId target, CancellationToken cancellationToken = default)
    {
        ThrowIfNotRunning();
        if (target == NodeId)
        {
            return;
        }

        var led = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(object? sender, LeadershipChangedEventArgs e)
        {
            if (e.LeaderId == target)
            {
                led.TrySetResult();
            }
        }

        LeadershipChanged += OnChanged;
        try
        {
            await _host!.TransferLeadershipAsync(target, cancellationToken).ConfigureAwait(false);
            if (_host.Status.Leader == target)
            {
                return;
            }

            await led.Task.WaitAsync(_options.ReplicateTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new ReplicationTimeoutException(_options.ReplicateTimeout);
        }
        catch (NotLeaderException ex)
        {
            throw NotLeader(ex.LeaderId);
        }
        finally
        {
            LeadershipChanged -= OnChanged;
        }
    }

    /// <summary>The address book's endpoint of <paramref name="id"/> as replicated text; null when absent and not <paramref name="required"/>.</summary>
    /// <exception cref="ArgumentException">Absent and <paramref name="required"/>.</exception>
    private string? BookAddress(RaftNodeId id, bool required)
    {
        if (_options.Members.TryGetValue(id, out var endpoint))
        {
            return endpoint.ToString();
        }

        return required
            ? throw new ArgumentException($"Node {id} is not in the address book (ReplicatedLogOptions.Members): give its endpoint.", nameof(id))
            : null;
    }

    private async ValueTask ChangeMembershipAsync(ConfigChange change, CancellationToken cancellationToken)
    {
        ThrowIfNotRunning();
        if (change.Node.IsNone)
        {
            throw new ArgumentException("Node id 0 is reserved for 'none'.", nameof(change));
        }

        try
        {
            await _host!.ProposeConfigChangeAsync(change, cancellationToken).AsTask()
                .WaitAsync(_options.ReplicateTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new ReplicationTimeoutException(_options.ReplicateTimeout);
        }
        catch (NotLeaderException ex)
        {
            throw NotLeader(ex.LeaderId);
        }
    }

    /// <summary>
    /// Reads the committed application records from <paramref name="fromOffset"/> on, then waits for more: the
    /// enumeration ends only when cancelled or when the member stops. Records come from this member's own log.
    /// </summary>
    /// <param name="fromOffset">The first offset to return (a gap offset starts at the next record).</param>
    /// <param name="cancellationToken">Ends the enumeration with <see cref="OperationCanceledException"/>.</param>
    /// <returns>The committed records in offset order.</returns>
    /// <exception cref="InvalidOperationException">Not started, or the member stopped after a failure (<see cref="ReplicatedLogStatus.Fault"/>, also the inner exception).</exception>
    /// <exception cref="ObjectDisposedException">The member was disposed while reading.</exception>
    /// <exception cref="RecordsCompactedException">The next record to return was compacted into a snapshot (at the start, or
    /// while a slow reader lagged behind one): the state machine holds it; read again from the exception's start offset.</exception>
    public async IAsyncEnumerable<CommittedRecord> ReadCommittedAsync(
        long fromOffset, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ThrowIfNotRunning();
        ArgumentOutOfRangeException.ThrowIfNegative(fromOffset);
        var next = fromOffset;
        while (true)
        {
            Task advanced;
            long end;
            lock (_commitGate)
            {
                advanced = _commitAdvanced.Task;
                end = _committedEndOffset;
            }

            if (next < end)
            {
                var (chunk, chunkEnd) = await ReadChunkAsync(next, end, cancellationToken).ConfigureAwait(false);
                foreach (var record in chunk)
                {
                    yield return record;
                }

                next = chunkEnd;
                continue;
            }

            ObjectDisposedException.ThrowIf(_state == 2, this);
            if (_fault is { } fault)
            {
                throw Stopped(fault); // nothing more will be committed here
            }

            await advanced.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Leaves the group: stops the Raft loop, closes the connections and the local log. Pending replications fail
    /// with <see cref="ObjectDisposedException"/> (they may still have been committed by the others).
    /// </summary>
    /// <returns>A task that completes when everything is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        var previous = Interlocked.Exchange(ref _state, 2);
        if (previous == 2)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _requests.Writer.TryComplete();
        _leadershipEvents.Writer.TryComplete();
        await Task.WhenAll(_loop, _batcher, _events).ConfigureAwait(false);
        if (_transport is not null)
        {
            await _transport.DisposeAsync().ConfigureAwait(false);
        }

        if (_raftLog is not null)
        {
            await _raftLog.CloseAsync().ConfigureAwait(false); // the loop has stopped: nothing fetches any more
        }

        if (_log is not null)
        {
            await _log.DisposeAsync().ConfigureAwait(false);
        }

        while (_requests.Reader.TryRead(out var request))
        {
            request.Completion.TrySetException(new ObjectDisposedException(nameof(ReplicatedLog)));
        }

        SignalCommit();
        _stop.Dispose();
    }

    /// <summary>
    /// Reads committed records in [<paramref name="from"/>, <paramref name="end"/>) under a read lease, at most
    /// <see cref="ReadChunkRecordsMax"/> of them, so a follower's truncation of its uncommitted tail waits only for this
    /// read and never for the consumer.
    /// </summary>
    /// <returns>The records, and the offset to read from next.</returns>
    private async ValueTask<(List<CommittedRecord> Records, long Next)> ReadChunkAsync(long from, long end, CancellationToken cancellationToken)
    {
        var records = new List<CommittedRecord>();
        var gate = _raftLog!.Gate;
        await gate.EnterReadAsync(cancellationToken).ConfigureAwait(false);
        var next = end;
        try
        {
            // Under the lease no compaction deletes segments, so this check holds for the whole read.
            if (from < _log!.StartOffset)
            {
                throw new RecordsCompactedException(from, _log.StartOffset);
            }

            await foreach (var record in _log.ReadAsync(from, cancellationToken).ConfigureAwait(false))
            {
                if (record.Offset >= end)
                {
                    break;
                }

                if (records.Count >= ReadChunkRecordsMax)
                {
                    next = record.Offset;
                    break;
                }

                if (!IsControl(record))
                {
                    records.Add(new CommittedRecord(record.Offset, record.Value));
                }
            }
        }
        finally
        {
            gate.ExitRead();
        }

        return (records, next);
    }

    private static bool IsControl(LogRecord record)
    {
        foreach (var header in record.Headers)
        {
            if (header.Key == EntryBatch.KindHeader || (header.Key == EntryBatch.SessionHeader && header.Value.IsEmpty))
            {
                return true; // a Raft entry, or the opening of a client session
            }
        }

        return false;
    }

    private void Receive(RaftMessage message) => _host?.Receive(message);

    private async Task RunHostAsync(RaftHost host)
    {
        try
        {
            await host.RunAsync(_stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (Exception ex)
        {
            // Storage failed (or an invariant broke): the member stops (fail-stop, as if it had crashed) and every
            // later call reports why. Closing the transport makes the others see it gone, so they elect without it
            // instead of waiting on a member that still holds its connections but no longer answers.
            _fault = ex;
            while (_requests.Reader.TryRead(out var request))
            {
                request.Completion.TrySetException(Stopped(ex));
            }

            SignalCommit();
            _leadershipEvents.Writer.TryWrite(new LeadershipChangedEventArgs(host.Status.Term, RaftNodeId.None, isThisNode: false));
            if (_transport is { } transport)
            {
                await transport.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static InvalidOperationException Stopped(Exception fault) =>
        new("The replicated log stopped after a failure; see the inner exception. Dispose it and start it again.", fault);

    /// <summary>Applies one committed entry, on the host's apply task; <paramref name="baseOffset"/> is its first record's offset.</summary>
    private async ValueTask ApplyAsync(RaftEntry entry, long baseOffset, CancellationToken cancellationToken)
    {
        var end = baseOffset + 1;
        if (entry.Kind == RaftEntryKind.Normal && !entry.Data.IsEmpty)
        {
            var records = EntryBatch.ReadRecords(entry.Data);
            for (var i = 0; i < records.Count; i++)
            {
                var (value, session) = records[i];
                var record = new CommittedRecord(baseOffset + i, value);
                if (session is { } tag)
                {
                    await ApplySessionRecordAsync(record, tag, cancellationToken).ConfigureAwait(false);
                }
                else if (_options.StateMachine is { } stateMachine)
                {
                    await stateMachine.ApplyAsync(record, cancellationToken).ConfigureAwait(false);
                }
                else if (_options.Apply is { } apply)
                {
                    await apply(record, cancellationToken).ConfigureAwait(false);
                }
            }

            end = baseOffset + records.Count;
        }

        Volatile.Write(ref _committedEndOffset, end);
        SignalCommit();
    }

    /// <summary>
    /// Applies a record of a client session at most once per (session, sequence), on every member alike, and answers the
    /// callers waiting here for it (see <see cref="ClientSessions"/>).
    /// </summary>
    private async ValueTask ApplySessionRecordAsync(CommittedRecord record, SessionTag tag, CancellationToken cancellationToken)
    {
        if (tag.IsOpen)
        {
            _sessions.Open(record.Offset);
            return;
        }

        ReplicationResult result;
        switch (_sessions.Check(tag.SessionId, tag.Sequence, out var firstOffset, out var recorded))
        {
            case SessionOutcome.Apply:
                var response = ReadOnlyMemory<byte>.Empty;
                if (_options.StateMachine is { } stateMachine)
                {
                    response = await stateMachine.ApplyWithResponseAsync(record, cancellationToken).ConfigureAwait(false);
                }
                else if (_options.Apply is { } apply)
                {
                    await apply(record, cancellationToken).ConfigureAwait(false);
                }

                _sessions.Record(tag.SessionId, tag.Sequence, record.Offset, response.Span);
                result = new ReplicationResult(record.Offset, response.ToArray(), isDuplicate: false);
                break;
            case SessionOutcome.Duplicate:
                result = new ReplicationResult(firstOffset, recorded, isDuplicate: true);
                break;
            default:
                RecordSessionOutcome(tag, record.Offset, null);
                return;
        }

        RecordSessionOutcome(tag, record.Offset, result);
    }

    /// <summary>Tells the callers waiting here for (session, sequence) what the copy at <paramref name="offset"/> did (null: refused as expired).</summary>
    private void RecordSessionOutcome(SessionTag tag, long offset, ReplicationResult? result)
    {
        lock (_sessionWaiters)
        {
            if (_sessionWaiters.TryGetValue((tag.SessionId, tag.Sequence), out var waiters))
            {
                foreach (var outcomes in waiters)
                {
                    outcomes[offset] = result;
                }
            }
        }
    }

    /// <summary>
    /// Restores the state machine from <paramref name="snapshot"/> (at start, or installing the leader's), streaming the
    /// image from its file: the state machine reads a stream of its own image only, however large.
    /// </summary>
    private async ValueTask RestoreAsync(RaftSnapshot snapshot, CancellationToken cancellationToken)
    {
        var stateMachine = _options.StateMachine
            ?? throw new NotSupportedException("A member without a StateMachine cannot restore a snapshot: configure every member alike.");
        var endOffset = SnapshotPayload.EndOffset(snapshot.Data)
            ?? throw new InvalidDataException("A snapshot carries the offset where its log continues.");

        // The image is the session table, then the state machine's own (see TakeSnapshotAsync).
        int sessionBytes;
        using (var sessions = snapshot.Data.OpenRead(SnapshotPayload.HeaderBytes))
        {
            sessionBytes = _sessions.ReadFrom(sessions);
        }

        using (var source = snapshot.Data.OpenRead(SnapshotPayload.HeaderBytes + sessionBytes))
        {
            await stateMachine.RestoreSnapshotAsync(source, cancellationToken).ConfigureAwait(false);
        }

        _snapshotEndOffset = endOffset;
        Interlocked.Increment(ref _snapshotsRestored);
        Volatile.Write(ref _committedEndOffset, endOffset);
        SignalCommit();
    }

    /// <summary>
    /// On the apply task, once it has applied what was queued: every <see cref="ReplicatedLogOptions.SnapshotInterval"/>
    /// offsets, writes a snapshot of the state machine as of <paramref name="applied"/> to a file (the offset after it,
    /// the session table, then the state machine's image), fsyncs it and renames it into place. Nothing is applied
    /// meanwhile, so the image is of one consistent point; the Raft loop goes on (heartbeats, votes, replication).
    /// </summary>
    private async ValueTask<SnapshotImage?> TakeSnapshotAsync(long applied, CancellationToken cancellationToken)
    {
        if (_options.StateMachine is not { } stateMachine || _options.SnapshotInterval <= 0)
        {
            return null;
        }

        // The apply task wrote it after the entry at `applied`: the offset where the log continues after the snapshot.
        var endOffset = Volatile.Read(ref _committedEndOffset);
        if (endOffset - _snapshotEndOffset < _options.SnapshotInterval)
        {
            return null;
        }

        var temp = Path.Combine(_options.Directory, SnapshotFile.TakeFileName);
        var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, SnapshotWriteBufferBytes, FileOptions.Asynchronous);
        await using (file.ConfigureAwait(false))
        {
            var header = new byte[SnapshotPayload.HeaderBytes];
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(header, endOffset);
            await file.WriteAsync(header, cancellationToken).ConfigureAwait(false);
            var sessions = new byte[_sessions.EncodedSize];
            _sessions.WriteTo(sessions);
            await file.WriteAsync(sessions, cancellationToken).ConfigureAwait(false);
            await stateMachine.WriteSnapshotAsync(file, cancellationToken).ConfigureAwait(false);
            await file.FlushAsync(cancellationToken).ConfigureAwait(false);
            file.Flush(flushToDisk: true);
        }

        var image = SnapshotFile.Publish(_options.Directory, temp, applied);
        _snapshotEndOffset = endOffset;
        Interlocked.Increment(ref _snapshotsTaken);
        return image;
    }

    private void SignalCommit()
    {
        TaskCompletionSource signalled;
        lock (_commitGate)
        {
            signalled = _commitAdvanced;
            _commitAdvanced = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        signalled.TrySetResult();
    }

    /// <summary>
    /// Gathers the requests queued at this moment into one entry (up to the entry size), hands it to the loop, and
    /// goes on without waiting for its commit: entries are pipelined, and the longer the loop is busy (a sync), the more
    /// requests the next entry carries.
    /// </summary>
    private async Task BatchLoopAsync()
    {
        var reader = _requests.Reader;
        var token = _stop.Token;
        try
        {
            while (await reader.WaitToReadAsync(token).ConfigureAwait(false))
            {
                var batch = new List<Request>();
                var bytes = 0;
                while (reader.TryPeek(out var next)
                    && (batch.Count == 0 || bytes + next.EncodedBytesMax <= _entryPayloadBytesMax))
                {
                    reader.TryRead(out _);
                    batch.Add(next);
                    bytes += next.EncodedBytesMax;
                }

                var payloads = batch.Select(r => r.Payload).ToList();
                var sessions = batch.Any(r => r.Session is not null) ? batch.Select(r => r.Session).ToList() : null;
                Task<long> committed;
                try
                {
                    committed = await _host!.SubmitAsync(
                        term => EntryBatch.EncodeApplication(payloads, sessions, term, _time.GetUtcNow().ToUnixTimeMilliseconds()),
                        token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    Fail(batch, new ObjectDisposedException(nameof(ReplicatedLog)));
                    return;
                }
                catch (ChannelClosedException ex)
                {
                    // The Raft loop stopped after a failure.
                    Fail(batch, Stopped(ex.InnerException ?? ex));
                    return;
                }

                _ = CompleteAsync(committed, batch);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Disposed: DisposeAsync fails what is still queued.
        }
    }

    private async Task CompleteAsync(Task<long> committed, List<Request> batch)
    {
        try
        {
            var baseOffset = await committed.ConfigureAwait(false);
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i].Completion.TrySetResult(baseOffset + i);
            }
        }
        catch (NotLeaderException ex)
        {
            Fail(batch, NotLeader(ex.LeaderId));
        }
        catch (Exception ex)
        {
            if (_state != 2 && _host?.ApplyFault is not null)
            {
                // The state machine failed and the member is stopping: let the fail-stop finish (the fault visible in
                // Status, the leadership event published) before the callers learn of it, so what they then see agrees.
                // Bounded: the stop closes the transport, nothing more.
                await Task.WhenAny(_loop, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
            }

            Fail(batch, _state == 2 ? new ObjectDisposedException(nameof(ReplicatedLog)) : Stopped(ex));
        }
    }

    private static void Fail(List<Request> batch, Exception ex)
    {
        foreach (var request in batch)
        {
            request.Completion.TrySetException(ex);
        }
    }

    private NotLeaderException NotLeader(RaftNodeId leader) =>
        new(NodeId, leader, leader.IsNone ? null : EndpointOf(leader),
            leader.IsNone ? null : leader == NodeId ? _options.AdvertisedAddress : _transport?.AdvertisedAddressOf(leader));

    /// <summary>On the Raft loop: the transport learns the endpoints the membership carries (an unparsable one is ignored).</summary>
    private void OnMembershipChanged(ClusterConfig config)
    {
        var endpoints = new List<KeyValuePair<RaftNodeId, IPEndPoint>>();
        foreach (var (id, address) in config.Addresses)
        {
            if (IPEndPoint.TryParse(address, out var endpoint))
            {
                endpoints.Add(KeyValuePair.Create(id, endpoint));
            }
        }

        _transport?.SetPeerEndpoints(endpoints);
    }

    /// <summary>Where <paramref name="id"/> listens for Raft traffic: as the replicated membership says, else as the address book says.</summary>
    private IPEndPoint? EndpointOf(RaftNodeId id) =>
        id == NodeId ? _options.Members[NodeId]
        : _transport?.EndpointOf(id) ?? (_options.Members.TryGetValue(id, out var endpoint) ? endpoint : null);

    private void OnLeadershipChanged(RaftHostStatus status) =>
        _leadershipEvents.Writer.TryWrite(new LeadershipChangedEventArgs(status.Term, status.Leader, status.Leader == NodeId));

    private async Task EventLoopAsync()
    {
        await foreach (var args in _leadershipEvents.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                LeadershipChanged?.Invoke(this, args);
            }
#pragma warning disable CA1031 // A subscriber's exception must not stop the member or later events.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }
    }

    private void ThrowIfNotRunning()
    {
        ObjectDisposedException.ThrowIf(_state == 2, this);
        if (_state == 0)
        {
            throw new InvalidOperationException("Call StartAsync first.");
        }

        if (_fault is { } fault)
        {
            throw Stopped(fault);
        }
    }

    private sealed class Request(ReadOnlyMemory<byte> payload, SessionTag? session)
    {
        public ReadOnlyMemory<byte> Payload { get; } = payload;

        /// <summary>The record's session tag, or null outside any session.</summary>
        public SessionTag? Session { get; } = session;

        /// <summary>The most bytes the record takes in a batch.</summary>
        public int EncodedBytesMax => Payload.Length + RecordOverheadBytesMax + (Session is null ? 0 : SessionHeaderBytesMax);

        /// <summary>
        /// Completed by <see cref="CompleteAsync"/> (or a failure path), never under a lock. Its continuations run inline:
        /// one thread-pool hop completes the whole batch, the callers' continuations one after another, instead of one
        /// hop per caller. At 64 clients that hop per commit was the leader's largest share of thread-pool work items
        /// (1.0 of 1.24 per commit), and every hop wakes a worker that spins before it sleeps again (28 % of the
        /// leader's CPU samples were that spinning; perf/results/2026-12-03-raft-issue16-s4.md).
        /// </summary>
        public TaskCompletionSource<long> Completion { get; } = new();
    }
}
