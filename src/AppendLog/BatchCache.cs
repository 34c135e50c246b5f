using AppendLog.Diagnostics;

namespace AppendLog;

/// <summary>
/// A cache of record batches read from segment files, with one memory budget shared by every log that uses it
/// (like <see cref="LogBufferPool"/> for writes). Readers look a batch up by its file and position before reading
/// the disk, and insert what they read. Since segment files bypass the page cache, this is the only cache of log data:
/// hot data (the recent tail, data several consumers read) is served from memory, while a scan of a large cold log
/// never touches the application's page cache.
/// <para>
/// Scan-resistant (a segmented LRU): a batch enters a probation segment; a second lookup that finds it moves it to
/// a protected segment of at most 80% of the budget (its least recently used batches drop back to probation). When the
/// budget is exceeded, probation's least recently used batches go first. A reader that scans a cold log sequentially
/// admits its batches only into free room, at probation's cold end: the scan then evicts nothing, and even a
/// lookup-like reader that reads every batch once churns probation only, never what was read twice.
/// </para>
/// Thread-safe.
/// </summary>
public sealed class BatchCache
{
    /// <summary>The budget of <see cref="Shared"/>: 64 MiB.</summary>
    public const long DefaultBudgetBytes = 64L * 1024 * 1024;

    /// <summary>Bookkeeping per entry counted against the budget on top of the batch's bytes.</summary>
    internal const int EntryOverheadBytes = 128;

    private readonly Lock _lock = new();
    private readonly Dictionary<Key, Node> _entries = new();
    private readonly Segment _probation = new();
    private readonly Segment _protected = new();
    private long _cachedBytes;
    private long _hits;
    private long _misses;

    /// <summary>Creates a cache holding at most <paramref name="budgetBytes"/> of batches.</summary>
    /// <param name="budgetBytes">The budget in bytes: 0 disables caching; otherwise at least 1 MiB.</param>
    /// <exception cref="ArgumentOutOfRangeException">The budget is negative or between 0 and 1 MiB.</exception>
    public BatchCache(long budgetBytes = DefaultBudgetBytes)
    {
        if (budgetBytes < 0 || (budgetBytes > 0 && budgetBytes < 1024 * 1024))
        {
            throw new ArgumentOutOfRangeException(nameof(budgetBytes), budgetBytes, "The batch cache budget must be 0 (disabled) or at least 1 MiB.");
        }

        BudgetBytes = budgetBytes;
        ProtectedBytesMax = budgetBytes / 5 * 4;
    }

    /// <summary>The cache every log uses unless its options name another.</summary>
    public static BatchCache Shared { get; } = new();

    /// <summary>The most bytes the cache holds (batch bytes plus a fixed overhead per entry).</summary>
    public long BudgetBytes { get; }

    /// <summary>The most bytes the protected segment (batches found at least twice) holds: 80% of the budget.</summary>
    internal long ProtectedBytesMax { get; }

    /// <summary>The bytes held now.</summary>
    public long CachedBytes
    {
        get
        {
            lock (_lock)
            {
                return _cachedBytes;
            }
        }
    }

    /// <summary>The number of batches held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Lookups answered from the cache since it was created.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>
    /// Lookups not answered from the cache since it was created: each then read the disk or a log's in-memory durable
    /// tail (the writer's buffers). The meter instrument <c>appendlog.read.batches</c> (tag <c>appendlog.read.source</c>)
    /// tells those apart.
    /// </summary>
    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>Drops every cached batch (for example to measure cold reads).</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _entries.Clear();
            _probation.Clear();
            _protected.Clear();
            _cachedBytes = 0;
        }
    }

    /// <summary>The batch that starts at <paramref name="position"/> of the file generation <paramref name="fileKey"/>, if cached.</summary>
    internal bool TryGet(long fileKey, long position, out LogBatch batch)
    {
        if (BudgetBytes == 0)
        {
            batch = null!;
            return false;
        }

        lock (_lock)
        {
            if (_entries.TryGetValue(new Key(fileKey, position), out var node))
            {
                PromoteUnsynchronized(node);
                _hits++;
                batch = node.Batch;
                return true;
            }

            _misses++;
        }

        batch = null!;
        return false;
    }

    /// <summary>Whether <see cref="Add"/> would keep a batch of <paramref name="size"/> bytes admitted as <paramref name="admission"/>.</summary>
    internal bool WouldKeep(int size, BatchAdmission admission)
    {
        long entry = (long)size + EntryOverheadBytes;
        if (BudgetBytes == 0 || entry > BudgetBytes / 4)
        {
            return false;
        }

        if (admission == BatchAdmission.Normal)
        {
            return true;
        }

        lock (_lock)
        {
            return _cachedBytes + entry <= BudgetBytes;
        }
    }

    /// <summary>
    /// Caches <paramref name="batch"/>, read at <paramref name="position"/> of the file generation <paramref name="fileKey"/>:
    /// at probation's recent end (<see cref="BatchAdmission.Normal"/>), or into free room only at its cold end
    /// (<see cref="BatchAdmission.Scan"/>).
    /// </summary>
    internal void Add(long fileKey, long position, LogBatch batch, BatchAdmission admission = BatchAdmission.Normal)
    {
        long size = batch.Bytes.Length + EntryOverheadBytes;
        if (size > BudgetBytes / 4)
        {
            return; // a batch this large would evict a quarter of the cache for one reader
        }

        lock (_lock)
        {
            var key = new Key(fileKey, position);
            if (_entries.ContainsKey(key))
            {
                return;
            }

            if (admission == BatchAdmission.Scan && _cachedBytes + size > BudgetBytes)
            {
                return; // inserted at the cold end it would be the next victim: keep what is there instead
            }

            var node = new Node(key, batch, size);
            _entries.Add(key, node);
            if (admission == BatchAdmission.Scan)
            {
                _probation.LinkOldest(node);
            }
            else
            {
                _probation.LinkNewest(node);
            }

            _cachedBytes += size;
            while (_cachedBytes > BudgetBytes)
            {
                var victim = _probation.Oldest ?? _protected.Oldest;
                Invariant.Assert(victim is not null, "an over-budget cache holds entries");
                RemoveUnsynchronized(victim);
            }

            Invariant.Assert(_cachedBytes <= BudgetBytes, "the cache stays within its budget");
            Invariant.Assert(_protected.Bytes <= ProtectedBytesMax, "the protected segment stays within its share");
        }
    }

    /// <summary>True when the batch at <paramref name="position"/> of <paramref name="fileKey"/> is held (no lookup counted, no promotion).</summary>
    internal bool Contains(long fileKey, long position)
    {
        lock (_lock)
        {
            return _entries.ContainsKey(new Key(fileKey, position));
        }
    }

    private void RemoveUnsynchronized(Node node)
    {
        _entries.Remove(node.Key);
        SegmentOf(node).Unlink(node);
        _cachedBytes -= node.Size;
    }

    /// <summary>A hit: into the protected segment (or to its recent end), demoting its oldest to probation when over its share.</summary>
    private void PromoteUnsynchronized(Node node)
    {
        SegmentOf(node).Unlink(node);
        node.IsProtected = true;
        _protected.LinkNewest(node);
        while (_protected.Bytes > ProtectedBytesMax && _protected.Oldest is { } demoted && !ReferenceEquals(demoted, node))
        {
            _protected.Unlink(demoted);
            demoted.IsProtected = false;
            _probation.LinkNewest(demoted);
        }
    }

    private Segment SegmentOf(Node node) => node.IsProtected ? _protected : _probation;

    private readonly record struct Key(long FileKey, long Position);

    private sealed class Node(Key key, LogBatch batch, long size)
    {
        public Key Key { get; } = key;

        public LogBatch Batch { get; } = batch;

        public long Size { get; } = size;

        public bool IsProtected { get; set; }

        public Node? Newer { get; set; }

        public Node? Older { get; set; }
    }

    /// <summary>One LRU list (newest to oldest) and the bytes it holds.</summary>
    private sealed class Segment
    {
        public Node? Newest { get; private set; }

        public Node? Oldest { get; private set; }

        public long Bytes { get; private set; }

        public void Clear()
        {
            Newest = Oldest = null;
            Bytes = 0;
        }

        public void LinkNewest(Node node)
        {
            node.Older = Newest;
            node.Newer = null;
            if (Newest is not null)
            {
                Newest.Newer = node;
            }

            Newest = node;
            Oldest ??= node;
            Bytes += node.Size;
        }

        public void LinkOldest(Node node)
        {
            node.Newer = Oldest;
            node.Older = null;
            if (Oldest is not null)
            {
                Oldest.Older = node;
            }

            Oldest = node;
            Newest ??= node;
            Bytes += node.Size;
        }

        public void Unlink(Node node)
        {
            if (node.Newer is not null)
            {
                node.Newer.Older = node.Older;
            }
            else
            {
                Newest = node.Older;
            }

            if (node.Older is not null)
            {
                node.Older.Newer = node.Newer;
            }
            else
            {
                Oldest = node.Newer;
            }

            node.Newer = node.Older = null;
            Bytes -= node.Size;
        }
    }
}

/// <summary>How a batch enters the <see cref="BatchCache"/>.</summary>
internal enum BatchAdmission
{
    /// <summary>At probation's recent end: a first touch that may be followed by others (the tail, a lookup).</summary>
    Normal,

    /// <summary>Into free room only, at probation's cold end: a sequential scan of cold data.</summary>
    Scan,
}
