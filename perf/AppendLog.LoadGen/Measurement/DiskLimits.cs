using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace AppendLog.LoadGen.Measurement;

/// <summary>One fio job's figures, as printed beside the tables (PEERS.md: disk limits from the same session).</summary>
internal sealed record FioResult(
    string Job, string Command, double WritesPerSecond, double MBps, double WriteLatencyMeanMicros,
    double? SyncMeanMicros, double? SyncP99Micros, string? Error);

/// <summary>
/// Runs fio's two reference jobs in the data directory: O_DIRECT 64 KiB sequential writes each followed by
/// fdatasync (the cost of one small durable write), and O_DIRECT 1 MiB sequential writes at queue depth 1
/// (the bulk ceiling). fio is an external program (apt-get install fio); without it the section says so.
/// </summary>
internal static class DiskLimits
{
    private static readonly TimeSpan s_jobWaitMax = TimeSpan.FromMinutes(3);

    private static readonly (string Job, string[] Arguments)[] s_jobs =
    [
        ("64 KiB O_DIRECT write + fdatasync each",
            ["--name=w64k", "--rw=write", "--bs=64k", "--size=1g", "--direct=1", "--fdatasync=1", "--ioengine=sync"]),
        ("1 MiB O_DIRECT write, QD1",
            ["--name=w1m", "--rw=write", "--bs=1m", "--size=2g", "--direct=1", "--ioengine=libaio", "--iodepth=1"]),
    ];

    /// <summary>The longest <see cref="MeasureAsync"/> can take.</summary>
    public static TimeSpan WaitMax => s_jobWaitMax * s_jobs.Length;

    public static async Task<IReadOnlyList<FioResult>> MeasureAsync(string dataDirectory)
    {
        string directory = Path.Combine(dataDirectory, "fio");
        var results = new List<FioResult>();
        foreach ((string job, string[] arguments) in s_jobs)
        {
            Directory.CreateDirectory(directory);
            try
            {
                results.Add(await RunAsync(job, [$"--directory={directory}", .. arguments]));
            }
            finally
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        return results;
    }

    private static async Task<FioResult> RunAsync(string job, string[] arguments)
    {
        string command = "fio " + string.Join(' ', arguments);
        var start = new ProcessStartInfo("fio") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments.Append("--output-format=json"))
        {
            start.ArgumentList.Add(argument);
        }
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new Win32Exception("fio did not start");
        }
        catch (Win32Exception e)
        {
            return Failed(job, command, "fio not available: " + e.Message);
        }
        using (process)
        {
            Task<string> output = process.StandardOutput.ReadToEndAsync();
            Task<string> errors = process.StandardError.ReadToEndAsync();
            try
            {
                await process.WaitForExitAsync().WaitAsync(s_jobWaitMax);
            }
            catch (TimeoutException)
            {
                process.Kill(entireProcessTree: true); // the fio we started, and only it
                return Failed(job, command, $"fio did not finish within {s_jobWaitMax}");
            }
            if (process.ExitCode != 0)
            {
                return Failed(job, command, $"fio exited with {process.ExitCode}: {(await errors).Trim()}");
            }
            return Parse(job, command, await output);
        }
    }

    private static FioResult Parse(string job, string command, string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        JsonElement first = document.RootElement.GetProperty("jobs")[0];
        JsonElement write = first.GetProperty("write");
        double? syncMean = null;
        double? syncP99 = null;
        // fio 3.33 leaves sync.total_ios at 0 even when it synced; lat_ns.N is the count of fdatasync calls.
        if (first.TryGetProperty("sync", out JsonElement sync)
            && sync.GetProperty("lat_ns") is var latency
            && latency.GetProperty("N").GetInt64() > 0)
        {
            syncMean = latency.GetProperty("mean").GetDouble() / 1e3;
            syncP99 = latency.GetProperty("percentile").GetProperty("99.000000").GetDouble() / 1e3;
        }
        return new FioResult(
            job, command,
            write.GetProperty("iops").GetDouble(),
            write.GetProperty("bw_bytes").GetDouble() / 1e6,
            write.GetProperty("clat_ns").GetProperty("mean").GetDouble() / 1e3,
            syncMean, syncP99, Error: null);
    }

    private static FioResult Failed(string job, string command, string error) =>
        new(job, command, 0, 0, 0, null, null, error);

    public static string ToMarkdown(IReadOnlyList<FioResult> results)
    {
        var lines = new List<string>
        {
            "| fio job (same session, in --dir) | writes/s | MB/s | write latency mean | fdatasync mean | fdatasync p99 |",
            "|---|---:|---:|---:|---:|---:|",
        };
        foreach (FioResult r in results)
        {
            lines.Add(r.Error is not null
                ? $"| `{r.Command}` | {r.Error} | | | | |"
                : string.Create(CultureInfo.InvariantCulture,
                    $"| `{r.Command}` | {r.WritesPerSecond:N0} | {r.MBps:N1} | {r.WriteLatencyMeanMicros:N0} µs " +
                    $"| {(r.SyncMeanMicros is double m ? $"{m:N0} µs" : "-")} " +
                    $"| {(r.SyncP99Micros is double p ? $"{p:N0} µs" : "-")} |"));
        }
        return string.Join('\n', lines) + "\n";
    }
}
