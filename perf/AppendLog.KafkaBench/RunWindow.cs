using System.Diagnostics;
using AppendLog.LoadGen.Measurement;
using HdrHistogram;

namespace AppendLog.KafkaBench;

/// <summary>
/// The measured window of one closed-loop run: <c>warmup</c> seconds unmeasured, then <c>duration</c> seconds.
/// Latency (acknowledgement − send, in µs) is recorded for sends inside the window, including acknowledgements that
/// arrive after it; throughput counts acknowledgements that arrive inside it. Thread-safe: acknowledgements complete
/// on any thread.
/// </summary>
internal sealed class RunWindow
{
    private readonly long _startTimestamp;
    private readonly long _endTimestamp;
    private readonly Recorder _latency = LatencyHistograms.CreateRecorder();
    private long _acksInWindow;
    private long _errors;

    public RunWindow(double warmupSeconds, double durationSeconds)
    {
        long now = Stopwatch.GetTimestamp();
        _startTimestamp = now + (long)(warmupSeconds * Stopwatch.Frequency);
        _endTimestamp = _startTimestamp + (long)(durationSeconds * Stopwatch.Frequency);
        DurationSeconds = durationSeconds;
    }

    public double DurationSeconds { get; }

    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>True inside the measured window.</summary>
    public bool Measures(long timestamp) => timestamp >= _startTimestamp && timestamp < _endTimestamp;

    /// <summary>True once the window is over: a slot sends nothing more.</summary>
    public bool Ended(long timestamp) => timestamp >= _endTimestamp;

    public void Acknowledged(long sentTimestamp, long ackTimestamp)
    {
        if (sentTimestamp >= _startTimestamp && sentTimestamp < _endTimestamp)
        {
            _latency.RecordValue(LatencyHistograms.ToMicros(sentTimestamp, ackTimestamp, out _));
        }

        if (ackTimestamp >= _startTimestamp && ackTimestamp < _endTimestamp)
        {
            Interlocked.Increment(ref _acksInWindow);
        }
    }

    public void Failed() => Interlocked.Increment(ref _errors);

    public ProduceResult Result(string engine, int partitions, int inflight, bool complete) => new(
        engine,
        partitions,
        inflight,
        Interlocked.Read(ref _acksInWindow) / DurationSeconds,
        LatencySummary.From(_latency.GetIntervalHistogram()),
        Errors,
        complete);
}

/// <summary>One engine's figures at one partition count.</summary>
internal sealed record ProduceResult(
    string Engine, int Partitions, int Inflight, double DurableRecordsPerSecond, LatencySummary Latency, long Errors,
    bool Complete)
{
    /// <summary>The in-process broker's side of a Kafka run (null for the library, or brokers in other processes).</summary>
    public BrokerSide? Broker { get; init; }
}
