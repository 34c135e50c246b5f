using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using AppendLog.LoadGen.Engines;
using AppendLog.LoadGen.Measurement;
using AppendLog.LoadGen.Workloads;

namespace AppendLog.LoadGen.Reporting;

/// <summary>
/// Turns the runs into one Markdown table per workload (the median round of each engine, then the same
/// figures as ratios against the reference engine) and a JSON document with every round.
/// </summary>
internal sealed class Report(
    MachineInfo machine, LoadGenOptions options, string commandLine, IReadOnlyList<IEngineFactory> engines,
    IReadOnlyList<Workload> workloads, IReadOnlyList<RunResult> runs, IReadOnlyList<FioResult> diskLimits)
{
    private const string NotCounted = "n/a (strace)";

    /// <summary>Send lag worth a note: 1 ms, the order of one durable write + sync on this machine kind.</summary>
    private const long SendLagNotableMicros = 1_000;

    /// <summary>
    /// A single AppendAsync call worth a note: 10 ms, rarer than the harness's own scheduling stalls at
    /// moderate load (the null engine's p99.999 stayed under 5 ms at load average 3-6 in this session).
    /// </summary>
    private const long AppendCallNotableMicros = 10_000;

    /// <summary>
    /// The round reported for an engine: the middle one when rounds are ordered from best to worst, by p99
    /// latency in open loop (the rate is fixed there) and by records/s in closed loop. Incomplete or failed
    /// rounds sort as the worst. With an even count the better of the two middle rounds is taken.
    /// </summary>
    public static RunResult MedianRound(IReadOnlyList<RunResult> rounds, LoopKind loop)
    {
        IOrderedEnumerable<RunResult> ordered = rounds.OrderBy(r => r.IsComplete ? 0 : 1);
        ordered = loop == LoopKind.Open
            ? ordered.ThenBy(r => r.Latency.P99Micros)
            : ordered.ThenByDescending(r => r.RecordsPerSecond);
        return ordered.ElementAt((rounds.Count - 1) / 2);
    }

    private IReadOnlyList<RunResult> Medians(Workload workload) => engines
        .Select(e => runs.Where(r => r.Engine == e.Name && r.Workload == workload.Title).ToList())
        .Where(rounds => rounds.Count > 0)
        .Select(rounds => MedianRound(rounds, workload.Loop))
        .ToList();

    public string ToMarkdown()
    {
        var md = new StringBuilder();
        md.AppendLine("# AppendLog.LoadGen results").AppendLine();
        md.AppendLine($"Machine: {machine.HeaderLine}").AppendLine();
        md.AppendLine($"Command: `{commandLine}`").AppendLine();
        md.AppendLine(diskLimits.Count > 0
            ? DiskLimits.ToMarkdown(diskLimits)
            : "Disk limits: not measured in this invocation (add `--fio`; commands in perf/README.md).").AppendLine();
        md.AppendLine(
            $"Warm-up {options.Warmup.TotalSeconds} s, measured {options.Duration.TotalSeconds} s, " +
            $"{options.Rounds} round(s) per engine, engines alternated round-robin; each row is the engine's " +
            "median round (open loop: by p99; closed loop: by records/s). MB = 10^6 bytes. Latency in open loop " +
            "is durable ack − intended send time (coordinated omission corrected); in closed loop ack − send. " +
            "CPU s = process CPU time in the measured window (all threads, harness included); CPU-µs/ack = CPU s ÷ " +
            "acks in the window; ctx sw/ack = the process's voluntary + involuntary context switches in the window " +
            "(getrusage) ÷ acks; append call = the synchronous part of an append (from calling AppendAsync until it " +
            "returned its task: how long it held its caller), max and p99.99 over the measured sends. Peak RSS is the " +
            "process's peak during the run; (+run) is that peak minus the RSS at the run's start, after a full " +
            "GC: the part of the peak this run added. ThreadPool.SetMinThreads(32, 32) for every engine (PEERS.md).")
            .AppendLine();
        md.AppendLine("| engine | settings |").AppendLine("|---|---|");
        foreach (IEngineFactory engine in engines)
        {
            md.AppendLine($"| {engine.Name} | {engine.Settings} |");
        }
        md.AppendLine();
        AppendSummaries(md);
        foreach (Workload workload in workloads)
        {
            AppendWorkload(md, workload, Medians(workload));
        }
        md.AppendLine(
            "`n/a (strace)`: the engine's syncs happen inside a library that cannot be instrumented in-process; " +
            "count them with the `strace -f -c` recipe in perf/README.md.");
        return md.ToString();
    }

    private void AppendWorkload(StringBuilder md, Workload workload, IReadOnlyList<RunResult> rows)
    {
        bool open = workload.Loop == LoopKind.Open;
        md.AppendLine($"## {workload.Title}").AppendLine();
        md.AppendLine((open ? "| engine | target MB/s | sustained " : "| engine ") +
            "| MB/s | records/s | p50 | p99 | p99.9 | p99.99 | p99.999 | max | CPU s | CPU-µs/ack | ctx sw/ack " +
            "| append call max / p99.99 | peak RSS MiB (+run) | syncs/s | notes |");
        md.AppendLine((open ? "|---|---:|---" : "|---") +
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (RunResult r in rows)
        {
            string prefix = open ? $"| {r.Engine} | {r.TargetMBps:0.##} | {(r.Sustained == true ? "yes" : "**no**")} "
                : $"| {r.Engine} ";
            md.AppendLine(prefix +
                $"| {r.AchievedMBps:N1} | {r.RecordsPerSecond:N0} | {Micros(r.Latency.P50Micros)} " +
                $"| {Micros(r.Latency.P99Micros)} | {Micros(r.Latency.P999Micros)} | {Micros(r.Latency.P9999Micros)} " +
                $"| {Micros(r.Latency.P99999Micros)} | {Micros(r.Latency.MaxMicros)} | {r.CpuSeconds:N2} " +
                $"| {PerAck(r.CpuMicrosPerAck, "N1")} | {PerAck(r.ContextSwitchesPerAck, "N2")} | {AppendCallText(r)} " +
                $"| {Mib(r.PeakRssBytes)} (+{Mib(r.PeakRssBytes - r.RssAtStartBytes)}){(r.PeakRssIsPerRun ? "" : "*")} " +
                $"| {(r.SyncsPerSecond is double s ? s.ToString("N0") : NotCounted)} | {Notes(r)} |");
        }
        md.AppendLine();
        AppendFloorRatios(md, rows, workload.Loop);
        AppendRatios(md, rows);
    }

    /// <summary>The floor, or null when it did not run in this workload.</summary>
    private static RunResult? Floor(IReadOnlyList<RunResult> rows) =>
        rows.FirstOrDefault(r => r.Engine == EngineRegistry.MinimalLoopName);

    /// <summary>
    /// FasterLog at its best in this workload: of its fair drivers that ran, the complete one with the most
    /// records/s (closed loop) or the lowest p99.99 (open loop); null when none ran.
    /// </summary>
    private static RunResult? BestPeer(IReadOnlyList<RunResult> rows, LoopKind loop)
    {
        IEnumerable<RunResult> fair = rows.Where(r => EngineRegistry.FairFasterLogNames.Contains(r.Engine));
        IOrderedEnumerable<RunResult> ordered = fair.OrderBy(r => r.IsComplete && r.Sustained != false ? 0 : 1);
        ordered = loop == LoopKind.Closed
            ? ordered.ThenByDescending(r => r.RecordsPerSecond)
            : ordered.ThenBy(r => r.Latency.P9999Micros);
        return ordered.FirstOrDefault();
    }

    /// <summary>
    /// Issue 14's comparison: every AppendLog engine of the table against the floor (the minimal loop on a
    /// pre-zeroed file) and against FasterLog's best fair driver, side by side, when those engines ran.
    /// </summary>
    private static void AppendFloorRatios(StringBuilder md, IReadOnlyList<RunResult> rows, LoopKind loop)
    {
        RunResult? floor = Floor(rows);
        RunResult? peer = BestPeer(rows, loop);
        List<RunResult> subjects =
            rows.Where(r => r.Engine.StartsWith(EngineRegistry.AppendLogName, StringComparison.Ordinal)).ToList();
        if (subjects.Count == 0 || (floor is null && peer is null))
        {
            return;
        }
        string f = floor?.Engine ?? $"{EngineRegistry.MinimalLoopName} (did not run)";
        string p = peer?.Engine ?? "fasterlog (no fair driver ran)";
        md.AppendLine($"AppendLog ÷ the floor ({f}, pre-zeroed file) and ÷ FasterLog at its best ({p}, of its fair " +
            "drivers that ran); records/s: higher is better; p99.99, CPU-µs/ack, ctx sw/ack: lower is better:")
            .AppendLine();
        md.AppendLine($"| engine | records/s ÷ {f} | records/s ÷ {p} | p99.99 ÷ {f} | p99.99 ÷ {p} " +
            $"| CPU-µs/ack ÷ {f} | CPU-µs/ack ÷ {p} | ctx sw/ack ÷ {f} | ctx sw/ack ÷ {p} |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (RunResult r in subjects)
        {
            md.AppendLine($"| {r.Engine} " +
                $"| {RatioTo(r, floor, x => x.RecordsPerSecond)} | {RatioTo(r, peer, x => x.RecordsPerSecond)} " +
                $"| {RatioTo(r, floor, x => x.Latency.P9999Micros)} | {RatioTo(r, peer, x => x.Latency.P9999Micros)} " +
                $"| {RatioTo(r, floor, x => x.CpuMicrosPerAck)} | {RatioTo(r, peer, x => x.CpuMicrosPerAck)} " +
                $"| {RatioTo(r, floor, x => x.ContextSwitchesPerAck)} " +
                $"| {RatioTo(r, peer, x => x.ContextSwitchesPerAck)} |");
        }
        md.AppendLine();
    }

    private static string RatioTo(RunResult? r, RunResult? reference, Func<RunResult, double?> figure) =>
        r is not null && reference is not null && figure(r) is double value && figure(reference) is double basis
            ? Ratio(value, basis)
            : "n/a";

    /// <summary>
    /// One table per loop kind across the workloads, in the shape of issue 14's tables: closed loop, each engine's
    /// records/s per concurrency, then AppendLog ÷ the floor and ÷ FasterLog at its best; open loop, each
    /// engine's p99 / p99.99 / p99.999 per rate and producer mode. Median rounds, as in the per-workload tables.
    /// </summary>
    private void AppendSummaries(StringBuilder md)
    {
        List<Workload> closed = workloads.Where(w => w.Loop == LoopKind.Closed).ToList();
        List<Workload> open = workloads.Where(w => w.Loop == LoopKind.Open).ToList();
        string engineColumns = string.Join(" | ", engines.Select(e => e.Name));
        string engineAlignments = string.Concat(engines.Select(_ => "---:|"));
        if (closed.Count > 0)
        {
            md.AppendLine("## Summary, closed loop (records/s acknowledged, median round)").AppendLine();
            md.AppendLine($"| appenders | {engineColumns} | {EngineRegistry.AppendLogName} ÷ " +
                $"{EngineRegistry.MinimalLoopName} | {EngineRegistry.AppendLogName} ÷ FasterLog at its best |");
            md.AppendLine($"|---:|{engineAlignments}---:|---:|");
            foreach (Workload w in closed)
            {
                IReadOnlyList<RunResult> rows = Medians(w);
                RunResult? subject = rows.FirstOrDefault(r => r.Engine == EngineRegistry.AppendLogName);
                RunResult? peer = BestPeer(rows, w.Loop);
                string cells = string.Join(" | ", engines.Select(e =>
                    rows.FirstOrDefault(r => r.Engine == e.Name) is RunResult r ? $"{r.RecordsPerSecond:N0}" : "-"));
                md.AppendLine($"| {w.Concurrency} | {cells} " +
                    $"| {RatioTo(subject, Floor(rows), x => x.RecordsPerSecond)} " +
                    $"| {RatioTo(subject, peer, x => x.RecordsPerSecond)}{(peer is null ? "" : $" ({peer.Engine})")} |");
            }
            md.AppendLine();
        }
        if (open.Count > 0)
        {
            md.AppendLine("## Summary, open loop (p99 / p99.99 / p99.999 from the intended send time, median round)")
                .AppendLine();
            md.AppendLine($"| MB/s | producers | {engineColumns} |");
            md.AppendLine($"|---:|---|{engineAlignments}");
            foreach (Workload w in open)
            {
                IReadOnlyList<RunResult> rows = Medians(w);
                string cells = string.Join(" | ", engines.Select(e =>
                    rows.FirstOrDefault(r => r.Engine == e.Name) is RunResult r
                        ? $"{Micros(r.Latency.P99Micros)} / {Micros(r.Latency.P9999Micros)} / " +
                          $"{Micros(r.Latency.P99999Micros)}" +
                          (r.IsComplete && r.Sustained != false ? "" : " (**not sustained**)")
                        : "-"));
                md.AppendLine($"| {w.RateMBps:0.##} | {w.Mode.ToString().ToLowerInvariant()} | {cells} |");
            }
            md.AppendLine();
        }
    }

    private static string PerAck(double? value, string format) => value is double v ? v.ToString(format) : "n/a";

    private static string AppendCallText(RunResult r) => r.AppendCall is { Count: > 0 } call
        ? $"{Micros(call.MaxMicros)} / {Micros(call.P9999Micros)}"
        : "n/a";

    private void AppendRatios(StringBuilder md, IReadOnlyList<RunResult> rows)
    {
        RunResult? reference = rows.FirstOrDefault(r => r.Engine == options.Reference);
        if (reference is null)
        {
            md.AppendLine($"(no ratios: reference engine '{options.Reference}' did not run)").AppendLine();
            return;
        }
        md.AppendLine($"Ratios, engine ÷ {reference.Engine} (throughput: higher is better; the rest: lower is better):")
            .AppendLine();
        md.AppendLine("| engine | MB/s | p50 | p99 | p99.9 | p99.99 | p99.999 | max | CPU s | RSS |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (RunResult r in rows)
        {
            LatencySummary l = r.Latency;
            LatencySummary b = reference.Latency;
            md.AppendLine(
                $"| {r.Engine} | {Ratio(r.AchievedMBps, reference.AchievedMBps)} | {Ratio(l.P50Micros, b.P50Micros)} " +
                $"| {Ratio(l.P99Micros, b.P99Micros)} | {Ratio(l.P999Micros, b.P999Micros)} " +
                $"| {Ratio(l.P9999Micros, b.P9999Micros)} | {Ratio(l.P99999Micros, b.P99999Micros)} " +
                $"| {Ratio(l.MaxMicros, b.MaxMicros)} | {Ratio(r.CpuSeconds, reference.CpuSeconds)} " +
                $"| {Ratio(r.PeakRssBytes, reference.PeakRssBytes)} |");
        }
        md.AppendLine();
    }

    private static string Notes(RunResult r)
    {
        var notes = new List<string>();
        if (!r.IsComplete)
        {
            notes.Add($"**incomplete**: {r.NotSent:N0} not sent, {r.NotAcked:N0} not acked, {r.Failed:N0} failed");
        }
        if (r.Error is not null)
        {
            notes.Add(r.Error.Replace('|', '/'));
        }
        if (r.SendLag is { P99Micros: >= SendLagNotableMicros } lag)
        {
            notes.Add($"sends late by p99 {Micros(lag.P99Micros)}, max {Micros(lag.MaxMicros)}");
        }
        if (r.AppendCall is { MaxMicros: >= AppendCallNotableMicros } call)
        {
            notes.Add($"an AppendAsync call held its producer up to {Micros(call.MaxMicros)} " +
                $"(p99 {Micros(call.P99Micros)})");
        }
        if (r.RecordsAcked > 0 && r.ContextSwitchesByThread.Count > 0)
        {
            IEnumerable<string> top = r.ContextSwitchesByThread.OrderByDescending(kv => kv.Value).Take(3)
                .Select(kv => $"{kv.Key} {kv.Value / (double)r.RecordsAcked:N1}");
            notes.Add("ctx sw/ack by thread: " + string.Join(", ", top));
        }
        if (r.LatencyClamped > 0)
        {
            notes.Add($"{r.LatencyClamped:N0} latencies > 60 s recorded as 60 s");
        }
        if (!r.PeakRssIsPerRun)
        {
            notes.Add("*RSS peak is process-wide");
        }
        if (r.WakeUpsPerSecond is double wakeUps)
        {
            notes.Add($"shared sync loop wake-ups/s {wakeUps:N0} (for {(r.SyncsPerSecond ?? 0):N0} syncs/s)" +
                (r.Counters.TryGetValue("fileSystemSyncs", out long fs) && r.Counters.TryGetValue("sharedSyncRounds", out long rounds) && rounds > 0
                    ? $", {fs * 100.0 / rounds:N0}% of rounds one syncfs"
                    : ""));
        }
        if (r.Counters.TryGetValue("watchdogKicks", out long kicks) && kicks > 0)
        {
            notes.Add($"watchdog kicks {kicks:N0}");
        }
        return string.Join("; ", notes);
    }

    private static string Mib(long bytes) => $"{bytes / (double)(1 << 20):N0}";

    private static string Micros(long micros) => micros switch
    {
        < 1_000 => $"{micros} µs",
        < 1_000_000 => $"{micros / 1e3:0.##} ms",
        _ => $"{micros / 1e6:0.##} s",
    };

    private static string Ratio(double value, double reference) =>
        reference > 0 ? $"{value / reference:0.##}×" : "n/a";

    public string ToJson()
    {
        var document = new
        {
            machine,
            commandLine,
            diskLimits,
            options = new
            {
                options.Engines, options.Producers, options.Logs, options.RecordSizeBytes,
                Loop = options.Loop.ToString(), options.RatesMBps, options.Concurrencies,
                ProducerModes = options.ProducerModes.Select(m => m.ToString()), options.MinimalLoopFileMib,
                WarmupSeconds = options.Warmup.TotalSeconds, DurationSeconds = options.Duration.TotalSeconds,
                options.Rounds, options.Directory, options.Reference, options.InflightPerProducerMax,
                DrainTimeoutSeconds = options.DrainTimeout.TotalSeconds, options.Seed,
            },
            engines = engines.Select(e => new { e.Name, e.Settings, e.IsDurable }),
            workloads = workloads.Select(w => new
            {
                w.Title,
                medians = Medians(w).Select(m => new { m.Engine, m.Round }),
            }),
            runs,
        };
        return JsonSerializer.Serialize(document, s_json);
    }

    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // A results file, never embedded in HTML: keep '+', '≤', 'µ' readable.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
