using System.Globalization;
using System.Text;
using AppendLog.LoadGen.Measurement;

namespace AppendLog.RaftBench;

/// <summary>The markdown tables: each engine's median round per client count, memory, fail-over, and the ratios.</summary>
internal static class Report
{
    private const string Reference = "dotnext";
    private const string Subject = "appendlog";
    private const string Single = "single";

    public static string Markdown(
        MachineInfo machine, string command, string[] engines, int[] clientCounts, SweepSettings sweep, List<RoundRecord> runs, string loadStart, string loadEnd,
        int electionMin, int electionMax, double warmup, double seconds, int failoverClients)
    {
        var md = new StringBuilder();
        var ic = CultureInfo.InvariantCulture;
        md.AppendLine("# AppendLog.RaftBench results").AppendLine();
        md.Append("Machine: ").Append(machine.HeaderLine.Replace(machine.DataDirectory, "DIR", StringComparison.Ordinal)).Append("; loadavg at end ").AppendLine(loadEnd).AppendLine();
        md.AppendLine(ic, $"Command: `{command}`").AppendLine();
        md.AppendLine(ic, $"Three member processes per engine (one for `single`) on 127.0.0.1, fresh directories per round, election timeout {electionMin}-{electionMax} ms for both. " +
            $"The load runs inside the leader: C closed-loop clients each replicate a {ClosedLoop.PayloadBytes} B entry and await its commit. " +
            $"Warm-up {warmup} s, measured {seconds} s per step; latency = commit − call (HdrHistogram, µs resolution); commits/s = commits completed in the window ÷ window. " +
            $"Each row is the engine's median round by commits/s; engines alternate round-robin with a rotating first engine. " +
            $"RSS = VmRSS of each member at the end of the step (leader first); peak = VmHWM after the last step. " +
            $"Fail-over: with {failoverClients} clients on whichever member leads, the leader is SIGKILLed; fail-over = the new leader's first commit − the kill (one CLOCK_MONOTONIC for all processes); " +
            $"election = the new leader's own leadership notice − the kill. The killed member is restarted between kills. " +
            $"CPU µs/commit = user + system CPU time of every member process in the window (/proc/<pid>/stat, sampled by the driver when the leader marks the window's edges) ÷ commits in the window; " +
            $"the leader's share includes the load generator, which is the same code for every engine. " +
            $"Engine `single` is AppendLog's SegmentedLog alone in one process (no Raft), the denominator of replication efficiency.").AppendLine();
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
            md.AppendLine("| engine | commits/s | p50 ms | p90 ms | p99 ms | p99.9 ms | p99.99 ms | max ms | errors | CPU µs/commit (all members) | CPU s per member (leader first) | RSS MiB (leader, followers) | commits/s of every round |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
            var medians = new Dictionary<string, StepRecord>();
            foreach (var engine in engines)
            {
                var all = runs.Where(r => r.Engine == engine).SelectMany(r => r.Steps.Where(s => s.Clients == clients)).ToList();
                if (all.Count == 0)
                {
                    md.AppendLine(ic, $"| {engine} | failed | | | | | | | | | | | |");
                    continue;
                }

                var median = all.OrderBy(s => s.Result.CommitsPerSecond).ElementAt((all.Count - 1) / 2);
                medians[engine] = median;
                var r = median.Result;
                var rss = LeaderFirst(median.RssMiB, median.LeaderNode);
                md.AppendLine(ic, $"| {engine} | {r.CommitsPerSecond:N0} | {r.P50Ms:F3} | {r.P90Ms:F3} | {r.P99Ms:F3} | {r.P999Ms:F3} | {r.P9999Ms:F3} | {r.MaxMs:F3} | {r.Errors} | {median.CpuMicrosPerCommit:F1} | {(median.CpuSeconds.Length == 0 ? "" : LeaderFirst(median.CpuSeconds, median.LeaderNode, "F2"))} | {rss} | {string.Join(", ", all.Select(s => s.Result.CommitsPerSecond.ToString("N0", ic)))} |");
            }

            md.AppendLine();
            if (medians.TryGetValue(Subject, out var a) && medians.TryGetValue(Reference, out var d))
            {
                var line = $"{clients} client(s): commits/s {a.Result.CommitsPerSecond / d.Result.CommitsPerSecond:F2}×, CPU µs/commit {a.CpuMicrosPerCommit / d.CpuMicrosPerCommit:F2}× (lower is better), p50 {a.Result.P50Ms / d.Result.P50Ms:F2}×, p99 {a.Result.P99Ms / d.Result.P99Ms:F2}×, p99.99 {a.Result.P9999Ms / d.Result.P9999Ms:F2}× (lower is better)";
                ratios.Add(line);
                md.AppendLine(ic, $"Ratio appendlog ÷ dotnext: {line}").AppendLine();
            }

            if (medians.TryGetValue(Subject, out var replicated) && medians.TryGetValue(Single, out var single))
            {
                var line = $"replication efficiency at {clients} client(s): {replicated.Result.CommitsPerSecond / single.Result.CommitsPerSecond:F2} (appendlog ÷ single commits/s)";
                ratios.Add(line);
                md.Append(char.ToUpperInvariant(line[0])).AppendLine(line[1..]).AppendLine();
            }
        }

        OpenLoopSection(md, engines, sweep, runs, ratios);

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
        md.AppendLine(ic, $"ET = one election timeout minimum ({electionMin} ms), the unit of the target (no fail-over above 3 ET).").AppendLine();
        md.AppendLine("| engine | kills | fail-over median ms | fail-over max ms | fail-over min ms | median ET | max ET | kills above 3 ET | election median ms | every fail-over ms |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        var failoverMedian = new Dictionary<string, double>();
        foreach (var engine in engines)
        {
            var all = runs.Where(r => r.Engine == engine).SelectMany(r => r.Failovers).ToList();
            if (all.Count == 0)
            {
                md.AppendLine(ic, $"| {engine} | 0 | | | | | | | | |");
                continue;
            }

            var f = Median(all.Select(x => x.FailoverMs));
            failoverMedian[engine] = f;
            md.AppendLine(ic, $"| {engine} | {all.Count} | {f:F0} | {all.Max(x => x.FailoverMs):F0} | {all.Min(x => x.FailoverMs):F0} | {f / electionMin:F2} | {all.Max(x => x.FailoverMs) / electionMin:F2} | {all.Count(x => x.FailoverMs > 3.0 * electionMin)} | {Median(all.Select(x => x.ElectionMs)):F0} | {string.Join(", ", all.Select(x => x.FailoverMs.ToString("F0", ic)))} |");
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

        TargetsSection(md, clientCounts, runs, electionMin);
        md.AppendLine(ic, $"Load average at start: {loadStart}; at end: {loadEnd}.");
        return md.ToString();
    }

    /// <summary>Issue 16's targets, each with the figures it was judged on, or "not measured" when the run lacks them.</summary>
    private static void TargetsSection(StringBuilder md, int[] clientCounts, List<RoundRecord> runs, int electionMin)
    {
        var ic = CultureInfo.InvariantCulture;
        static string Verdict(bool met) => met ? "**met**" : "**not met**";
        StepRecord? MedianStep(string engine, int clients)
        {
            var all = runs.Where(r => r.Engine == engine).SelectMany(r => r.Steps.Where(s => s.Clients == clients)).OrderBy(s => s.Result.CommitsPerSecond).ToList();
            return all.Count == 0 ? null : all[(all.Count - 1) / 2];
        }

        var lines = new List<string>();
        var openA = runs.Where(r => r.Engine == Subject && r.OpenSteps.Count > 0).ToList();
        var openD = runs.Where(r => r.Engine == Reference && r.OpenSteps.Count > 0).ToList();
        if (openA.Count > 0 && openD.Count > 0)
        {
            var (a, d) = (HighestSustained(openA), HighestSustained(openD));
            lines.Add($"Highest open-loop rate within p99 ≤ 5 ms / p99.99 ≤ 20 ms ≥ 10× DotNext's: appendlog {a:N0}/s, dotnext {d:N0}/s: " +
                (d > 0 ? $"{a / d:F2}×, {Verdict(a >= 10 * d)}" : a > 0 ? "dotnext sustained none of the rates, **met** at this grid (add lower rates for a ratio)" : "neither sustained any rate, **not met**"));
        }
        else
        {
            lines.Add("Highest open-loop rate ≥ 10× DotNext's: not measured (run both engines with --rates)");
        }

        const int Clients = 64;
        if (clientCounts.Contains(Clients) && MedianStep(Subject, Clients) is { } replicated && MedianStep(Single, Clients) is { } single)
        {
            var efficiency = replicated.Result.CommitsPerSecond / single.Result.CommitsPerSecond;
            lines.Add($"Replication efficiency ≥ 0.7 at {Clients} clients: {replicated.Result.CommitsPerSecond:N0} ÷ {single.Result.CommitsPerSecond:N0} = {efficiency:F2}, {Verdict(efficiency >= 0.7)}");
        }
        else
        {
            lines.Add($"Replication efficiency ≥ 0.7 at {Clients} clients: not measured (--engine all with {Clients} in --clients)");
        }

        if (clientCounts.Contains(Clients) && MedianStep(Subject, Clients) is { } cpuA && MedianStep(Reference, Clients) is { } cpuD)
        {
            var ratio = cpuA.CpuMicrosPerCommit / cpuD.CpuMicrosPerCommit;
            lines.Add($"CPU per commit (all members) ≤ ⅓ of DotNext's at {Clients} clients: {cpuA.CpuMicrosPerCommit:F1} against {cpuD.CpuMicrosPerCommit:F1} µs = {ratio:F2}×, {Verdict(ratio <= 1.0 / 3)}");
        }
        else
        {
            lines.Add($"CPU per commit ≤ ⅓ of DotNext's: not measured (both engines with {Clients} in --clients)");
        }

        var failA = runs.Where(r => r.Engine == Subject).SelectMany(r => r.Failovers).ToList();
        var failD = runs.Where(r => r.Engine == Reference).SelectMany(r => r.Failovers).ToList();
        if (failA.Count > 0 && failD.Count > 0)
        {
            var (ma, md2) = (Median(failA.Select(f => f.FailoverMs)), Median(failD.Select(f => f.FailoverMs)));
            lines.Add($"Fail-over median ≤ DotNext's: {ma:F0} against {md2:F0} ms, {Verdict(ma <= md2)}");
            var above = failA.Count(f => f.FailoverMs > 3.0 * electionMin);
            lines.Add($"No fail-over above 3 election timeouts ({3 * electionMin} ms) in {failA.Count} kills (target: 30): max {failA.Max(f => f.FailoverMs):F0} ms, {above} above, {Verdict(above == 0)}");
        }
        else
        {
            lines.Add("Fail-over targets: not measured (both engines with --kills)");
        }

        md.AppendLine("## Issue 16 targets").AppendLine();
        foreach (var line in lines)
        {
            md.AppendLine(ic, $"- {line}");
        }

        md.AppendLine();
    }

    private static string LeaderFirst(double[] values, int leaderNode, string format = "F0")
    {
        var ic = CultureInfo.InvariantCulture;
        var leader = values[leaderNode - 1];
        var followers = values.Where((_, i) => i != leaderNode - 1);
        return string.Join(", ", followers.Prepend(leader).Select(f => f.ToString(format, ic)));
    }

    /// <summary>The highest rate each round sustained (0 when none did); the engine's figure is the median over rounds.</summary>
    private static double HighestSustained(IEnumerable<RoundRecord> rounds) =>
        Median(rounds.Where(r => r.OpenSteps.Count > 0).Select(r => r.OpenSteps.Where(s => s.Sustained).Select(s => s.Rate).DefaultIfEmpty(0).Max()));

    private static void OpenLoopSection(StringBuilder md, string[] engines, SweepSettings sweep, List<RoundRecord> runs, List<string> ratios)
    {
        if (sweep.Rates.Length == 0)
        {
            return;
        }

        var ic = CultureInfo.InvariantCulture;
        var grid = string.Join(", ", sweep.Rates.Select(r => r.ToString("N0", ic)));
        md.AppendLine("## Open loop: the highest rate held within the latency bound").AppendLine();
        md.AppendLine(ic, $"{sweep.Producers} producer threads in the leader send 1 KiB entries on a fixed schedule without waiting " +
            $"({(sweep.Dispatch == "pool" ? "each call dispatched to the thread pool" : "each call made on the producer thread")}); latency = commit − intended send time. " +
            $"A rate is sustained when p99 ≤ {sweep.P99BoundMs} ms, p99.99 ≤ {sweep.P9999BoundMs} ms, no replication failed, every intended send was issued and committed " +
            $"and ≥ 95% of the rate committed inside the window. Grid {grid}/s in increasing order, stopping after " +
            $"{sweep.FailuresToStop} misses in a row, then {sweep.Refine} geometric midpoint(s) between the best sustained rate and the first miss above it. " +
            $"Send lag = issue − intended (the harness's own lateness, part of every latency). Producer scheduling: " +
            $"{string.Join(", ", runs.SelectMany(r => r.OpenSteps).Select(s => s.Result.Pacing).Distinct())} (real-time where allowed, so a busy machine does not delay the sends).").AppendLine();
        md.AppendLine("| engine | highest sustained rate/s (median of rounds) | per round |").AppendLine("|---|---:|---|");
        var best = new Dictionary<string, double>();
        foreach (var engine in engines)
        {
            var rounds = runs.Where(r => r.Engine == engine && r.OpenSteps.Count > 0).ToList();
            if (rounds.Count == 0)
            {
                md.AppendLine(ic, $"| {engine} | failed | |");
                continue;
            }

            best[engine] = HighestSustained(rounds);
            md.AppendLine(ic, $"| {engine} | {best[engine]:N0} | {string.Join(", ", rounds.Select(r => r.OpenSteps.Where(s => s.Sustained).Select(s => s.Rate).DefaultIfEmpty(0).Max().ToString("N0", ic)))} |");
        }

        md.AppendLine();
        if (best.TryGetValue(Subject, out var a) && best.TryGetValue(Reference, out var d))
        {
            ratios.Add(d > 0 ? $"highest open-loop rate within the bound {a / d:F2}×" : $"highest open-loop rate within the bound: appendlog {a:N0}/s, dotnext sustained none of the rates");
        }

        if (best.TryGetValue(Subject, out var replicated) && best.TryGetValue(Single, out var single) && single > 0)
        {
            ratios.Add($"open-loop replication efficiency {replicated / single:F2} (highest sustained rate, appendlog ÷ single)");
        }

        md.AppendLine("| engine | round | rate/s | committed/s | p50 ms | p90 ms | p99 ms | p99.9 ms | p99.99 ms | max ms | send lag p99 ms | CPU µs/commit (all members) | verdict |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var run in runs.OrderBy(r => Array.IndexOf(engines, r.Engine)).ThenBy(r => r.Round))
        {
            foreach (var step in run.OpenSteps.OrderBy(s => s.Rate))
            {
                var r = step.Result;
                md.AppendLine(ic, $"| {run.Engine} | {run.Round} | {step.Rate:N0} | {r.AckedPerSecond:N0} | {r.P50Ms:F3} | {r.P90Ms:F3} | {r.P99Ms:F3} | {r.P999Ms:F3} | {r.P9999Ms:F3} | {r.MaxMs:F3} | {r.SendLagP99Ms:F3} | {step.CpuMicrosPerCommit:F1} | {step.Verdict} |");
            }
        }

        md.AppendLine();
    }

    /// <summary>The headline figures for the JSON document: per engine, the medians the Markdown tables show.</summary>
    public static object Summary(string[] engines, int[] clientCounts, List<RoundRecord> runs, int electionMin)
    {
        StepRecord? MedianStep(string engine, int clients)
        {
            var all = runs.Where(r => r.Engine == engine).SelectMany(r => r.Steps.Where(s => s.Clients == clients)).OrderBy(s => s.Result.CommitsPerSecond).ToList();
            return all.Count == 0 ? null : all[(all.Count - 1) / 2];
        }

        return engines.ToDictionary(e => e, e =>
        {
            var failovers = runs.Where(r => r.Engine == e).SelectMany(r => r.Failovers).ToList();
            var rounds = runs.Where(r => r.Engine == e && r.OpenSteps.Count > 0).ToList();
            return new
            {
                closed = clientCounts.Select(c => (c, step: MedianStep(e, c))).Where(x => x.step is not null).Select(x => new
                {
                    clients = x.c,
                    commitsPerSecond = x.step!.Result.CommitsPerSecond,
                    p99Ms = x.step.Result.P99Ms,
                    p9999Ms = x.step.Result.P9999Ms,
                    cpuMicrosPerCommit = x.step.CpuMicrosPerCommit,
                    replicationEfficiency = e != Subject || MedianStep(Single, x.c) is not { } single ? (double?)null : x.step.Result.CommitsPerSecond / single.Result.CommitsPerSecond,
                }).ToList(),
                highestSustainedRate = rounds.Count == 0 ? (double?)null : HighestSustained(rounds),
                failoverMedianMs = failovers.Count == 0 ? (double?)null : Median(failovers.Select(f => f.FailoverMs)),
                failoverMaxMs = failovers.Count == 0 ? (double?)null : failovers.Max(f => f.FailoverMs),
                failoverMedianElectionTimeouts = failovers.Count == 0 ? (double?)null : Median(failovers.Select(f => f.FailoverMs)) / electionMin,
                failoverMaxElectionTimeouts = failovers.Count == 0 ? (double?)null : failovers.Max(f => f.FailoverMs) / electionMin,
                failoversAbove3ElectionTimeouts = failovers.Count(f => f.FailoverMs > 3.0 * electionMin),
            };
        });
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
