namespace AppendLog.LoadGen.Engines;

/// <summary>
/// Every engine the load generator knows, by command-line name. To add one (the AppendLog engine, once
/// <c>SegmentedLog</c> lands), write its <see cref="IEngineFactory"/> and add one line to <see cref="All"/>.
/// </summary>
internal static class EngineRegistry
{
    /// <summary>The engine the report compares AppendLog against: the subject of the comparison.</summary>
    public const string AppendLogName = "appendlog";

    /// <summary>The floor: the minimal group-commit loop on a pre-zeroed file.</summary>
    public const string MinimalLoopName = "minimal-loop";

    /// <summary>FasterLog with an Enqueue + commit-tracker thread (<c>Commit(spinWait: true)</c>).</summary>
    public const string FasterLogName = "fasterlog";

    /// <summary>FasterLog with an Enqueue + async commit tracker (<c>await CommitAsync()</c>).</summary>
    public const string FasterLogCommitAsyncName = "fasterlog-commitasync";

    /// <summary>
    /// FasterLog's fair drivers (PEERS.md: as its samples drive it for throughput). Where more than one ran, the
    /// report compares AppendLog with the best of them in each workload, and names it: the peer at its best.
    /// </summary>
    public static IReadOnlyList<string> FairFasterLogNames { get; } = [FasterLogName, FasterLogCommitAsyncName];

    public static IReadOnlyList<IEngineFactory> All { get; } =
    [
        new AppendLogFactory(AppendLogName, FlushPolicy.GroupCommit),
        new AppendLogFactory("appendlog-debounce1ms", FlushPolicy.Debounced(TimeSpan.FromMilliseconds(1), 1024 * 1024)),
        new AppendLogFactory("appendlog-fallocate", FlushPolicy.GroupCommit, zeroFill: false),
        new AppendLogFactory("appendlog-1sync", FlushPolicy.GroupCommit, syncsInFlight: 1),
        new AppendLogFactory("appendlog-3sync", FlushPolicy.GroupCommit, syncsInFlight: 3),
        new AppendLogFactory("appendlog-queuedcont", FlushPolicy.GroupCommit, inlineContinuations: false),
        // Many logs in one LogManager (issue 14's 1,000-log target), with and without the shared file-system sync.
        new AppendLogManagerFactory("appendlog-manager", shareFileSystemSync: false),
        new AppendLogManagerFactory("appendlog-shared", shareFileSystemSync: true),
        new AppendLogManagerFactory("appendlog-ring", shareFileSystemSync: false, ringIoLoop: true),
        new AppendLogManagerFactory("appendlog-ring-shared", shareFileSystemSync: true, ringIoLoop: true),
        // The floor of issue 14: every table prints AppendLog ÷ "minimal-loop" (pre-zeroed file).
        new MinimalLoopFactory(MinimalLoopName, FilePreparation.PreZeroed),
        new MinimalLoopFactory("minimal-loop-fallocated", FilePreparation.Fallocated),
        // Issue 14's io_uring evaluation: the same floor with a write linked to its fdatasync in one submission.
        new MinimalUringFactory("minimal-uring", UringRound.None, registerBuffer: true),
        new MinimalUringFactory("minimal-uring-overlap", UringRound.TwoSyncs, registerBuffer: true),
        new MinimalUringFactory("minimal-uring-unregistered", UringRound.None, registerBuffer: false),
        new MinimalUringFactory("minimal-uring-dsync", UringRound.DsyncWrite, registerBuffer: true),
        new MinimalUringFactory("minimal-uring-worker", UringRound.WorkerPair, registerBuffer: true),
        new FileStreamGroupCommitFactory(),
        // "fasterlog" is PEERS.md's fair configuration (Enqueue + one commit tracker, as FASTER's samples drive it
        // for throughput); the others vary one setting each. The "-await" and "-autocommit" ones await one
        // commit per record: labelled variants, not the peer at its best.
        new FasterLogFactory(FasterLogName, FasterCommitDriver.TrackerSpin, preallocateFile: false),
        new FasterLogFactory(FasterLogCommitAsyncName, FasterCommitDriver.TrackerAsync, preallocateFile: false),
        new FasterLogFactory("fasterlog-prealloc", FasterCommitDriver.TrackerSpin, preallocateFile: true),
        new FasterLogFactory("fasterlog-await", FasterCommitDriver.CommitterThread, preallocateFile: false),
        new FasterLogFactory("fasterlog-autocommit", FasterCommitDriver.AutoCommit, preallocateFile: false),
        new FasterLogFactory("fasterlog-autocommit-prealloc", FasterCommitDriver.AutoCommit, preallocateFile: true),
        new NullEngineFactory(),
    ];

    /// <summary>
    /// Resolves a comma-separated list of names, in the order given; <c>all</c> stands for every durable engine.
    /// </summary>
    public static IReadOnlyList<IEngineFactory> Resolve(string names)
    {
        var resolved = new List<IEngineFactory>();
        foreach (string name in names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (name.Equals("all", StringComparison.OrdinalIgnoreCase))
            {
                resolved.AddRange(All.Where(f => f.IsDurable));
                continue;
            }
            IEngineFactory factory = All.FirstOrDefault(f => f.Name.Equals(name, StringComparison.OrdinalIgnoreCase))
                ?? throw new ArgumentException(
                    $"unknown engine '{name}'; known: {string.Join(", ", All.Select(f => f.Name))}, all");
            resolved.Add(factory);
        }
        return resolved.DistinctBy(f => f.Name).ToList();
    }
}
