using HdrHistogram;

namespace AppendLog.LoadGen.Workloads;

/// <summary>A running workload against a set of engine instances (one per log).</summary>
internal interface ILoad
{
    void Start();

    /// <summary>Waits until every send of the run is acknowledged, or until the drain deadline.</summary>
    /// <returns>False when the deadline came first.</returns>
    Task<bool> WaitForDrainAsync();

    LoadOutcome Collect();
}

/// <summary>What a load observed, before process-level measurements are added.</summary>
/// <param name="Latency">Merged latency of measured sends, in microseconds.</param>
/// <param name="AckedInWindow">Acks whose time fell inside the measured window.</param>
/// <param name="NotSent">Open loop: intended sends of the window never issued before the drain deadline.</param>
/// <param name="NotAcked">Sends issued but not acknowledged by the drain deadline.</param>
/// <param name="Clamped">Latencies above the histogram's top, recorded at the top.</param>
/// <param name="Failed">Appends that completed with an exception.</param>
/// <param name="FirstError">The first such exception's message.</param>
/// <param name="SendLag">Open loop: actual − intended send time of measured sends, in microseconds.</param>
/// <param name="AppendCall">How long each measured AppendAsync call held its caller before returning, in µs.</param>
internal sealed record LoadOutcome(
    HistogramBase Latency, long AckedInWindow, long NotSent, long NotAcked, long Clamped, long Failed,
    string? FirstError, HistogramBase? SendLag = null, HistogramBase? AppendCall = null);
