using AppendLog.LoadGen.Measurement;

namespace AppendLog.LoadGen.Workloads;

/// <summary>Everything measured in one run of one engine on one workload (one round).</summary>
internal sealed record RunResult
{
    public required string Engine { get; init; }
    public required string Workload { get; init; }
    public required int Round { get; init; }
    public double? TargetMBps { get; init; }
    public int? Concurrency { get; init; }
    public double MeasuredSeconds { get; init; }
    public long RecordsAcked { get; init; }
    public double AchievedMBps { get; init; }
    public double RecordsPerSecond { get; init; }

    /// <summary>Open loop: achieved ≥ 95 % of the target rate.</summary>
    public bool? Sustained { get; init; }

    public LatencySummary Latency { get; init; } = new(0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>
    /// Open loop: how late producers sent (actual − intended send time). Already included in
    /// <see cref="Latency"/>; large values mean the harness or the CPU, not only the engine, made the wait.
    /// </summary>
    public LatencySummary? SendLag { get; init; }

    /// <summary>
    /// The synchronous part of each measured append: from calling <c>AppendAsync</c> until it returned its
    /// <c>ValueTask</c>, i.e. how long the call held its caller's thread (both loops).
    /// </summary>
    public LatencySummary? AppendCall { get; init; }

    /// <summary>Process CPU time (all threads, harness included) in the measured window.</summary>
    public double CpuSeconds { get; init; }

    /// <summary>Voluntary + involuntary context switches of the whole process in the window (getrusage).</summary>
    public long? ContextSwitches { get; init; }

    /// <summary>
    /// Context switches in the window by kind of live thread (name without its number; /proc/self/task), to see
    /// who switches: idle thread-pool workers spinning in sched_yield on a busy machine count here too.
    /// </summary>
    public IReadOnlyDictionary<string, long> ContextSwitchesByThread { get; init; } = new Dictionary<string, long>();

    /// <summary>CPU-µs per acknowledged append: <see cref="CpuSeconds"/> ÷ acks in the window.</summary>
    public double? CpuMicrosPerAck => RecordsAcked > 0 ? CpuSeconds * 1e6 / RecordsAcked : null;

    /// <summary>Context switches per acknowledged append.</summary>
    public double? ContextSwitchesPerAck => RecordsAcked > 0 ? ContextSwitches / (double)RecordsAcked : null;
    public long PeakRssBytes { get; init; }

    /// <summary>Resident memory when the run started (after a full GC): what earlier runs left in the process.</summary>
    public long RssAtStartBytes { get; init; }

    /// <summary>False when the peak could not be reset before the run and covers the process so far.</summary>
    public bool PeakRssIsPerRun { get; init; }

    /// <summary>fsync/fdatasync calls in the window, or null for engines that cannot be counted in-process.</summary>
    public long? SyncCalls { get; init; }
    public double? SyncsPerSecond { get; init; }

    /// <summary>Wake-ups per second of a sync loop shared by the run's logs (<see cref="Engines.IEngine.WakeUps"/>), when counted.</summary>
    public double? WakeUpsPerSecond { get; init; }
    public long NotSent { get; init; }
    public long NotAcked { get; init; }
    public long LatencyClamped { get; init; }
    public long Failed { get; init; }
    public string? Error { get; init; }
    public IReadOnlyDictionary<string, long> Counters { get; init; } = new Dictionary<string, long>();

    public bool IsComplete => NotSent == 0 && NotAcked == 0 && Failed == 0 && Error is null;

    /// <summary>The fraction of the target rate an open-loop run must reach to count as sustained.</summary>
    public const double SustainedFraction = 0.95;
}
