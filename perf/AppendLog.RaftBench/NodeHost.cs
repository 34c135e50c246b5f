using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace AppendLog.RaftBench;

/// <summary>
/// One member as its own process. Talks to the driver with lines: commands on stdin, and '@'-prefixed replies and
/// events on stdout (anything else on stdout is a library's own output and is ignored by the driver).
/// Times are CLOCK_MONOTONIC nanoseconds (Stopwatch on Linux), one clock for every process on the machine.
/// </summary>
internal static class NodeHost
{
    private static readonly Lock Gate = new();

    public static void Say(string line)
    {
        lock (Gate)
        {
            Console.Out.WriteLine("@" + line);
            Console.Out.Flush();
        }
    }

    public static readonly JsonSerializerOptions JsonOptions = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>A window edge of the running step, for the driver's CPU samples of every member.</summary>
    private static void Mark(string edge) => Say($"MARK {NowNs()} {edge}");

    public static long NowNs() => (long)(Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency));

    public static async Task<int> RunAsync(Options options)
    {
        var ports = options.Get("ports").Split(',').Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
        var settings = new NodeSettings(
            options.Int("id"), ports, options.Get("dir"), options.Int("election-min", 150), options.Int("election-max", 300));
        Directory.CreateDirectory(settings.Directory);
        var engine = options.Get("engine");
        await using var node = BenchNodes.Create(engine, settings);
        var probe = ClosedLoop.Payload(-1);
        var leaderEpoch = 0;
        node.BecameLeader += () =>
        {
            var epoch = Interlocked.Increment(ref leaderEpoch);
            var becameAt = NowNs();
            Say($"LEADER {becameAt}");
            _ = Task.Run(async () =>
            {
                // The fail-over probe: the first entry this member commits as the new leader.
                for (var attempt = 0; attempt < 10_000 && Volatile.Read(ref leaderEpoch) == epoch; attempt++)
                {
                    try
                    {
                        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                        await node.ReplicateAsync(probe, timeout.Token).ConfigureAwait(false);
                        var committedAt = NowNs();
                        Say($"FIRSTCOMMIT {committedAt} {(committedAt - becameAt) / 1e6:F3}");
                        return;
                    }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                        if (attempt == 0)
                        {
                            Say($"INFO probe retry: {ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ")}");
                        }

                        await Task.Delay(1).ConfigureAwait(false);
                    }
                }
            });
        };

        await node.StartAsync(CancellationToken.None).ConfigureAwait(false);
        Say($"READY {Environment.ProcessId}");
        if (int.TryParse(Environment.GetEnvironmentVariable("RAFTBENCH_STATUS_MS"), out var statusMs) && statusMs > 0)
        {
            // Verbose trace (driver --verbose with RAFTBENCH_STATUS_MS set): this member's own view, periodically.
            _ = Task.Run(async () =>
            {
                while (true)
                {
                    await Task.Delay(statusMs).ConfigureAwait(false);
                    Say($"INFO t={NowNs() / 1_000_000} {node.StatusLine} gc {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)} pause {GC.GetTotalPauseDuration().TotalMilliseconds:F0} ms");
                }
            });
        }

        _ = Task.Run(async () =>
        {
            // A member that stopped on its own makes the run meaningless: say why (the driver prints it) and exit.
            while (node.Fault is null)
            {
                await Task.Delay(100).ConfigureAwait(false);
            }

            Say($"ERR member stopped: {node.Fault.ToString().ReplaceLineEndings(" | ")}");
            Environment.Exit(70);
        });

        BackgroundLoad? background = null;
        while (await Console.In.ReadLineAsync().ConfigureAwait(false) is { } line)
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0)
            {
                continue;
            }

            try
            {
                switch (words[0])
                {
                    case "load":
                        var result = await ClosedLoop.RunAsync(
                            node,
                            int.Parse(words[1], CultureInfo.InvariantCulture),
                            TimeSpan.FromSeconds(double.Parse(words[2], CultureInfo.InvariantCulture)),
                            TimeSpan.FromSeconds(double.Parse(words[3], CultureInfo.InvariantCulture)),
                            Mark).ConfigureAwait(false);
                        Say("RESULT " + JsonSerializer.Serialize(result, JsonOptions));
                        break;
                    case "open":
                        // open RATE PRODUCERS inline|pool WARMUP SECONDS
                        var open = await OpenLoop.RunAsync(
                            node,
                            double.Parse(words[1], CultureInfo.InvariantCulture),
                            int.Parse(words[2], CultureInfo.InvariantCulture),
                            words[3] == "pool",
                            TimeSpan.FromSeconds(double.Parse(words[4], CultureInfo.InvariantCulture)),
                            TimeSpan.FromSeconds(double.Parse(words[5], CultureInfo.InvariantCulture)),
                            Mark).ConfigureAwait(false);
                        Say("OPENRESULT " + JsonSerializer.Serialize(open, JsonOptions));
                        break;
                    case "bg":
                        if (background is not null)
                        {
                            await background.StopAsync().ConfigureAwait(false);
                        }

                        background = new BackgroundLoad(node, int.Parse(words[1], CultureInfo.InvariantCulture));
                        Say("OK bg");
                        break;
                    case "stop":
                        if (background is not null)
                        {
                            await background.StopAsync().ConfigureAwait(false);
                        }

                        Say($"COUNT {background?.Commits ?? 0} {background?.Errors ?? 0}");
                        background = null;
                        break;
                    case "count":
                        // commits, errors, entries applied, thread-pool work items completed by this process (profile's hops per commit).
                        Say($"COUNT {background?.Commits ?? 0} {background?.Errors ?? 0} {node.Applied} {ThreadPool.CompletedWorkItemCount}");
                        break;
                    case "role":
                        Say($"ROLE {(node.IsLeader ? "leader" : "follower")} {node.Applied}");
                        break;
                    case "quit":
                        if (background is not null)
                        {
                            await background.StopAsync().ConfigureAwait(false);
                        }

                        Say("BYE");
                        return 0;
                    default:
                        Say($"ERR unknown command {words[0]}");
                        break;
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Say($"ERR {ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ")}");
            }
        }

        return 0;
    }
}
