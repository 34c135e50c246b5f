using System.Diagnostics;
using HdrHistogram;

namespace AppendLog.RaftBench;

/// <summary>The outcome of one closed-loop step, computed inside the leader and sent to the driver as JSON.</summary>
internal sealed record LoadResult(
    int Clients, double WindowSeconds, long Commits, double CommitsPerSecond, long Errors,
    double P50Ms, double P90Ms, double P99Ms, double P999Ms, double P9999Ms, double MaxMs, long Samples, double CpuSeconds,
    IReadOnlyDictionary<string, long>? ErrorKinds = null);

/// <summary>
/// C closed-loop clients in the leader process, each replicating a 1 KiB entry and awaiting its commit before the next.
/// Latency = commit − call, for calls started inside the measured window; throughput = commits completed inside the
/// window ÷ window. HdrHistogram in µs, 1 µs to 60 s, 3 significant digits, one histogram per client, merged.
/// </summary>
internal static class ClosedLoop
{
    public const int PayloadBytes = 1024;
    private const long HighestMicros = 60_000_000;

    public static byte[] Payload(int client)
    {
        var payload = new byte[PayloadBytes];
        new Random(client + 1).NextBytes(payload);
        return payload;
    }

    // mark: called with "start" and "end" at the window's edges; the driver samples every member's CPU time then.
    public static async Task<LoadResult> RunAsync(IBenchNode node, int clients, TimeSpan warmup, TimeSpan window, Action<string> mark)
    {
        var start = Stopwatch.GetTimestamp();
        var windowStart = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var windowEnd = windowStart + (long)(window.TotalSeconds * Stopwatch.Frequency);
        var cpuAtStart = TimeSpan.Zero;
        var cpuTask = Task.Run(async () =>
        {
            await Task.Delay(OpenLoop.Until(windowStart)).ConfigureAwait(false);
            cpuAtStart = Process.GetCurrentProcess().TotalProcessorTime;
            mark("start");
            await Task.Delay(OpenLoop.Until(windowEnd)).ConfigureAwait(false);
            mark("end");
        });
        var perClient = await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            var histogram = new LongHistogram(HighestMicros, 3);
            var payload = Payload(c);
            long commits = 0, errors = 0;
            var kinds = new Dictionary<string, long>(StringComparer.Ordinal);
            while (true)
            {
                var sent = Stopwatch.GetTimestamp();
                if (sent >= windowEnd)
                {
                    break;
                }

                try
                {
                    await node.ReplicateAsync(payload, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    errors++;
                    kinds[ex.GetType().Name] = kinds.GetValueOrDefault(ex.GetType().Name) + 1;
                    await Task.Delay(1).ConfigureAwait(false);
                    continue;
                }

                var acked = Stopwatch.GetTimestamp();
                if (sent >= windowStart)
                {
                    histogram.RecordValue(Math.Clamp((acked - sent) * 1_000_000 / Stopwatch.Frequency, 1, HighestMicros));
                }

                if (acked >= windowStart && acked < windowEnd)
                {
                    commits++;
                }
            }

            return (histogram, commits, errors, kinds);
        }))).ConfigureAwait(false);
        await cpuTask.ConfigureAwait(false);
        var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuAtStart).TotalSeconds;
        var merged = new LongHistogram(HighestMicros, 3);
        foreach (var (histogram, _, _, _) in perClient)
        {
            merged.Add(histogram);
        }

        double Ms(double percentile) => merged.TotalCount == 0 ? double.NaN : merged.GetValueAtPercentile(percentile) / 1000.0;
        var commitsTotal = perClient.Sum(p => p.commits);
        return new LoadResult(
            clients, window.TotalSeconds, commitsTotal, commitsTotal / window.TotalSeconds, perClient.Sum(p => p.errors),
            Ms(50), Ms(90), Ms(99), Ms(99.9), Ms(99.99), merged.TotalCount == 0 ? double.NaN : merged.GetMaxValue() / 1000.0,
            merged.TotalCount, cpu,
            perClient.SelectMany(p => p.kinds).GroupBy(k => k.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Sum(k => k.Value), StringComparer.Ordinal));
    }
}

/// <summary>
/// Load that runs until stopped, on whichever member leads: used for the fail-over step and for profiling. Clients
/// poll the member's role while it does not lead.
/// </summary>
internal sealed class BackgroundLoad
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _clients;
    private long _commits;
    private long _errors;

    public BackgroundLoad(IBenchNode node, int clients)
    {
        _clients = Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            var payload = ClosedLoop.Payload(1000 + c);
            while (!_stop.IsCancellationRequested)
            {
                if (!node.IsLeader)
                {
                    await Task.Delay(2).ConfigureAwait(false);
                    continue;
                }

                try
                {
                    await node.ReplicateAsync(payload, CancellationToken.None).ConfigureAwait(false);
                    Interlocked.Increment(ref _commits);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    Interlocked.Increment(ref _errors);
                    await Task.Delay(1).ConfigureAwait(false);
                }
            }
        })));
    }

    public long Commits => Interlocked.Read(ref _commits);

    public long Errors => Interlocked.Read(ref _errors);

    public async Task StopAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAny(_clients, Task.Delay(TimeSpan.FromSeconds(15))).ConfigureAwait(false);
    }
}
