using System.Diagnostics;

namespace AppendLog.LoadGen.Workloads;

/// <summary>
/// The timeline of one run, as <see cref="Stopwatch.GetTimestamp"/> values:
/// [Start, MeasureStart) warm-up, [MeasureStart, MeasureEnd) measured, then acks are collected until at most
/// DrainDeadline. Every wait in a run is bounded by DrainDeadline, so every run ends.
/// </summary>
internal sealed record RunWindow(long Start, long MeasureStart, long MeasureEnd, long DrainDeadline)
{
    /// <summary>Time for producer threads to start before the first intended send.</summary>
    private static readonly TimeSpan s_lead = TimeSpan.FromMilliseconds(50);

    public static RunWindow FromNow(TimeSpan warmup, TimeSpan duration, TimeSpan drainTimeout)
    {
        long start = Stopwatch.GetTimestamp() + ToTicks(s_lead);
        long measureStart = start + ToTicks(warmup);
        long measureEnd = measureStart + ToTicks(duration);
        return new RunWindow(start, measureStart, measureEnd, measureEnd + ToTicks(drainTimeout));
    }

    public bool IsMeasured(long timestamp) => timestamp >= MeasureStart && timestamp < MeasureEnd;

    public static long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    public static async Task SleepUntilAsync(long timestamp)
    {
        TimeSpan remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), timestamp);
        if (remaining > TimeSpan.Zero)
        {
            await Task.Delay(remaining);
        }
    }
}
