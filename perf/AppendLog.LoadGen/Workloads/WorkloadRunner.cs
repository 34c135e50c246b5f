using System.Diagnostics;
using AppendLog.LoadGen.Engines;
using AppendLog.LoadGen.Measurement;

namespace AppendLog.LoadGen.Workloads;

/// <summary>Runs one engine on one workload in a fresh directory and measures it.</summary>
internal static class WorkloadRunner
{
    /// <summary>Bound on closing one engine instance after a run; a hang is reported, not waited out.</summary>
    private static readonly TimeSpan s_disposeWaitMax = TimeSpan.FromSeconds(60);

    public static async Task<RunResult> RunAsync(
        IEngineFactory factory, Workload workload, int round, LoadGenOptions options, ReadOnlyMemory<byte> payload)
    {
        string runDirectory = Path.Combine(options.Directory, $"{factory.Name}-{workload.Slug}-r{round}");
        if (Directory.Exists(runDirectory))
        {
            Directory.Delete(runDirectory, recursive: true);
        }
        // Collect garbage of earlier runs now, not inside this run's window, and give the memory back to the OS
        // (aggressive mode decommits) so that this run's peak RSS carries as little of theirs as possible.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        bool rssPerRun = ProcessMeter.TryResetPeakRss();
        long rssAtStart = ProcessMeter.RssBytes();
        var engines = new List<IEngine>();
        var result = new RunResult { Engine = factory.Name, Workload = workload.Title, Round = round };
        try
        {
            var context = new EngineContext(payload.Length, workload.Producers, (long)options.MinimalLoopFileMib << 20);
            for (int i = 0; i < workload.Logs; i++)
            {
                string logDirectory = Path.Combine(runDirectory, $"log-{i}");
                Directory.CreateDirectory(logDirectory);
                engines.Add(factory.Open(logDirectory, context));
            }
            result = await MeasureAsync(engines, workload, options, payload, result) with
            {
                PeakRssIsPerRun = rssPerRun,
                RssAtStartBytes = rssAtStart,
            };
        }
        catch (Exception e) // opening or driving the engine failed: report it in the table, keep the other runs
        {
            result = result with { Error = e.GetType().Name + ": " + e.Message };
        }
        string? closeError = await CloseAsync(engines);
        if (closeError is not null)
        {
            result = result with { Error = result.Error is null ? closeError : result.Error + "; " + closeError };
        }
        if (!options.KeepData && Directory.Exists(runDirectory))
        {
            Directory.Delete(runDirectory, recursive: true);
        }
        return result;
    }

    private static async Task<RunResult> MeasureAsync(
        List<IEngine> engines, Workload workload, LoadGenOptions options, ReadOnlyMemory<byte> payload,
        RunResult result)
    {
        var window = RunWindow.FromNow(options.Warmup, options.Duration, options.DrainTimeout);
        ILoad load = workload.Loop == LoopKind.Open
            ? new OpenLoopLoad(engines, payload, workload, options.InflightPerProducerMax, window)
            : new ClosedLoopLoad(engines, payload, workload.Concurrency!.Value, window);
        load.Start();
        await RunWindow.SleepUntilAsync(window.MeasureStart);
        Sample before = Sample.Take(engines);
        await RunWindow.SleepUntilAsync(window.MeasureEnd);
        Sample after = Sample.Take(engines);
        await load.WaitForDrainAsync();
        LoadOutcome outcome = load.Collect();
        long peakRss = ProcessMeter.PeakRssBytes();

        double seconds = Stopwatch.GetElapsedTime(window.MeasureStart, window.MeasureEnd).TotalSeconds;
        double sampledSeconds = Stopwatch.GetElapsedTime(before.Timestamp, after.Timestamp).TotalSeconds;
        double mbps = outcome.AckedInWindow * (double)payload.Length / 1e6 / seconds;
        long? syncs = after.SyncCalls - before.SyncCalls;
        long? wakeUps = after.WakeUps - before.WakeUps;
        return result with
        {
            TargetMBps = workload.RateMBps,
            Concurrency = workload.Concurrency,
            MeasuredSeconds = seconds,
            RecordsAcked = outcome.AckedInWindow,
            AchievedMBps = mbps,
            RecordsPerSecond = outcome.AckedInWindow / seconds,
            Sustained = workload.RateMBps is double target ? mbps >= RunResult.SustainedFraction * target : null,
            Latency = LatencySummary.From(outcome.Latency),
            SendLag = outcome.SendLag is null ? null : LatencySummary.From(outcome.SendLag),
            AppendCall = outcome.AppendCall is null ? null : LatencySummary.From(outcome.AppendCall),
            CpuSeconds = (after.Cpu - before.Cpu).TotalSeconds,
            ContextSwitches = after.ContextSwitches - before.ContextSwitches,
            ContextSwitchesByThread = ProcessMeter.ContextSwitchesByThreadKind(before.Threads, after.Threads),
            PeakRssBytes = peakRss,
            SyncCalls = syncs,
            SyncsPerSecond = syncs / sampledSeconds,
            WakeUpsPerSecond = wakeUps / sampledSeconds,
            NotSent = outcome.NotSent,
            NotAcked = outcome.NotAcked,
            LatencyClamped = outcome.Clamped,
            Failed = outcome.Failed,
            Error = outcome.FirstError,
            Counters = SumCounters(engines),
        };
    }

    private static Dictionary<string, long> SumCounters(List<IEngine> engines)
    {
        var sums = new Dictionary<string, long>();
        foreach (IEngine engine in engines)
        {
            foreach ((string name, long value) in engine.Counters)
            {
                sums[name] = sums.GetValueOrDefault(name) + value;
            }
        }
        return sums;
    }

    private static async Task<string?> CloseAsync(List<IEngine> engines)
    {
        string? error = null;
        foreach (IEngine engine in engines)
        {
            try
            {
                await Task.Run(async () => await engine.DisposeAsync()).WaitAsync(s_disposeWaitMax);
            }
            catch (Exception e) // a close that fails or hangs is reported with the run; the next run goes on
            {
                error ??= "close: " + e.GetType().Name + ": " + e.Message;
            }
        }
        return error;
    }

    /// <summary>Process CPU time, context switches and summed sync calls at one moment.</summary>
    private sealed record Sample(
        long Timestamp, TimeSpan Cpu, long? ContextSwitches, Dictionary<int, (string Name, long Switches)> Threads,
        long? SyncCalls, long? WakeUps)
    {
        public static Sample Take(List<IEngine> engines)
        {
            long? syncs = 0;
            long? wakeUps = 0;
            foreach (IEngine engine in engines)
            {
                syncs += engine.SyncCalls; // null as soon as one instance cannot be counted
                wakeUps += engine.WakeUps;
            }
            return new Sample(
                Stopwatch.GetTimestamp(), ProcessMeter.CpuTime(), ProcessMeter.ContextSwitches(),
                ProcessMeter.ThreadContextSwitches(), syncs, wakeUps);
        }
    }
}
