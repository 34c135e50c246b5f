using System.Diagnostics;

namespace RaftCluster;

/// <summary>
/// Closed-loop load on the leader: N clients, each replicating a 1 KiB payload and waiting for its commit before the
/// next. Reports committed writes/s and the latency of each write (from the call to the commit) as percentiles.
/// Closed-loop latencies understate what an open-loop load would see under saturation (coordinated omission).
/// </summary>
internal static class Bench
{
    private const int PayloadBytes = 1024;

    public static async Task RunAsync(KeyValueNode leader, TimeSpan duration, int[] clientCounts)
    {
        Console.WriteLine($"3 members on 127.0.0.1, one process; leader node {leader.Id}; {PayloadBytes} B payloads; " +
            $"{duration.TotalSeconds:F0} s per row after 1 s of warm-up; {Environment.ProcessorCount} CPUs");
        Console.WriteLine($"{"clients",7} {"commits/s",10} {"p50 ms",8} {"p90 ms",8} {"p99 ms",8} {"p99.9 ms",9} {"p99.99 ms",10} {"max ms",8}");
        foreach (var clients in clientCounts)
        {
            await LoadAsync(leader, clients, TimeSpan.FromSeconds(1));
            var (latencies, elapsed) = await LoadAsync(leader, clients, duration);
            latencies.Sort();
            double P(double q) => latencies.Count == 0 ? double.NaN
                : latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(q * latencies.Count) - 1)] * 1000.0 / Stopwatch.Frequency;
            Console.WriteLine($"{clients,7} {latencies.Count / elapsed.TotalSeconds,10:F0} {P(0.5),8:F3} {P(0.9),8:F3} {P(0.99),8:F3} {P(0.999),9:F3} {P(0.9999),10:F3} {P(1),8:F3}");
        }
    }

    private static async Task<(List<long> Latencies, TimeSpan Elapsed)> LoadAsync(KeyValueNode leader, int clients, TimeSpan duration)
    {
        var stopAt = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var started = Stopwatch.GetTimestamp();
        var perClient = await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            var latencies = new List<long>();
            var payload = new byte[PayloadBytes];
            var key = "k" + c + "=";
            System.Text.Encoding.ASCII.GetBytes(key).CopyTo(payload, 0);
            while (Stopwatch.GetTimestamp() < stopAt)
            {
                var start = Stopwatch.GetTimestamp();
                await leader.Log.ReplicateAsync(payload);
                latencies.Add(Stopwatch.GetTimestamp() - start);
            }

            return latencies;
        })));
        var elapsed = Stopwatch.GetElapsedTime(started);
        return (perClient.SelectMany(l => l).ToList(), elapsed);
    }
}
