using AppendLog.Diagnostics;

namespace AppendLog;

/// <summary>
/// A cache of record batches read from segment files, with one memory budget shared by every log that uses it
/// (like <see cref="LogBufferPool"/> for writes). Readers look a batch up by its file and position before reading
/// the disk, and insert what they read; when the budget is exceeded, the least recently used batches are dropped.
/// Since segment files bypass the page cache, this is the only cache of log data: hot data (the recent tail, data
/// several consumers read) is served from memory, while a scan of a large cold log evicts only this cache's own
/// entries, never the application's page cache.
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
    private Node? _newest;
    private Node? _oldest;
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
    }

    /// <summary>The cache every log uses unless its options name another.</summary>
    public static BatchCache Shared { get; } = new();

    /// <summary>The most bytes the cache holds (batch bytes plus a fixed overhead per entry).</summary>
    public long BudgetBytes { get; }

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

    /// <summary>Lookups that had to read the disk (or the writer's buffers) since it was created.</summary>
    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>Drops every cached batch (for example to measure cold reads).</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _entries.Clear();
            _newest = _oldest = null;
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
                MoveToNewestUnsynchronized(node);
                _hits++;
                batch = node.Batch;
                return true;
            }

            _misses++;
        }

        batch = null!;
        return false;
    }

    /// <summary>Caches <paramref name="batch"/>, read at <paramref name="position"/> of the file generation <paramref name="fileKey"/>.</summary>
    internal void Add(long fileKey, long position, LogBatch batch)
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

            var node = new Node(key, batch, size);
            _entries.Add(key, node);
            LinkNewestUnsynchronized(node);
            _cachedBytes += size;
            while (_cachedBytes > BudgetBytes && _oldest is { } victim)
            {
                RemoveUnsynchronized(victim);
            }

            Invariant.Assert(_cachedBytes <= BudgetBytes, "the cache stays within its budget");
        }
    }

    private void RemoveUnsynchronized(Node node)
    {
        _entries.Remove(node.Key);
        UnlinkUnsynchronized(node);
        _cachedBytes -= node.Size;
    }

    private void MoveToNewestUnsynchronized(Node node)
    {
        if (ReferenceEquals(node, _newest))
        {
            return;
        }

        UnlinkUnsynchronized(node);
        LinkNewestUnsynchronized(node);
    }

    private void LinkNewestUnsynchronized(Node node)
    {
        node.Older = _newest;
        node.Newer = null;
        if (_newest is not null)
        {
            _newest.Newer = node;
        }

        _newest = node;
        _oldest ??= node;
    }

    private void UnlinkUnsynchronized(Node node)
    {
        if (node.Newer is not null)
        {
            node.Newer.Older = node.Older;
        }
        else
        {
            _newest = node.Older;
        }

        if (node.Older is not null)
        {
            node.Older.Newer = node.Newer;
        }
        else
        {
            _oldest = node.Newer;
        }

        node.Newer = node.Older = null;
    }

    private readonly record struct Key(long FileKey, long Position);

    private sealed class Node(Key key, LogBatch batch, long size)
    {
        public Key Key { get; } = key;

        public LogBatch Batch { get; } = batch;

        public long Size { get; } = size;

        public Node? Newer { get; set; }

        public Node? Older { get; set; }
    }
}
