using System.Diagnostics;
using System.Diagnostics.Metrics;
using AppendLog.LoadGen.Measurement;
using HdrHistogram;

namespace AppendLog.KafkaBench;

/// <summary>
/// Listens to the in-process broker's instruments (the <c>KafkaBroker</c> meter) during a run's measured window: the
/// time from each Produce request's arrival to its answer being sent, and the partitions per request. Beside the
/// client's latency this shows how much of it the broker accounts for; the rest is the client's (librdkafka queues a
/// record until one of its at most 5 in-flight requests per connection, with idempotence, is free).
/// </summary>
internal sealed class BrokerObserver : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Recorder _produce = LatencyHistograms.CreateRecorder();
    private RunWindow? _window;
    private long _requests;
    private long _partitions;

    public BrokerObserver()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "KafkaBroker"
                && instrument.Name is "kafka.broker.request.duration" or "kafka.broker.produce.partitions")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<double>(OnDuration);
        _listener.SetMeasurementEventCallback<int>(OnPartitions);
        _listener.Start();
    }

    /// <summary>The run whose measured window is observed (set when its window is created).</summary>
    public RunWindow? Window
    {
        get => Volatile.Read(ref _window);
        set => Volatile.Write(ref _window, value);
    }

    public BrokerSide Result()
    {
        long requests = Interlocked.Read(ref _requests);
        return new BrokerSide(
            requests,
            requests == 0 ? 0 : (double)Interlocked.Read(ref _partitions) / requests,
            LatencySummary.From(_produce.GetIntervalHistogram()));
    }

    public void Dispose() => _listener.Dispose();

    private void OnDuration(Instrument instrument, double seconds, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        if (Window is not { } window || !window.Measures(Stopwatch.GetTimestamp()) || tags.Length == 0 || tags[0].Value is not "Produce")
        {
            return;
        }

        _produce.RecordValue(Math.Max(1, (long)(seconds * 1e6)));
    }

    private void OnPartitions(Instrument instrument, int partitions, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        if (Window is { } window && window.Measures(Stopwatch.GetTimestamp()))
        {
            Interlocked.Increment(ref _requests);
            Interlocked.Add(ref _partitions, partitions);
        }
    }
}

/// <summary>The broker's side of a Kafka produce run: requests answered, partitions per request, request latency.</summary>
internal sealed record BrokerSide(long ProduceRequests, double PartitionsPerRequest, LatencySummary ProduceLatency);
