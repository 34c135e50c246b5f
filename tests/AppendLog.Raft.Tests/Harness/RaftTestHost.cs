using System.Buffers.Binary;
using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;

namespace AppendLog.Raft.Tests.Harness;

/// <summary>
/// A host for one node over in-memory storage, following the Ready contract: write (volatile), sync, then send,
/// apply and advance. The state machine is a hash chain over applied entries, so its snapshot is 16 bytes.
/// </summary>
internal sealed class RaftTestHost
{
    private readonly RaftOptions _options;
    private readonly int _seed;
    private int _incarnation;

    public RaftTestHost(RaftNodeId id, ClusterConfig bootstrap, RaftOptions options, int seed, int residentEntries = 0)
    {
        Id = id;
        _options = options;
        _seed = seed;
        Log = new MemoryRaftLog(RaftSnapshot.Bootstrap(bootstrap)) { ResidentEntries = residentEntries };
        HardStates = new MemoryHardStateStore();
        Start();
    }

    public RaftNodeId Id { get; }

    public MemoryRaftLog Log { get; }

    public MemoryHardStateStore HardStates { get; }

    /// <summary>Null while crashed.</summary>
    public RaftNode? Node { get; private set; }

    public RaftNode N => Node ?? throw new InvalidOperationException($"node {Id} is down");

    public long AppliedIndex { get; private set; }

    public ulong AppliedHash { get; private set; }

    /// <summary>Entries applied since the last restart, in order (snapshots reset it).</summary>
    public List<RaftEntry> AppliedEntries { get; } = [];

    /// <summary>Called for each entry applied (index, entry, hash after it) and for each snapshot restored.</summary>
    public Action<RaftTestHost, RaftEntry, ulong>? OnApplied { get; set; }

    public Action<RaftTestHost, RaftSnapshot>? OnSnapshotRestored { get; set; }

    /// <summary>Called when a confirmed read is served (the state machine has applied through its index): request id, index.</summary>
    public Action<RaftTestHost, long, long>? OnReadServed { get; set; }

    /// <summary>Called when a read fails (leadership lost, or this node crashed): request id.</summary>
    public Action<RaftTestHost, long>? OnReadFailed { get; set; }

    /// <summary>Reads served since the node was created, in order: (request id, read index, applied index when served).</summary>
    public List<(long RequestId, long Index, long AppliedIndex)> ReadsServed { get; } = [];

    /// <summary>Reads failed since the node was created.</summary>
    public List<long> ReadsFailed { get; } = [];

    /// <summary>Confirmed reads waiting for the state machine to apply through their index.</summary>
    private readonly List<ReadState> _readsWaiting = [];

    /// <summary>Compact when this many applied entries sit above the snapshot (0: never).</summary>
    public int CompactAfterEntries { get; set; }

    public Ready? InFlight { get; private set; }

    /// <summary>A leader's batch that allows it is advanced before its sync (<see cref="Ready.MayAdvanceBeforeDurable"/>);
    /// <see cref="BeginReady"/> then leaves <see cref="InFlight"/> null and the caller calls <see cref="CompleteDurable"/> later.</summary>
    public bool PipelineLeaderWrites { get; set; }

    /// <summary>
    /// The pipelined writes are durable now: sync and tell the node. While a Ready is in flight the node may not be
    /// told (no input between GetReady and Advance): <see cref="CompleteReady"/> does it after advancing (a Ready with
    /// nothing to persist is not synced, so it does not cover them).
    /// </summary>
    public void CompleteDurable()
    {
        if (Node is null)
        {
            return;
        }

        if (InFlight is not null)
        {
            _durableOwed = true;
            return;
        }

        Log.Sync();
        Node.LocalDurable();
    }

    private bool _durableOwed;

    public bool IsUp => Node is not null;

    /// <summary>Ready step 1-3: take the batch and write it (not yet durable).</summary>
    public Ready? BeginReady()
    {
        if (Node is null || InFlight is not null)
        {
            return null;
        }

        if (Log.NeedsFetch)
        {
            // The real host reads the missing payloads back from disk here (asynchronously), then tells the node.
            Log.Fetch();
            Node.EntriesFetched();
        }

        if (!Node.HasReady)
        {
            return null;
        }

        var ready = Node.GetReady();
        if (ready.Snapshot is not null)
        {
            Log.InstallSnapshot(ready.Snapshot);
        }

        Log.Append(ready.Entries);
        if (ready.HardState is { } hardState)
        {
            HardStates.Save(hardState);
        }

        if (PipelineLeaderWrites && ready.MayAdvanceBeforeDurable)
        {
            // Written, not yet durable: apply and advance now; the caller later syncs and calls LocalDurable.
            foreach (var entry in ready.CommittedEntries)
            {
                Apply(entry);
            }

            Node.AdvanceBeforeDurable(ready);
            HandleReads(ready);
            MaybeCompact();
            return ready;
        }

        InFlight = ready;
        return ready;
    }

    /// <summary>Ready steps 4-6: sync, then hand back the messages to send after it, apply, and advance.
    /// (The caller sends <see cref="Ready.MessagesBeforeSync"/> itself, after <see cref="BeginReady"/>.)</summary>
    /// <param name="syncFailedIgnored">A broken host (for teeth tests): the sync failed with EIO (the unsynced writes and
    /// hard state are lost to the disk) and the host carries on as if it had succeeded, instead of stopping.</param>
    public IReadOnlyList<RaftMessage> CompleteReady(bool syncFailedIgnored = false)
    {
        var ready = InFlight ?? throw new InvalidOperationException("no Ready in flight");
        InFlight = null;

        // As the real host (RaftHost): sync only when the batch says so. A leader's earlier pipelined writes may still
        // be in flight after a batch with nothing to persist (a vote reply), and the node must not assume otherwise.
        if (ready.MustSync && syncFailedIgnored)
        {
            // The disk lost the writes; the next sync will report them durable (Fsyncgate). The hard state stays volatile.
            Log.LoseUnsynced();
            Log.Sync();
        }
        else if (ready.MustSync)
        {
            Log.Sync();
            HardStates.Sync();
        }
        if (ready.Snapshot is not null)
        {
            RestoreStateMachine(ready.Snapshot);
        }

        foreach (var entry in ready.CommittedEntries)
        {
            Apply(entry);
        }

        N.Advance(ready);
        HandleReads(ready);
        if (_durableOwed)
        {
            _durableOwed = false;
            Log.Sync();
            N.LocalDurable();
        }

        MaybeCompact();
        return ready.Messages;
    }

    /// <summary>Processes every pending Ready synchronously; returns the messages to send.</summary>
    public List<RaftMessage> Drain()
    {
        var messages = new List<RaftMessage>();
        while (BeginReady() is { } ready)
        {
            messages.AddRange(ready.MessagesBeforeSync);
            messages.AddRange(CompleteReady());
        }

        return messages;
    }

    /// <summary>A power cut: the node and its unsynced writes are gone.</summary>
    /// <param name="logWriteSurvives">Whether an in-flight Ready's log write reached the disk (its hard state did not).</param>
    /// <param name="unsyncedKept">Otherwise, how many of the first unsynced entries reached the disk (a torn write).</param>
    public void Crash(bool logWriteSurvives = false, int unsyncedKept = 0)
    {
        if (InFlight is not null && logWriteSurvives)
        {
            Log.Sync();
        }

        Log.Crash(unsyncedKept);
        HardStates.Crash();
        foreach (var read in _readsWaiting)
        {
            FailRead(read.RequestId);
        }

        _readsWaiting.Clear();
        Node = null;
        InFlight = null;
        _durableOwed = false;
    }

    public void Restart() => Start();

    /// <summary>Ready step 7: take the batch's confirmed and failed reads, then serve every waiting read that is applied.</summary>
    private void HandleReads(Ready ready)
    {
        _readsWaiting.AddRange(ready.ReadStates);
        foreach (var requestId in ready.ReadsFailed)
        {
            FailRead(requestId);
        }

        var served = 0;
        foreach (var read in _readsWaiting)
        {
            if (read.Index > AppliedIndex)
            {
                continue;
            }

            ReadsServed.Add((read.RequestId, read.Index, AppliedIndex));
            OnReadServed?.Invoke(this, read.RequestId, read.Index);
            served++;
        }

        if (served > 0)
        {
            _readsWaiting.RemoveAll(read => read.Index <= AppliedIndex);
        }
    }

    private void FailRead(long requestId)
    {
        ReadsFailed.Add(requestId);
        OnReadFailed?.Invoke(this, requestId);
    }

    /// <summary>Replaces this node's durable state with a log of the given terms (from index 1) and a current term, then restarts it.</summary>
    public void SetDurableState(long currentTerm, params long[] entryTerms)
    {
        Crash();
        Log.InstallSnapshot(Log.Snapshot);
        Log.Append([.. entryTerms.Select((t, i) => new RaftEntry(t, i + 1, RaftEntryKind.Normal, new byte[] { (byte)t, (byte)(i + 1) }))]);
        Log.Sync();
        HardStates.Save(new HardState(currentTerm, RaftNodeId.None, 0));
        HardStates.Sync();
        Restart();
    }

    private void Start()
    {
        _incarnation++;
        AppliedEntries.Clear();
        RestoreStateMachine(Log.Snapshot);
        Node = new RaftNode(Id, _options, Log, HardStates.Load(), new Random(NodeSeed(_seed, Id, _incarnation)));
    }

    /// <summary>
    /// The seed of one incarnation of one node. Not HashCode.Combine: that is randomized per process, and a run must
    /// replay identically in another process from its printed seed.
    /// </summary>
    private static int NodeSeed(int seed, RaftNodeId id, int incarnation) =>
        unchecked((int)(((ulong)(uint)seed * 1_000_003UL) ^ (id.Value * 7_919UL) ^ ((ulong)incarnation * 104_729UL)));

    private void RestoreStateMachine(RaftSnapshot snapshot)
    {
        AppliedEntries.Clear();
        if (snapshot.Data.Length == 0)
        {
            AppliedIndex = snapshot.Index;
            AppliedHash = 0;
        }
        else
        {
            var data = snapshot.Data.ToArray();
            AppliedIndex = BinaryPrimitives.ReadInt64LittleEndian(data);
            AppliedHash = BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(8));
        }

        _hashBase = AppliedHash;
        OnSnapshotRestored?.Invoke(this, snapshot);
    }

    private void Apply(RaftEntry entry)
    {
        if (entry.Index != AppliedIndex + 1)
        {
            throw new InvalidOperationException($"node {Id} applies index {entry.Index} after {AppliedIndex}");
        }

        AppliedIndex = entry.Index;
        AppliedHash = Chain(AppliedHash, entry);
        AppliedEntries.Add(entry);
        OnApplied?.Invoke(this, entry, AppliedHash);
    }

    private void MaybeCompact()
    {
        if (CompactAfterEntries > 0 && Node is not null && Node.Applied - Log.Snapshot.Index >= CompactAfterEntries)
        {
            // Keep a short tail so slightly lagging followers still catch up from the log.
            var index = Node.Applied - (CompactAfterEntries / 4);
            var data = new byte[16];
            BinaryPrimitives.WriteInt64LittleEndian(data, index);
            BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(8), CompactAppliedTo(index));
            Node.Compact(index, data);
        }
    }

    /// <summary>The chain hash after <paramref name="index"/>; drops the recorded entries at or below it.</summary>
    private ulong CompactAppliedTo(long index)
    {
        var count = 0;
        foreach (var entry in AppliedEntries)
        {
            if (entry.Index > index)
            {
                break;
            }

            _hashBase = Chain(_hashBase, entry);
            count++;
        }

        AppliedEntries.RemoveRange(0, count);
        return _hashBase;
    }

    /// <summary>The hash before the first entry in <see cref="AppliedEntries"/>.</summary>
    private ulong _hashBase;

    public static ulong Chain(ulong hash, RaftEntry entry)
    {
        // FNV-1a over (previous hash, term, index, kind, payload): equal chains mean equal applied histories.
        const ulong prime = 1099511628211UL;
        var h = hash ^ 14695981039346656037UL;
        h = (h ^ (ulong)entry.Term) * prime;
        h = (h ^ (ulong)entry.Index) * prime;
        h = (h ^ (ulong)entry.Kind) * prime;
        foreach (var b in entry.Data.Span)
        {
            h = (h ^ b) * prime;
        }

        return h;
    }
}
