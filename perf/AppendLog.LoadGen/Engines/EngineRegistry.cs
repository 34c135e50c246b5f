namespace AppendLog.LoadGen.Engines;

/// <summary>
/// Every engine the load generator knows, by command-line name. To add one (the AppendLog engine, once
/// <c>SegmentedLog</c> lands), write its <see cref="IEngineFactory"/> and add one line to <see cref="All"/>.
/// </summary>
internal static class EngineRegistry
{
    public static IReadOnlyList<IEngineFactory> All { get; } =
    [
        new AppendLogFactory("appendlog", FlushPolicy.GroupCommit),
        new AppendLogFactory("appendlog-debounce1ms", FlushPolicy.Debounced(TimeSpan.FromMilliseconds(1), 1024 * 1024)),
        new AppendLogFactory("appendlog-fallocate", FlushPolicy.GroupCommit, zeroFill: false),
        new AppendLogFactory("appendlog-1sync", FlushPolicy.GroupCommit, syncsInFlight: 1),
        new AppendLogFactory("appendlog-3sync", FlushPolicy.GroupCommit, syncsInFlight: 3),
        new AppendLogFactory("appendlog-queuedcont", FlushPolicy.GroupCommit, inlineContinuations: false),
        new FileStreamGroupCommitFactory(),
        // "fasterlog" is PEERS.md's fair configuration; the others vary one setting each.
        new FasterLogFactory("fasterlog", FasterCommitDriver.CommitterThread, preallocateFile: false),
        new FasterLogFactory("fasterlog-prealloc", FasterCommitDriver.CommitterThread, preallocateFile: true),
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
