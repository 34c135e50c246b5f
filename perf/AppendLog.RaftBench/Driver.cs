using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AppendLog.LoadGen.Measurement;

namespace AppendLog.RaftBench;

/// <summary>
/// One closed-loop step. CpuSeconds: each member's CPU time (user + system) in the measured window, the leader's
/// including the clients it runs; CpuMicrosPerCommit: their sum per commit completed in the window.
/// </summary>
internal sealed record StepRecord(int Clients, int LeaderNode, LoadResult Result, double[] RssMiB, bool LeaderChanged, double[] CpuSeconds, double CpuMicrosPerCommit);

/// <summary>One open-loop step; <paramref name="Verdict"/> is "ok" when it held the latency bound, else why not.</summary>
internal sealed record OpenStepRecord(double Rate, int LeaderNode, OpenResult Result, bool LeaderChanged, double[] CpuSeconds, double CpuMicrosPerCommit, string Verdict)
{
    public bool Sustained => Verdict == "ok";
}

/// <summary>What an open-loop rate sweep is asked: the rates, the producers, and the latency bound a rate must hold.</summary>
internal sealed record SweepSettings(double[] Rates, int Refine, int Producers, string Dispatch, double P99BoundMs, double P9999BoundMs, int FailuresToStop);

internal sealed record FailoverRecord(int KilledNode, int NewLeaderNode, double ElectionMs, double FailoverMs);

internal sealed record RoundRecord(
    string Engine, int Round, int[] Ports, List<StepRecord> Steps, double[] PeakHwmMiB, List<FailoverRecord> Failovers, List<string> Notes,
    List<OpenStepRecord> OpenSteps);

/// <summary>Starts the member processes, drives each step through the leader, kills leaders, and reports.</summary>
internal static class Driver
{
    private static readonly Stopwatch Clock = Stopwatch.StartNew();

    public static void Say(string text) => Console.Error.WriteLine($"[{Clock.Elapsed.TotalSeconds,7:F1}s] {text}");

    public static async Task<int> RunAsync(Options options, string[] rawArgs)
    {
        var engines = options.Get("engine", "both") switch
        {
            "both" => new[] { "appendlog", "dotnext" },
            "all" => ["appendlog", "dotnext", "single"],
            var list => list.Split(',', StringSplitOptions.RemoveEmptyEntries),
        };
        var sweep = new SweepSettings(
            options.Get("rates", "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(r => double.Parse(r, CultureInfo.InvariantCulture)).Order().ToArray(),
            options.Int("refine", 2), options.Int("producers", 1), options.Get("dispatch", "inline") is "pool" ? "pool" : "inline", options.Double("p99-ms", 5), options.Double("p9999-ms", 20), options.Int("stop-after", 2));
        var clientCounts = options.Ints("clients", "1,16,64");
        var seconds = options.Double("seconds", 10);
        var warmup = options.Double("warmup", 2);
        var rounds = options.Int("rounds", 3);
        var kills = options.Int("kills", 2);
        var failoverClients = options.Int("failover-clients", 16);
        var electionMin = options.Int("election-min", 150);
        var electionMax = options.Int("election-max", 300);
        var verbose = options.Flag("verbose");
        var dir = Path.GetFullPath(options.Get("dir", Path.Combine(Path.GetTempPath(), "appendlog-raftbench")));
        var outPrefix = options.Get("out", "");
        var environment = MemberEnvironment(options);
        Directory.CreateDirectory(dir);
        var machine = MachineInfo.Collect(dir, TimeProvider.System);
        var loadStart = ProcStatus.LoadAverage();
        Say($"{machine.HeaderLine}");
        var runs = new List<RoundRecord>();
        var failed = false;
        for (var round = 1; round <= rounds; round++)
        {
            // Round-robin with a rotating first engine, so drift of a shared machine hits both alike.
            var order = Enumerable.Range(0, engines.Length).Select(i => engines[(i + round - 1) % engines.Length]);
            foreach (var engine in order)
            {
                try
                {
                    runs.Add(await RunRoundAsync(engine, round, dir, clientCounts, sweep, warmup, seconds, kills, failoverClients, electionMin, electionMax, verbose, environment).ConfigureAwait(false));
                }
                catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or IOException)
                {
                    Say($"{engine} round {round} FAILED: {ex.Message}");
                    runs.Add(new RoundRecord(engine, round, [], [], [], [], [$"failed: {ex.Message}"], []));
                    failed = true;
                }
            }
        }

        var loadEnd = ProcStatus.LoadAverage();
        var command = "AppendLog.RaftBench " + string.Join(' ', rawArgs.Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a))
            .Replace(dir, "DIR", StringComparison.Ordinal);
        var markdown = Report.Markdown(machine, command, engines, clientCounts, sweep, runs, loadStart, loadEnd, electionMin, electionMax, warmup, seconds, failoverClients);
        Console.WriteLine(markdown);
        if (outPrefix.Length > 0)
        {
            await File.WriteAllTextAsync(outPrefix + ".md", markdown).ConfigureAwait(false);
            var json = JsonSerializer.Serialize(
                new { machine = machine with { DataDirectory = "DIR" }, command, loadAverageStart = loadStart, loadAverageEnd = loadEnd, engines, clientCounts, sweep, summary = Report.Summary(engines, clientCounts, runs, electionMin), warmup, seconds, electionMin, electionMax, failoverClients, settings = engines.ToDictionary(e => e, e => BenchNodes.Describe(e, electionMin, electionMax)), runs },
                new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals });
            await File.WriteAllTextAsync(outPrefix + ".json", json.Replace(dir, "DIR", StringComparison.Ordinal)).ConfigureAwait(false);
            Say($"wrote {outPrefix}.md and {outPrefix}.json");
        }

        return failed ? 1 : 0;
    }

    private static async Task<RoundRecord> RunRoundAsync(
        string engine, int round, string dir, int[] clientCounts, SweepSettings sweep, double warmup, double seconds, int kills, int failoverClients,
        int electionMin, int electionMax, bool verbose, Dictionary<string, string> environment)
    {
        var root = Path.Combine(dir, $"{engine}-r{round}");
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        var notes = new List<string>();
        var steps = new List<StepRecord>();
        var failovers = new List<FailoverRecord>();
        var openSteps = new List<OpenStepRecord>();
        double[] peak;
        int[] ports;
        await using (var cluster = new Cluster(engine, root, electionMin, electionMax, verbose, environment))
        {
            ports = cluster.Ports;
            Say($"{engine} round {round}: starting {cluster.Nodes.Length} member(s) on 127.0.0.1:{string.Join(',', cluster.Ports)}");
            await Task.WhenAll(Enumerable.Range(0, cluster.Nodes.Length).Select(cluster.StartAsync)).ConfigureAwait(false);
            var first = await cluster.AwaitCommittingLeaderAsync(0, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            Say($"{engine} round {round}: node {first.Node + 1} leads");
            foreach (var clients in clientCounts)
            {
                var leader = cluster.CurrentLeader();
                var before = NodeHost.NowNs();
                await leader.SendAsync(string.Create(CultureInfo.InvariantCulture, $"load {clients} {warmup} {seconds}")).ConfigureAwait(false);
                var reply = await leader.ExpectAsync("RESULT", TimeSpan.FromSeconds(warmup + seconds + 120)).ConfigureAwait(false);
                var result = JsonSerializer.Deserialize<LoadResult>(reply["RESULT ".Length..], NodeHost.JsonOptions)!;
                var (cpu, cpuPerCommit) = WindowCpu(cluster, before, result.Commits);
                var rss = cluster.Nodes.Select(n => n is null ? double.NaN : ProcStatus.Read(n.Pid).RssMiB).ToArray();
                var changed = cluster.Events().Any(e => e.Kind == "LEADER" && e.Ns > before);
                if (changed)
                {
                    notes.Add($"leadership changed during the {clients}-client step");
                }

                if (result.ErrorKinds is { Count: > 0 })
                {
                    notes.Add($"{clients}-client step: failed replications {string.Join(", ", result.ErrorKinds.Select(k => $"{k.Key} × {k.Value}"))}");
                }

                steps.Add(new StepRecord(clients, leader.Index + 1, result, rss, changed, cpu, cpuPerCommit));
                Say($"{engine} round {round}: {clients,2} clients: {result.CommitsPerSecond,9:F0} commits/s  p50 {result.P50Ms:F3}  p99 {result.P99Ms:F3}  " +
                    $"p99.99 {result.P9999Ms:F3}  max {result.MaxMs:F3} ms  CPU {cpuPerCommit:F1} µs/commit (all members)  errors {result.Errors}{(result.ErrorKinds is { Count: > 0 } kinds ? " (" + string.Join(", ", kinds.Select(k => $"{k.Key} {k.Value}")) + ")" : "")}  RSS MiB {string.Join('/', rss.Select(r => r.ToString("F0", CultureInfo.InvariantCulture)))}");
            }

            await SweepAsync(cluster, engine, round, sweep, warmup, seconds, openSteps, notes).ConfigureAwait(false);
            peak = cluster.Nodes.Select(n => n is null ? double.NaN : ProcStatus.Read(n.Pid).HwmMiB).ToArray();
            if (kills > 0 && cluster.Nodes.Length > 1)
            {
                foreach (var node in cluster.Nodes)
                {
                    await node!.SendAsync($"bg {failoverClients}").ConfigureAwait(false);
                    await node.ExpectAsync("OK", TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                }

                for (var k = 0; k < kills; k++)
                {
                    await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                    var leader = cluster.CurrentLeader();
                    var killedAt = await cluster.KillAsync(leader.Index).ConfigureAwait(false);
                    var next = await cluster.AwaitCommittingLeaderAsync(killedAt, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                    var elected = cluster.Events().Where(e => e.Kind == "LEADER" && e.Node == next.Node && e.Ns > killedAt).Select(e => e.Ns).DefaultIfEmpty(next.Ns).Min();
                    var record = new FailoverRecord(leader.Index + 1, next.Node + 1, (elected - killedAt) / 1e6, (next.Ns - killedAt) / 1e6);
                    failovers.Add(record);
                    Say($"{engine} round {round}: SIGKILL node {record.KilledNode} (leader) under {failoverClients}-client load: node {record.NewLeaderNode} " +
                        $"led after {record.ElectionMs:F0} ms, first commit {record.FailoverMs:F0} ms after the kill");
                    await cluster.StartAsync(leader.Index).ConfigureAwait(false);
                    await cluster.Nodes[leader.Index]!.SendAsync($"bg {failoverClients}").ConfigureAwait(false);
                }

                await Task.Delay(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            }
        }

        Directory.Delete(root, recursive: true);
        return new RoundRecord(engine, round, ports, steps, peak, failovers, notes, openSteps);
    }

    /// <summary>
    /// The open-loop rate sweep on the current leader: each rate of the grid in increasing order until
    /// <see cref="SweepSettings.FailuresToStop"/> rates in a row miss the bound, then <see cref="SweepSettings.Refine"/>
    /// geometric midpoints between the highest sustained rate and the lowest missed one above it.
    /// </summary>
    private static async Task SweepAsync(Cluster cluster, string engine, int round, SweepSettings sweep, double warmup, double seconds, List<OpenStepRecord> steps, List<string> notes)
    {
        if (sweep.Rates.Length == 0)
        {
            return;
        }

        async Task<OpenStepRecord> StepAsync(double rate)
        {
            var leader = cluster.CurrentLeader();
            var before = NodeHost.NowNs();
            await leader.SendAsync(string.Create(CultureInfo.InvariantCulture, $"open {rate} {sweep.Producers} {sweep.Dispatch} {warmup} {seconds}")).ConfigureAwait(false);
            var reply = await leader.ExpectAsync("OPENRESULT", TimeSpan.FromSeconds(warmup + seconds + 90)).ConfigureAwait(false);
            var result = JsonSerializer.Deserialize<OpenResult>(reply["OPENRESULT ".Length..], NodeHost.JsonOptions)!;
            var (cpu, cpuPerCommit) = WindowCpu(cluster, before, result.AckedInWindow);
            var changed = cluster.Events().Any(e => e.Kind == "LEADER" && e.Ns > before);
            var verdict =
                result.Errors > 0 ? $"{result.Errors} failed ({result.FirstError})"
                : result.NotSent > 0 ? $"{result.NotSent} never sent (in-flight cap until the drain deadline)"
                : result.Unfinished > 0 ? $"{result.Unfinished} not committed by the drain deadline"
                : result.AckedPerSecond < 0.95 * rate ? $"committed {result.AckedPerSecond:F0}/s < 95% of the rate"
                : !(result.P99Ms <= sweep.P99BoundMs) ? $"p99 {result.P99Ms:F2} ms > {sweep.P99BoundMs} ms"
                : !(result.P9999Ms <= sweep.P9999BoundMs) ? $"p99.99 {result.P9999Ms:F2} ms > {sweep.P9999BoundMs} ms"
                : "ok";
            var step = new OpenStepRecord(rate, leader.Index + 1, result, changed, cpu, cpuPerCommit, verdict);
            steps.Add(step);
            if (changed)
            {
                notes.Add($"leadership changed during the open-loop step at {rate:F0}/s");
            }

            Say($"{engine} round {round}: open {rate,8:F0}/s: committed {result.AckedPerSecond,8:F0}/s  p50 {result.P50Ms:F3}  p99 {result.P99Ms:F3}  " +
                $"p99.99 {result.P9999Ms:F3}  max {result.MaxMs:F3} ms  send lag p99 {result.SendLagP99Ms:F3} ms  CPU {cpuPerCommit:F1} µs/commit  {verdict}");
            return step;
        }

        var missedInARow = 0;
        double? best = null, firstMissAbove = null;
        foreach (var rate in sweep.Rates)
        {
            var step = await StepAsync(rate).ConfigureAwait(false);
            if (step.Sustained)
            {
                best = rate;
                firstMissAbove = null;
                missedInARow = 0;
            }
            else
            {
                firstMissAbove ??= rate;
                if (++missedInARow >= sweep.FailuresToStop)
                {
                    break;
                }
            }
        }

        // Geometric bisection between the best sustained rate and the first miss above it.
        var low = best ?? 0;
        var high = firstMissAbove;
        for (var i = 0; i < sweep.Refine && high is { } h && low > 0; i++)
        {
            var mid = Math.Round(Math.Sqrt(low * h));
            if (mid <= low || mid >= h)
            {
                break;
            }

            if ((await StepAsync(mid).ConfigureAwait(false)).Sustained)
            {
                low = mid;
            }
            else
            {
                high = mid;
            }
        }
    }

    /// <summary>
    /// Every member's CPU time between the last "start" and "end" marks after <paramref name="afterNs"/> (the window of
    /// the step just run), and their sum in µs per commit.
    /// </summary>
    private static (double[] CpuSeconds, double MicrosPerCommit) WindowCpu(Cluster cluster, long afterNs, long commits)
    {
        var marks = cluster.Marks().Where(m => m.Ns > afterNs).ToList();
        var start = marks.LastOrDefault(m => m.Edge == "start");
        var end = marks.LastOrDefault(m => m.Edge == "end");
        if (start is null || end is null)
        {
            return ([], double.NaN);
        }

        var cpu = start.CpuSeconds.Zip(end.CpuSeconds, (a, b) => b - a).ToArray();
        return (cpu, commits > 0 ? cpu.Sum() * 1e6 / commits : double.NaN);
    }

    /// <summary>"--env K=V[,K=V]": environment variables for every member process of both engines (runtime knobs).</summary>
    private static Dictionary<string, string> MemberEnvironment(Options options) =>
        options.Get("env", "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('=', 2))
            .ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "", StringComparer.Ordinal);

    /// <summary>
    /// Starts one engine's cluster with a background load on the leader and runs an attach command against the
    /// leader's and a follower's pid ({leader}, {follower}): strace -c, perf record, top -H. Prints the commits the
    /// leader made while the command ran, so counts per commit can be derived.
    /// </summary>
    public static async Task<int> ProfileAsync(Options options)
    {
        var engine = options.Get("engine");
        var clients = options.Int("clients", 64);
        var warmup = options.Double("warmup", 3);
        var attach = options.Get("attach", "timeout -s INT 10 strace -f -c -p {leader}");
        var dir = Path.GetFullPath(options.Get("dir", Path.Combine(Path.GetTempPath(), "appendlog-raftbench")));
        var root = Path.Combine(dir, $"{engine}-profile");
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        var environment = MemberEnvironment(options);
        if (options.Flag("perf-map"))
        {
            environment["DOTNET_PerfMapEnabled"] = "1";
        }

        await using (var cluster = new Cluster(engine, root, options.Int("election-min", 150), options.Int("election-max", 300), options.Flag("verbose"), environment))
        {
            await Task.WhenAll(Enumerable.Range(0, cluster.Nodes.Length).Select(cluster.StartAsync)).ConfigureAwait(false);
            await cluster.AwaitCommittingLeaderAsync(0, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            var leader = cluster.CurrentLeader();
            var follower = cluster.Nodes.FirstOrDefault(n => n != leader) ?? leader;
            await leader.SendAsync($"bg {clients}").ConfigureAwait(false);
            await leader.ExpectAsync("OK", TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromSeconds(warmup)).ConfigureAwait(false);
            async Task<long> Count() => (await CountOf(leader).ConfigureAwait(false))[0];

            // COUNT commits errors applied work-items: the work items of the member's thread pool, a count of its hops.
            static async Task<long[]> CountOf(NodeProcess node)
            {
                await node.SendAsync("count").ConfigureAwait(false);
                var words = (await node.ExpectAsync("COUNT", TimeSpan.FromSeconds(10)).ConfigureAwait(false)).Split(' ');
                return [long.Parse(words[1], CultureInfo.InvariantCulture), long.Parse(words.Length > 4 ? words[4] : "0", CultureInfo.InvariantCulture)];
            }

            var command = attach.Replace("{leader}", leader.Pid.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("{follower}", follower.Pid.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
            Say($"{engine}: leader pid {leader.Pid}, follower pid {follower.Pid}, {clients} clients; running: {command}");
            var before = await Count().ConfigureAwait(false);
            var itemsBefore = new[] { (await CountOf(leader).ConfigureAwait(false))[1], (await CountOf(follower).ConfigureAwait(false))[1] };
            var started = Stopwatch.GetTimestamp();
            var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(command);
            using (var tool = Process.Start(info)!)
            {
                await tool.WaitForExitAsync().ConfigureAwait(false);
            }

            var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var after = await Count().ConfigureAwait(false);
            var itemsAfter = new[] { (await CountOf(leader).ConfigureAwait(false))[1], (await CountOf(follower).ConfigureAwait(false))[1] };
            var commits = Math.Max(1, after - before);
            Console.WriteLine($"{engine}: {after - before} commits by the leader while the command ran ({elapsed:F1} s, {(after - before) / elapsed:F0}/s); " +
                $"thread-pool work items per commit: leader {(double)(itemsAfter[0] - itemsBefore[0]) / commits:F2}, follower {(double)(itemsAfter[1] - itemsBefore[1]) / commits:F2}");
        }

        Directory.Delete(root, recursive: true);
        return 0;
    }
}
