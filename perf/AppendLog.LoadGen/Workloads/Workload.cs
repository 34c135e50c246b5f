using System.Globalization;

namespace AppendLog.LoadGen.Workloads;

/// <summary>One point of the sweep: an open-loop rate or a closed-loop concurrency, plus the shared shape.</summary>
internal sealed record Workload(
    LoopKind Loop, double? RateMBps, int? Concurrency, int Producers, int Logs, int RecordSizeBytes)
{
    public string Title => Loop == LoopKind.Open
        ? string.Create(CultureInfo.InvariantCulture,
            $"open loop {RateMBps} MB/s ({Producers} producers, {Logs} log(s), {RecordSizeBytes} B records)")
        : string.Create(CultureInfo.InvariantCulture,
            $"closed loop, {Concurrency} appender(s) ({Logs} log(s), {RecordSizeBytes} B records)");

    /// <summary>A file-name-safe label, used for the run directories.</summary>
    public string Slug => Loop == LoopKind.Open
        ? string.Create(CultureInfo.InvariantCulture, $"open-{RateMBps}MBps")
        : string.Create(CultureInfo.InvariantCulture, $"closed-c{Concurrency}");

    public static IReadOnlyList<Workload> From(LoadGenOptions options) => options.Loop == LoopKind.Open
        ? options.RatesMBps.Select(r => new Workload(
            LoopKind.Open, r, null, options.Producers, options.Logs, options.RecordSizeBytes)).ToList()
        : options.Concurrencies.Select(c => new Workload(
            LoopKind.Closed, null, c, c, options.Logs, options.RecordSizeBytes)).ToList();
}
