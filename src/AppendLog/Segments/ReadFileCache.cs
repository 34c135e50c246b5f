using AppendLog.Diagnostics;
using AppendLog.Io;

namespace AppendLog.Segments;

/// <summary>
/// The read handles of segment files, kept open between reads and shared by readers, with a cap on how many are open:
/// when a new one is needed beyond the cap, the least recently used handle no reader holds is closed (cold segments
/// are reopened on demand). One instance per <see cref="LogManager"/> (shared by its logs) or per standalone log.
/// A reader leases a handle for as long as it reads one segment; a handle whose segment left the log (retention,
/// truncation, compaction) is closed when its last lease ends. A manager's cache also counts against its
/// <see cref="DescriptorBudget"/>: before opening, it makes room there (which may close idle write handles of other
/// logs), and the budget closes this cache's coldest idle handle first (<see cref="CloseColdestIdle"/>). Thread-safe.
/// </summary>
internal sealed class ReadFileCache
{
    /// <summary>The cap of a standalone log's cache.</summary>
    public const int DefaultMaximumOpenFiles = 64;

    private readonly Lock _lock = new();
    private readonly Dictionary<Segment, Entry> _entries = new(ReferenceEqualityComparer.Instance);
    private readonly LinkedList<Entry> _idle = new();
    private readonly int _maximumOpen;
    private readonly DescriptorBudget? _budget;

    public ReadFileCache(int maximumOpen, DescriptorBudget? budget = null)
    {
        Invariant.Assert(maximumOpen >= 1, "at least one read handle may be open");
        _maximumOpen = maximumOpen;
        _budget = budget;
    }

    /// <summary>Handles open now (leased or idle).</summary>
    public int OpenCount
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>The most handles kept open when no reader holds them.</summary>
    public int MaximumOpen => _maximumOpen;

    /// <summary>
    /// Leases a read handle of <paramref name="segment"/>, opening it when needed. While every open handle is leased, a
    /// new lease still opens its file (readers never wait for each other); the cap is restored as leases end.
    /// </summary>
    /// <exception cref="IOException">The file cannot be opened.</exception>
    public Lease Acquire(IStorage storage, Segment segment, DirectIoMode mode)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(segment, out var existing) && !existing.Forgotten)
            {
                if (existing.Leases++ == 0)
                {
                    _idle.Remove(existing.IdleNode);
                }

                return new Lease(this, existing);
            }
        }

        // Open outside the lock (a syscall, and storage may be slow); a racing open of the same file is closed again.
        _budget?.MakeRoom(requester: null);
        var file = storage.Open(segment.Path, FileCreation.OpenExisting, mode);
        IDirectFile? duplicate = null;
        Lease lease;
        lock (_lock)
        {
            if (_entries.TryGetValue(segment, out var raced) && !raced.Forgotten)
            {
                duplicate = file;
                if (raced.Leases++ == 0)
                {
                    _idle.Remove(raced.IdleNode);
                }

                lease = new Lease(this, raced);
            }
            else
            {
                var entry = new Entry(segment, file) { Leases = 1 };
                entry.IdleNode = new LinkedListNode<Entry>(entry);
                _entries[segment] = entry;
                lease = new Lease(this, entry);
            }
        }

        duplicate?.Dispose();
        CloseOverCap();
        return lease;
    }

    /// <summary>
    /// The segment left the log: its handle is closed now when idle, or when its last lease ends (a reader in the middle
    /// of it keeps reading the file it opened, as a deleted file stays readable through an open handle).
    /// </summary>
    public void Forget(Segment segment)
    {
        IDirectFile? close = null;
        lock (_lock)
        {
            if (_entries.TryGetValue(segment, out var entry))
            {
                entry.Forgotten = true;
                _entries.Remove(segment);
                if (entry.Leases == 0)
                {
                    _idle.Remove(entry.IdleNode);
                    close = entry.File;
                }
            }
        }

        close?.Dispose();
    }

    /// <summary>Closes every idle handle of the given segments (a log closing).</summary>
    public void ForgetAll(IEnumerable<Segment> segments)
    {
        foreach (var s in segments)
        {
            Forget(s);
        }
    }

    private void Release(Entry entry)
    {
        IDirectFile? close = null;
        lock (_lock)
        {
            Invariant.Assert(entry.Leases > 0, "a lease is released once");
            if (--entry.Leases == 0)
            {
                if (entry.Forgotten)
                {
                    close = entry.File;
                }
                else
                {
                    _idle.AddLast(entry.IdleNode);
                }
            }
        }

        close?.Dispose();
        CloseOverCap();
    }

    /// <summary>Closes the least recently used handle no reader holds (for the manager's budget). False when none is idle.</summary>
    public bool CloseColdestIdle()
    {
        IDirectFile close;
        lock (_lock)
        {
            if (_idle.First is not { } coldest)
            {
                return false;
            }

            _idle.RemoveFirst();
            _entries.Remove(coldest.Value.Segment);
            coldest.Value.Forgotten = true;
            close = coldest.Value.File;
        }

        close.Dispose();
        return true;
    }

    private void CloseOverCap()
    {
        while (true)
        {
            IDirectFile close;
            lock (_lock)
            {
                if (_entries.Count <= _maximumOpen || _idle.First is not { } coldest)
                {
                    return;
                }

                _idle.RemoveFirst();
                _entries.Remove(coldest.Value.Segment);
                coldest.Value.Forgotten = true;
                close = coldest.Value.File;
            }

            close.Dispose();
        }
    }

    /// <summary>A reader's hold on one open handle; dispose once to release it.</summary>
    internal sealed class Lease : IDisposable
    {
        private ReadFileCache? _owner;
        private readonly Entry _entry;

        public Lease(ReadFileCache owner, Entry entry)
        {
            _owner = owner;
            _entry = entry;
        }

        public IDirectFile File => _entry.File;

        public void Dispose() => Interlocked.Exchange(ref _owner, null)?.Release(_entry);
    }

    internal sealed class Entry(Segment segment, IDirectFile file)
    {
        public Segment Segment { get; } = segment;

        public IDirectFile File { get; } = file;

        public int Leases { get; set; }

        public bool Forgotten { get; set; }

        public LinkedListNode<Entry> IdleNode { get; set; } = null!;
    }
}
