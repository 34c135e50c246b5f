using System.Diagnostics;
using HdrHistogram;

namespace AppendLog.LoadGen.Measurement;

/// <summary>
/// One shape for every latency histogram: microseconds, 1 µs to 60 s, 3 significant digits (so a value is
/// off by at most 0.1 %). Values above the top are recorded at the top and counted, never dropped.
/// </summary>
internal static class LatencyHistograms
{
    public const long LowestMicros = 1;
    public const long HighestMicros = 60_000_000;
    public const int SignificantDigits = 3;

    public static LongHistogram Create() => new(LowestMicros, HighestMicros, SignificantDigits);

    /// <summary>A recorder takes values from many threads at once (open-loop acks complete anywhere).</summary>
    public static Recorder CreateRecorder() => new(
        LowestMicros, HighestMicros, SignificantDigits,
        static (id, lowest, highest, digits) => new LongHistogram(id, lowest, highest, digits));

    /// <summary>Microseconds between two <see cref="Stopwatch.GetTimestamp"/> values, clamped into range.</summary>
    public static long ToMicros(long fromTimestamp, long toTimestamp, out bool clamped)
    {
        long micros = Stopwatch.GetElapsedTime(fromTimestamp, toTimestamp).Ticks / TimeSpan.TicksPerMicrosecond;
        clamped = micros > HighestMicros;
        return Math.Clamp(micros, LowestMicros, HighestMicros);
    }
}

/// <summary>The figures reported for one run, in microseconds.</summary>
internal sealed record LatencySummary(
    long Count, double MeanMicros, long P50Micros, long P99Micros, long P999Micros, long P9999Micros,
    long P99999Micros, long MaxMicros)
{
    public static LatencySummary From(HistogramBase histogram)
    {
        if (histogram.TotalCount == 0)
        {
            return new LatencySummary(0, 0, 0, 0, 0, 0, 0, 0);
        }
        return new LatencySummary(
            histogram.TotalCount,
            histogram.GetMean(),
            histogram.GetValueAtPercentile(50),
            histogram.GetValueAtPercentile(99),
            histogram.GetValueAtPercentile(99.9),
            histogram.GetValueAtPercentile(99.99),
            histogram.GetValueAtPercentile(99.999),
            histogram.GetMaxValue());
    }
}
