using System.Globalization;
using System.Text;
using AppendLog.LoadGen.Measurement;

namespace AppendLog.RaftBench;

/// <summary>The markdown tables: each engine's median round per client count, memory, fail-over, and the ratios.</summary>
internal static class Report
{
    private const string Reference = "dotnext";
    private const string Subject = "appendlog";

    public static string Markdown(
        MachineInfo machine, string command, string[] engines, int[] clientCounts, List<RoundRecord> runs, string loadStart, string loadEnd,
        int electionMin, int electionMax, double warmup, double seconds, int failoverClients)
    {
        var md = new StringBuilder();
        var ic = CultureInfo.InvariantCulture;
        md.AppendLine("# AppendLog.RaftBench results").AppendLine();
        md.Append("Machine: ").Append(machine.HeaderLine.Replace(machine.DataDirectory, "DIR", StringComparison.Ordinal)).Append("; loadavg at end ").AppendLine(loadEnd).AppendLine();
        md.AppendLine(ic, $"Command: `{command}`").AppendLine();
        md.AppendLine(ic, $"Three member processes per engine on 127.0.0.1, fresh directories per round, election timeout {electionMin}-{electionMax} ms for both. " +
            $"The load runs inside the leader: C closed-loop clients each replicate a {ClosedLoop.PayloadBytes} B entry and await its commit. " +
            $"Warm-up {warmup} s, measured {seconds} s per step; latency = commit − call (HdrHistogram, µs resolution); commits/s = commits completed in the window ÷ window. " +
            $"Each row is the engine's median round by commits/s; engines alternate round-robin with a rotating first engine. " +
            $"RSS = VmRSS of each member at the end of the step (leader first); peak = VmHWM after the last step. " +
            $"Fail-over: with {failoverClients} clients on whichever member leads, the leader is SIGKILLed; fail-over = the new leader's first commit − the kill (one CLOCK_MONOTONIC for all processes); " +
            $"election = the new leader's own leadership notice − the kill. The killed member is restarted between kills.").AppendLine();
        md.AppendLine("| engine | settings |").AppendLine("|---|---|");
        foreach (var engine in engines)
        {
            md.AppendLine(ic, $"| {engine} | {BenchNodes.Describe(engine, electionMin, electionMax)} |");
        }

        md.AppendLine();
        foreach (var failure in runs.SelectMany(r => r.Notes.Select(n => $"{r.Engine} round {r.Round}: {n}")))
        {
            md.AppendLine(ic, $"- note: {failure}");
        }

        md.AppendLine();
        var ratios = new List<string>();
        foreach (var clients in clientCounts)
        {
            md.AppendLine(ic, $"## {clients} client(s)").AppendLine();
            md.AppendLine("| engine | commits/s | p50 ms | p90 ms | p99 ms | p99.9 ms | p99.99 ms | max ms | errors | leader CPU s | RSS MiB (leader, followers) | commits/s of every round |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
            var medians = new Dictionary<string, StepRecord>();
            foreach (var engine in engines)
            {
                var all = runs.Where(r => r.Engine == engine).SelectMany(r => r.Steps.Where(s => s.Clients == clients)).ToList();
                if (all.Count == 0)
                {
                    md.AppendLine(ic, $"| {engine} | failed | | | | | | | | | | |");
                    continue;
                }

                var median = all.OrderBy(s => s.Result.CommitsPerSecond).ElementAt((all.Count - 1) / 2);
                medians[engine] = median;
                var r = median.Result;
                var rss = LeaderFirst(median.RssMiB, median.LeaderNode);
                md.AppendLine(ic, $"| {engine} | {r.CommitsPerSecond:N0} | {r.P50Ms:F3} | {r.P90Ms:F3} | {r.P99Ms:F3} | {r.P999Ms:F3} | {r.P9999Ms:F3} | {r.MaxMs:F3} | {r.Errors} | {r.CpuSeconds:F1} | {rss} | {string.Join(", ", all.Select(s => s.Result.CommitsPerSecond.ToString("N0", ic)))} |");
            }

            md.AppendLine();
            if (medians.TryGetValue(Subject, out var a) && medians.TryGetValue(Reference, out var d))
            {
                var line = $"{clients} client(s): commits/s {a.Result.CommitsPerSecond / d.Result.CommitsPerSecond:F2}×, p50 {a.Result.P50Ms / d.Result.P50Ms:F2}×, p99 {a.Result.P99Ms / d.Result.P99Ms:F2}×, p99.99 {a.Result.P9999Ms / d.Result.P9999Ms:F2}× (lower is better)";
                ratios.Add(line);
                md.AppendLine(ic, $"Ratio appendlog ÷ dotnext: {line}").AppendLine();
            }
        }

        md.AppendLine("## Memory per member").AppendLine();
        md.AppendLine("| engine | round | entries committed | RSS MiB after each step (leader, followers) | peak VmHWM MiB per member |");
        md.AppendLine("|---|---:|---:|---|---|");
        foreach (var run in runs.OrderBy(r => r.Engine, StringComparer.Ordinal).ThenBy(r => r.Round))
        {
            if (run.Steps.Count == 0)
            {
                continue;
            }

            var entries = run.Steps.Sum(s => s.Result.Commits);
            md.AppendLine(ic, $"| {run.Engine} | {run.Round} | {entries:N0} in the windows (+ warm-ups) | {string.Join("; ", run.Steps.Select(s => $"{s.Clients}c: {LeaderFirst(s.RssMiB, s.LeaderNode)}"))} | {string.Join(", ", run.PeakHwmMiB.Select(h => h.ToString("F0", ic)))} |");
        }

        md.AppendLine().AppendLine("## Fail-over (SIGKILL of the leader under load)").AppendLine();
        md.AppendLine("| engine | kills | fail-over median ms | fail-over max ms | fail-over min ms | election median ms | every fail-over ms |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---|");
        var failoverMedian = new Dictionary<string, double>();
        foreach (var engine in engines)
        {
            var all = runs.Where(r => r.Engine == engine).SelectMany(r => r.Failovers).ToList();
            if (all.Count == 0)
            {
                md.AppendLine(ic, $"| {engine} | 0 | | | | | |");
                continue;
            }

            var f = Median(all.Select(x => x.FailoverMs));
            failoverMedian[engine] = f;
            md.AppendLine(ic, $"| {engine} | {all.Count} | {f:F0} | {all.Max(x => x.FailoverMs):F0} | {all.Min(x => x.FailoverMs):F0} | {Median(all.Select(x => x.ElectionMs)):F0} | {string.Join(", ", all.Select(x => x.FailoverMs.ToString("F0", ic)))} |");
        }

        md.AppendLine();
        if (failoverMedian.TryGetValue(Subject, out var fa) && failoverMedian.TryGetValue(Reference, out var fd))
        {
            ratios.Add($"fail-over median {fa / fd:F2}× (lower is better)");
        }

        if (ratios.Count > 0)
        {
            md.AppendLine("## Ratios, appendlog ÷ dotnext").AppendLine();
            foreach (var ratio in ratios)
            {
                md.AppendLine(ic, $"- {ratio}");
            }

            md.AppendLine();
        }

        md.AppendLine(ic, $"Load average at start: {loadStart}; at end: {loadEnd}.");
        return md.ToString();
    }

    private static string LeaderFirst(double[] rss, int leaderNode)
    {
        var ic = CultureInfo.InvariantCulture;
        var leader = rss[leaderNode - 1];
        var followers = rss.Where((_, i) => i != leaderNode - 1);
        return $"{leader.ToString("F0", ic)}, {string.Join(", ", followers.Select(f => f.ToString("F0", ic)))}";
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
