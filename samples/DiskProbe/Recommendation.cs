using System.Numerics;
using System.Text.Encodings.Web;
using System.Text.Json;
using AppendLog;

namespace DiskProbe;

/// <summary>
/// The JSON the probe writes with <c>--write FILE</c> (and reads back with <c>--check FILE</c>). The
/// <see cref="AppendLog"/> object holds exactly the settings a host binds into <see cref="LogOptions"/> and
/// <see cref="LogBufferPool"/>; see <see cref="RecommendationLoader.Apply"/>. Everything else is explanation.
/// </summary>
internal sealed record ProbeReport(
    AppendLogSettings AppendLog,
    IReadOnlyList<string> Reasons,
    IReadOnlyList<string> KernelSuggestions,
    MeasuredSummary Measured);

/// <summary>The bindable part. Sizes in bytes; <see cref="FlushDelayMilliseconds"/> only for Debounced.</summary>
internal sealed record AppendLogSettings(
    string FlushPolicy,
    double? FlushDelayMilliseconds,
    long? FlushPendingBytesMax,
    int ChunkSize,
    long PreallocationMinimumStep,
    long PreallocationMaximumStep,
    string DirectIo);

/// <summary>The figures the recommendation was derived from.</summary>
internal sealed record MeasuredSummary(
    string Directory,
    string Device,
    bool Direct,
    double FdatasyncP50Micros,
    double FdatasyncP99Micros,
    double BestMiBPerSecond,
    double FallocatedCyclesPerSecond,
    double PreZeroedCyclesPerSecond);

/// <summary>Turns the measurements into settings, each with the reason it was chosen.</summary>
internal static class Recommender
{
    private const long MiB = 1024 * 1024;

    public static ProbeReport Recommend(
        string directory, BlockDevice device, bool direct, Percentiles sync, IReadOnlyList<ThroughputResult> throughput,
        CycleResult fallocated, CycleResult preZeroed)
    {
        var reasons = new List<string>();
        var best = throughput.MaxBy(t => t.MiBPerSecond)!;
        double bestBytesPerSecond = best.MiBPerSecond * MiB;

        // Flush policy. GroupCommit adds no delay at all; it batches by itself under load (every append that
        // arrives during a sync joins the next one). Debouncing only pays when a sync is expensive enough that
        // saving syncs matters more than the added wait, so it is suggested above 2 ms per fdatasync.
        string policy = "GroupCommit";
        double? delayMs = null;
        long? pendingMax = null;
        if (sync.P50 > 2000)
        {
            policy = "Debounced";
            delayMs = Math.Round(Math.Clamp(sync.P50 / 2 / 1000, 0.5, 20), 1);
            pendingMax = Math.Clamp(RoundUpPow2((long)(bestBytesPerSecond * delayMs.Value / 1000)), 64 * 1024, 8 * MiB);
            reasons.Add($"FlushPolicy Debounced({delayMs} ms, {pendingMax} B): fdatasync p50 is {sync.P50:F0} µs, so each sync is costly; " +
                        "waiting up to half a sync for more appends to join trims sync count when appends trickle in. Keep GroupCommit if latency matters more than sync count.");
        }
        else
        {
            reasons.Add($"FlushPolicy GroupCommit: fdatasync p50 is {sync.P50:F0} µs (p99 {sync.P99:F0} µs); group commit adds no delay and batches " +
                        "whatever arrives during a sync into the next one, so a debounce would only add latency here.");
        }

        // Chunk size: the unit of out-of-order dispatch. The smallest block size that reaches 90% of the best
        // throughput measured, because a bigger chunk holds more memory per log and delays the first write of a burst.
        double target = 0.9 * best.MiBPerSecond;
        var smallest = throughput.Where(t => t.MiBPerSecond >= target).MinBy(t => t.BlockSize)!;
        int chunk = (int)Math.Clamp(smallest.BlockSize, 64 * 1024, MiB);
        reasons.Add($"ChunkSize {chunk / 1024} KiB: {smallest.BlockSize / 1024} KiB writes at {smallest.Threads} thread(s) reach {smallest.MiBPerSecond:F0} MiB/s, " +
                    $"≥ 90% of the best cell ({best.BlockSize / 1024} KiB × {best.Threads}: {best.MiBPerSecond:F0} MiB/s); kept within [64 KiB, 1 MiB].");
        if (int.TryParse(device.Get("max_sectors_kb"), out int maxSectorsKb) && maxSectorsKb * 1024 < chunk)
        {
            reasons.Add($"  note: the device splits requests above max_sectors_kb = {maxSectorsKb} KiB.");
        }

        // Preallocation: the minimum step covers ~20 ms of writing at full speed, the maximum ~250 ms, so a busy
        // log reserves at most a few times a second and an idle one does not hold a large reserve.
        long minStep = Math.Clamp(RoundUpPow2((long)(bestBytesPerSecond * 0.02)), MiB, 16 * MiB);
        long maxStep = Math.Clamp(RoundUpPow2((long)(bestBytesPerSecond * 0.25)), minStep, 64 * MiB);
        reasons.Add($"PreallocationMinimumStep {minStep / MiB} MiB, PreallocationMaximumStep {maxStep / MiB} MiB: ~20 ms and ~250 ms of writing at " +
                    $"{best.MiBPerSecond:F0} MiB/s (powers of two, within [1 MiB, 16 MiB] and up to 64 MiB).");
        // p50 rather than cycles/s: a few multi-millisecond stalls from other users of the disk move the rate a lot
        // and the median little.
        double gain = fallocated.Cycle.P50 / Math.Max(1, preZeroed.Cycle.P50);
        string pair = $"{fallocated.WriteSize / 1024} KiB write+fdatasync p50 {preZeroed.Cycle.P50:F0} µs into pre-zeroed space vs {fallocated.Cycle.P50:F0} µs into " +
                      $"fallocated space ({preZeroed.CyclesPerSecond:F0}/s vs {fallocated.CyclesPerSecond:F0}/s)";
        reasons.Add(gain >= 1.15
            ? $"Zero-filled preallocation pays here: {pair}, {gain:F2}× faster, because each sync into unwritten extents also commits their conversion. AppendLog zero-fills under O_DIRECT."
            : $"Zero-filling shows no clear gain here: {pair}, {gain:F2}×; AppendLog's zero-fill then only costs one sequential write per step.");

        string directIo = direct ? "Required" : "Disabled";
        reasons.Add(direct
            ? "DirectIo Required: O_DIRECT works in this directory; Required makes a move to a file system without it fail loudly instead of falling back."
            : "DirectIo Disabled: this file system refuses O_DIRECT; buffered writes + fdatasync keep the same durability contract.");

        var measured = new MeasuredSummary(directory, device.DeviceName ?? device.Source, direct, sync.P50, sync.P99, best.MiBPerSecond,
            fallocated.CyclesPerSecond, preZeroed.CyclesPerSecond);
        var settings = new AppendLogSettings(policy, delayMs, pendingMax, chunk, minStep, maxStep, directIo);
        return new ProbeReport(settings, reasons, KernelSuggestions(device), measured);
    }

    /// <summary>Printed only: each needs root, and each affects every user of the device.</summary>
    private static List<string> KernelSuggestions(BlockDevice device)
    {
        var list = new List<string>();
        if (device.DeviceName is not { } name)
        {
            list.Add("No block device found under this directory: no queue settings to suggest.");
            return list;
        }

        string sys = $"/sys/block/{name}/queue";
        bool rotational = device.Get("rotational") == "1";
        string scheduler = device.Get("scheduler");
        string wanted = rotational ? "mq-deadline" : "none";
        if (scheduler != "n/a" && !scheduler.Contains($"[{wanted}]", StringComparison.Ordinal) && scheduler.Contains(wanted, StringComparison.Ordinal))
        {
            list.Add($"scheduler is '{scheduler}': {(rotational ? "mq-deadline bounds the wait of sync writes behind reads on a disk that seeks" : "none skips scheduling work a fast SSD does not need")}: " +
                     $"echo {wanted} | sudo tee {sys}/scheduler");
        }

        string cache = device.Get("write_cache");
        if (cache == "write through")
        {
            list.Add("write_cache is 'write through': fdatasync sends no cache flush. Safe only if the device truly has no volatile cache " +
                     "(or has power-loss protection); never switch a volatile-cache drive to it to make syncs faster.");
        }
        else if (cache == "write back")
        {
            list.Add("write_cache is 'write back': every fdatasync also flushes the drive's cache, as durability requires. Leave it.");
        }

        if (device.Get("nomerges") is var merges && merges != "0" && merges != "n/a")
        {
            list.Add($"nomerges is {merges}: adjacent chunk writes dispatched out of order are not merged; 0 lets the block layer merge them: echo 0 | sudo tee {sys}/nomerges");
        }

        if (int.TryParse(device.Get("logical_block_size"), out int logical) && logical > 4096)
        {
            list.Add($"logical_block_size is {logical}: O_DIRECT needs that alignment, larger than AppendLog's 4096; use DirectIo Disabled on this device.");
        }

        if (list.Count == 0)
        {
            list.Add("The queue settings already suit an append-only log; nothing to change.");
        }

        return list;
    }

    private static long RoundUpPow2(long value) => value <= 1 ? 1 : (long)BitOperations.RoundUpToPowerOf2((ulong)value);
}

/// <summary>
/// A sample loader: reads the probe's JSON and applies it to a host's <see cref="LogOptions"/>. Copy it into an
/// application, or bind the same "AppendLog" object with Microsoft.Extensions.Configuration instead.
/// </summary>
internal static class RecommendationLoader
{
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }; // readable µ, ×, ≥ in a local file

    public static void Write(ProbeReport report, string path) => File.WriteAllText(path, JsonSerializer.Serialize(report, s_json));

    public static AppendLogSettings Read(string path) =>
        JsonSerializer.Deserialize<ProbeReport>(File.ReadAllText(path), s_json)?.AppendLog
        ?? throw new InvalidDataException($"{path} holds no AppendLog settings");

    /// <summary>
    /// Returns <paramref name="options"/> with the recommended settings. The pool is created here for the sample;
    /// an application creates one pool per process (its budget is the process-wide buffer cap) and shares it.
    /// </summary>
    public static LogOptions Apply(AppendLogSettings settings, LogOptions options, long poolBudgetBytes = LogBufferPool.DefaultBudgetBytes)
    {
        FlushPolicy policy = settings.FlushPolicy switch
        {
            "GroupCommit" => FlushPolicy.GroupCommit,
            "Manual" => FlushPolicy.Manual,
            "Debounced" => FlushPolicy.Debounced(
                TimeSpan.FromMilliseconds(settings.FlushDelayMilliseconds ?? throw new InvalidDataException("Debounced needs FlushDelayMilliseconds")),
                settings.FlushPendingBytesMax ?? throw new InvalidDataException("Debounced needs FlushPendingBytesMax")),
            var other => throw new InvalidDataException($"unknown FlushPolicy '{other}'"),
        };
        return options with
        {
            FlushPolicy = policy,
            DirectIo = Enum.Parse<DirectIoMode>(settings.DirectIo),
            PreallocationMinimumStep = settings.PreallocationMinimumStep,
            PreallocationMaximumStep = settings.PreallocationMaximumStep,
            BufferPool = settings.ChunkSize == LogBufferPool.DefaultChunkSize ? null : new LogBufferPool(poolBudgetBytes, settings.ChunkSize),
        };
    }
}
