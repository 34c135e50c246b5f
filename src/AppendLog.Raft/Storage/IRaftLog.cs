using AppendLog.Raft.Core;

namespace AppendLog.Raft.Storage;

/// <summary>
/// The node's durable log, owned by the host. The seam maps onto a SegmentedLog: an entry is a record batch
/// whose leader epoch is the entry's term; <see cref="Append"/> is "truncate suffix after offset, then append
/// batches"; <see cref="Read"/> is "read from offset"; <see cref="DurableIndex"/> is the durable watermark;
/// <see cref="Compact"/> is prefix truncation after a snapshot.
/// <para>
/// Indexes: the log holds entries [<see cref="FirstIndex"/>, <see cref="LastIndex"/>]; everything at or before
/// <see cref="Snapshot"/>'s index is covered by the snapshot (<c>FirstIndex == Snapshot.Index + 1</c>). An empty
/// log has <c>LastIndex == Snapshot.Index</c>. Watermarks: <c>Snapshot.Index ≤ DurableIndex ≤ LastIndex</c>;
/// entries after <see cref="DurableIndex"/> may be lost by a crash.
/// </para>
/// </summary>
internal interface IRaftLog
{
    RaftSnapshot Snapshot { get; }

    long FirstIndex { get; }

    long LastIndex { get; }

    /// <summary>The last index that survives a crash. Advanced only by <see cref="SyncAsync"/>.</summary>
    long DurableIndex { get; }

    /// <summary>The term of the entry at <paramref name="index"/>, for index in [Snapshot.Index, LastIndex].</summary>
    /// <returns>False when the index is compacted away or past the end.</returns>
    bool TryGetTerm(long index, out long term);

    /// <summary>
    /// Removes every entry at or after <c>entries[0].Index</c> (which must be in [FirstIndex, LastIndex + 1]),
    /// then appends <paramref name="entries"/>, which have consecutive indexes. Not durable until <see cref="SyncAsync"/>.
    /// </summary>
    void Append(IReadOnlyList<RaftEntry> entries);

    /// <summary>Adds entries in [<paramref name="from"/>, <paramref name="to"/>) to <paramref name="into"/>,
    /// stopping before the total would pass <paramref name="maxBytes"/> (but always at least one entry), or before the
    /// first entry whose payload is not in memory: a log may keep only recent payloads (and every term). A read cut
    /// short that way asks for the missing entries (<see cref="NeedsFetch"/>); the host loads them with
    /// <see cref="FetchAsync"/> and then tells the node (<see cref="RaftNode.EntriesFetched"/>), which retries.</summary>
    void Read(long from, long to, long maxBytes, List<RaftEntry> into);

    /// <summary>Whether a <see cref="Read"/> stopped at an entry whose payload must be loaded first.</summary>
    bool NeedsFetch { get; }

    /// <summary>Loads (a bounded number of) the entries reads asked for; clears <see cref="NeedsFetch"/>.</summary>
    ValueTask FetchAsync(CancellationToken cancellationToken);

    /// <summary>Adds every membership-change entry above the snapshot to <paramref name="into"/>, in index order
    /// (the node rebuilds its membership history from them at start; they are always kept in memory).</summary>
    void ReadConfigChanges(List<RaftEntry> into);

    /// <summary>Makes every appended entry (and every truncation) durable: the SegmentedLog's fdatasync.</summary>
    ValueTask SyncAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Hands every appended entry to storage without waiting for it to be durable (truncations, an installed snapshot
    /// and prefix deletion are still complete when it returns). The result's task completes when the entries are
    /// durable; it changes nothing itself: the host then calls <see cref="MarkDurable"/> on its loop.
    /// </summary>
    ValueTask<PendingDurability> WriteAsync(CancellationToken cancellationToken);

    /// <summary>Records that the entries of a completed <see cref="WriteAsync"/> are durable (ignored when they were
    /// truncated or replaced since).</summary>
    void MarkDurable(PendingDurability written);

    /// <summary>Replaces the whole log with <paramref name="snapshot"/> (durably): a follower restoring from its leader.</summary>
    void InstallSnapshot(RaftSnapshot snapshot);

    /// <summary>Records <paramref name="snapshot"/> (durably) and drops the entries it covers. Its index must be durable.</summary>
    void Compact(RaftSnapshot snapshot);

    /// <summary>
    /// Stores one chunk of the image of the leader's snapshot <paramref name="metadata"/> (see <see cref="SnapshotReceiver"/>).
    /// Nothing of the log changes: a complete image is installed later, through the node and <see cref="InstallSnapshot"/>.
    /// </summary>
    /// <returns>The image bytes now held from its start (the leader sends from there), and the image once it is whole
    /// and durable.</returns>
    (long Received, SnapshotImage? Image) ReceiveSnapshotChunk(SnapshotMetadata metadata, long length, long offset, ReadOnlySpan<byte> chunk, RaftNodeId sender);
}

/// <summary>What <see cref="IRaftLog.WriteAsync"/> handed to storage: durable when <see cref="Durable"/> completes.</summary>
/// <param name="Durable">Completes when the written entries are durable (faults when storage fails).</param>
/// <param name="LastIndex">The last entry written.</param>
/// <param name="Epoch">The log's truncation epoch at the write: a later truncation or install makes the notice stale.</param>
internal sealed record PendingDurability(Task Durable, long LastIndex, long Epoch);

/// <summary>Where the node's <see cref="HardState"/> (term, vote, commit) is kept: a small file in the real host.</summary>
internal interface IHardStateStore
{
    HardState Load();

    /// <summary>Stores <paramref name="state"/>; not durable until <see cref="SyncAsync"/>.</summary>
    void Save(HardState state);

    ValueTask SyncAsync(CancellationToken cancellationToken);
}
