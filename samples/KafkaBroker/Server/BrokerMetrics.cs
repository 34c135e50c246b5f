using System.Diagnostics.Metrics;

namespace KafkaBroker.Server;

/// <summary>
/// The broker's instruments, on the <see cref="MeterName"/> meter (read them with <c>dotnet-counters</c>, an
/// OpenTelemetry exporter or a <see cref="MeterListener"/>, as the Kafka benchmark does). They split a client's
/// latency into the broker's share and the rest: a producer's record waits in the client for a request slot, then in
/// the broker from the request's arrival to its answer.
/// </summary>
internal static class BrokerMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "KafkaBroker";

    private static readonly Meter Meter = new(MeterName);

    /// <summary>
    /// Seconds from a request's size prefix being read to its answer being sent (handling, waiting for durability and
    /// for the earlier answers of the connection, which Kafka sends in order), tagged <c>api</c> with the API's name.
    /// Requests without an answer (Produce with acks = 0) are not recorded.
    /// </summary>
    public static readonly Histogram<double> RequestDuration = Meter.CreateHistogram<double>(
        "kafka.broker.request.duration", "s", "From a request's arrival to its answer sent.");

    /// <summary>The partitions named in one Produce request (its latency is that of its slowest partition).</summary>
    public static readonly Histogram<int> ProducePartitions = Meter.CreateHistogram<int>(
        "kafka.broker.produce.partitions", "{partition}", "Partitions in one Produce request.");
}
