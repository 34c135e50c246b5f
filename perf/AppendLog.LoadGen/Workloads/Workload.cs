using System.Globalization;

namespace AppendLog.LoadGen.Workloads;

/// <summary>One point of the sweep: an open-loop rate or a closed-loop concurrency, plus the shared shape.</summary>
internal sealed record Workload(
    LoopKind Loop, double? RateMBps, int? Concurrency, int Producers, int Logs, int RecordSizeBytes,
    ProducerMode Mode = ProducerMode.Dedicated)
{
    public string Title => Loop == LoopKind.Open
        ? string.Create(CultureInfo.InvariantCulture,
            $"open loop {RateMBps} MB/s, {ModeText} ({Logs} log(s), {RecordSizeBytes} B records)")
        : string.Create(CultureInfo.InvariantCulture,
            $"closed loop, {Concurrency} appender(s) ({Logs} log(s), {RecordSizeBytes} B records)");

    /// <summary>A file-name-safe label, used for the run directories.</summary>
    private string ModeText => Mode == ProducerMode.Dedicated
        ? $"dedicated producers ({Producers} threads, nanosleep)"
        : $"pool producers ({Producers} async loops on the thread pool, Task.Delay)";

    public string Slug => Loop == LoopKind.Open
        ? string.Create(CultureInfo.InvariantCulture, $"open-{RateMBps}MBps-{Mode.ToString().ToLowerInvariant()}")
        : string.Create(CultureInfo.InvariantCulture, $"closed-c{Concurrency}");

    public static IReadOnlyList<Workload> From(LoadGenOptions options) => options.Loop == LoopKind.Open
        ? options.RatesMBps.SelectMany(r => options.ProducerModes.Select(m => new Workload(
            LoopKind.Open, r, null, options.Producers, options.Logs, options.RecordSizeBytes, m))).ToList()
        : options.Concurrencies.Select(c => new Workload(
            LoopKind.Closed, null, c, c, options.Logs, options.RecordSizeBytes)).ToList();
}
