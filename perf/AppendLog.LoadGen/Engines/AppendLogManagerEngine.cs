namespace AppendLog.LoadGen.Engines;

/// <summary>
/// AppendLog's logs opened through one <see cref="LogManager"/> per run (all <c>--logs</c> of a run share it, as a
/// broker's partitions do), with <see cref="LogManagerOptions.ShareFileSystemSync"/> on or off. Issue 14's many-logs
/// target is stated for logs of one manager; the plain <c>appendlog</c> engine opens each log on its own. With
/// <c>ringIoLoop</c> the manager's logs hand their writes and syncs to io_uring loops (one per core) instead of the I/O workers
/// (the comparison issue 14 asks for); the engine refuses to run when the loop could not start, so a row is never
/// mislabelled.
/// </summary>
internal sealed class AppendLogManagerFactory(string name, bool shareFileSystemSync, bool ringIoLoop = false) : IEngineFactory
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, SharedManager> _managers = new(StringComparer.Ordinal);

    public string Name => name;

    public string Settings =>
        "SegmentedLog defaults, every log of a run opened by one LogManager" +
        (shareFileSystemSync ? " with ShareFileSystemSync (one syncfs serves every log waiting when 3 or more wait)" : "") +
        (ringIoLoop ? ", writes and single-segment syncs through io_uring loops, one per core (RingIoLoop)" : "") +
        "; ack after fdatasync" + (shareFileSystemSync ? " or syncfs" : "");

    public bool IsDurable => true;

    public IEngine Open(string directory, EngineContext context)
    {
        string root = Path.GetDirectoryName(Path.GetFullPath(directory))!;
        SharedManager shared;
        bool first;
        lock (_lock)
        {
            first = !_managers.TryGetValue(root, out shared!);
            if (first)
            {
                var manager = LogManager.Create(new LogManagerOptions { RootDirectory = root, ShareFileSystemSync = shareFileSystemSync, RingIoLoop = ringIoLoop });
                if (ringIoLoop && !manager.UsesRingIoLoop)
                {
                    manager.DisposeAsync().AsTask().GetAwaiter().GetResult();
                    throw new InvalidOperationException($"{name}: the io_uring loop did not start: {manager.IoEngine}");
                }

                shared = new SharedManager(manager);
                _managers[root] = shared;
            }

            shared.Users++;
        }

        var log = shared.Manager.GetOrOpenAsync(Path.GetFileName(directory)).AsTask().GetAwaiter().GetResult();
        return new AppendLogManagerEngine(log, shared, reportsManager: first, release: () => Release(root));
    }

    private async ValueTask Release(string root)
    {
        SharedManager? last = null;
        lock (_lock)
        {
            var shared = _managers[root];
            if (--shared.Users == 0)
            {
                _managers.Remove(root);
                last = shared;
            }
        }

        if (last is not null)
        {
            await last.Manager.DisposeAsync().ConfigureAwait(false);
        }
    }

    internal sealed class SharedManager(LogManager manager)
    {
        public LogManager Manager { get; } = manager;

        public int Users { get; set; }
    }
}

/// <summary>One log of a shared <see cref="LogManager"/>.</summary>
internal sealed class AppendLogManagerEngine(SegmentedLog log, AppendLogManagerFactory.SharedManager shared, bool reportsManager, Func<ValueTask> release) : IEngine
{
    private readonly AppendLogEngine _inner = new(log);

    public long? SyncCalls => log.SyncCount;

    /// <summary>
    /// The manager's shared-sync rounds (wake-ups of its sync threads) plus its I/O loop's io_uring_enter calls (each
    /// at most one wake-up of the loop), reported by the run's first log only.
    /// </summary>
    public long? WakeUps => reportsManager ? shared.Manager.SharedSyncCounts.Rounds + shared.Manager.RingCounts.Enters : 0;

    public IReadOnlyDictionary<string, long> Counters
    {
        get
        {
            var counters = new Dictionary<string, long>(_inner.Counters);
            if (reportsManager)
            {
                var (rounds, fileSystemSyncs, syncs) = shared.Manager.SharedSyncCounts;
                counters["sharedSyncRounds"] = rounds;
                counters["fileSystemSyncs"] = fileSystemSyncs;
                counters["sharedSyncsServed"] = syncs;
                var (enters, writes, dataSyncs, signals) = shared.Manager.RingCounts;
                counters["ringEnters"] = enters;
                counters["ringWrites"] = writes;
                counters["ringDataSyncs"] = dataSyncs;
                counters["ringSignals"] = signals;
            }

            return counters;
        }
    }

    public ValueTask AppendAsync(ReadOnlyMemory<byte> payload) => _inner.AppendAsync(payload);

    public async ValueTask DisposeAsync()
    {
        await shared.Manager.CloseLogAsync(Path.GetFileName(log.Directory)).ConfigureAwait(false);
        await release().ConfigureAwait(false);
    }
}
