using System.Diagnostics;
using Confluent.Kafka;

namespace AppendLog.KafkaBench;

/// <summary>
/// Closed loops with the same shape on both sides: <c>inflight</c> slots, slot <i>i</i> always writes to partition
/// (log) <i>i</i> mod <c>partitions</c>, and a slot sends its next record as soon as its previous one is durable.
/// </summary>
internal static class ProduceRuns
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A Confluent.Kafka producer with <c>acks=all</c> and idempotence on; latency runs from the call to
    /// <c>Produce</c> to the record's delivery report (the broker answers a produce only once it is durable).
    /// </summary>
    public static async Task<ProduceResult> KafkaAsync(
        string bootstrapServers, string topic, int partitions, KafkaBenchOptions options, BrokerObserver? observer = null)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = options.Idempotence,
            LingerMs = options.LingerMs,
            SocketNagleDisable = true,
            CompressionType = CompressionType.None,
        };
        using var producer = new ProducerBuilder<Null, byte[]>(config).Build();
        var window = new RunWindow(options.Warmup, options.Duration);
        observer?.Window = window;
        var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int running = options.Inflight;
        var payload = Payload(options.RecordSize);
        var slots = Enumerable.Range(0, options.Inflight)
            .Select(i => new KafkaSlot(producer, new TopicPartition(topic, i % partitions), payload, window, () =>
            {
                if (Interlocked.Decrement(ref running) == 0)
                {
                    drained.TrySetResult();
                }
            }))
            .ToArray();
        foreach (var slot in slots)
        {
            slot.Send();
        }

        bool complete = await WaitDrainedAsync(drained.Task, options).ConfigureAwait(false);
        return window.Result("Confluent.Kafka → broker", partitions, options.Inflight, complete) with { Broker = observer?.Result() };
    }

    /// <summary>AppendLog's own API: <c>AppendAsync</c> of one record, completing when durable.</summary>
    public static async Task<ProduceResult> LibraryAsync(string directory, int partitions, KafkaBenchOptions options)
    {
        await using var manager = LogManager.Create(new LogManagerOptions { RootDirectory = directory });
        var logs = new SegmentedLog[partitions];
        for (int i = 0; i < partitions; i++)
        {
            logs[i] = await manager.GetOrOpenAsync($"log-{i}").ConfigureAwait(false);
        }

        var payload = Payload(options.RecordSize);
        var window = new RunWindow(options.Warmup, options.Duration);
        var slots = Enumerable.Range(0, options.Inflight)
            .Select(i => Task.Run(() => LibrarySlotAsync(logs[i % partitions], payload, window)))
            .ToArray();
        bool complete = await WaitDrainedAsync(Task.WhenAll(slots), options).ConfigureAwait(false);
        return window.Result("AppendLog AppendAsync", partitions, options.Inflight, complete);
    }

    private static async Task LibrarySlotAsync(SegmentedLog log, ReadOnlyMemory<byte> payload, RunWindow window)
    {
        while (true)
        {
            long sent = Stopwatch.GetTimestamp();
            if (window.Ended(sent))
            {
                return;
            }

            try
            {
                await log.AppendAsync(payload).ConfigureAwait(false);
                window.Acknowledged(sent, Stopwatch.GetTimestamp());
            }
            catch (Exception e) when (e is LogFaultedException or LogDiskFullException)
            {
                window.Failed();
                return;
            }
        }
    }

    private static async Task<bool> WaitDrainedAsync(Task drained, KafkaBenchOptions options)
    {
        var limit = TimeSpan.FromSeconds(options.Warmup + options.Duration) + DrainTimeout;
        return await Task.WhenAny(drained, Task.Delay(limit)).ConfigureAwait(false) == drained;
    }

    /// <summary>Record values that do not compress to nothing (the producer sends them uncompressed anyway).</summary>
    public static byte[] Payload(int size)
    {
        var payload = new byte[size];
        new Random(1).NextBytes(payload);
        return payload;
    }

    /// <summary>
    /// One in-flight record at a time: the delivery report (on librdkafka's poll thread) records the latency and
    /// sends the slot's next record. The message is reused: <c>Produce</c> copies the value before it returns.
    /// </summary>
    private sealed class KafkaSlot
    {
        private readonly IProducer<Null, byte[]> _producer;
        private readonly TopicPartition _partition;
        private readonly Message<Null, byte[]> _message;
        private readonly RunWindow _window;
        private readonly Action _stopped;
        private readonly Action<DeliveryReport<Null, byte[]>> _onDelivered;
        private long _sentTimestamp;

        public KafkaSlot(
            IProducer<Null, byte[]> producer, TopicPartition partition, byte[] payload, RunWindow window, Action stopped)
        {
            _producer = producer;
            _partition = partition;
            _message = new Message<Null, byte[]> { Value = payload };
            _window = window;
            _stopped = stopped;
            _onDelivered = OnDelivered;
        }

        public void Send()
        {
            long now = Stopwatch.GetTimestamp();
            if (_window.Ended(now))
            {
                _stopped();
                return;
            }

            _sentTimestamp = now;
            try
            {
                _producer.Produce(_partition, _message, _onDelivered);
            }
            catch (ProduceException<Null, byte[]>)
            {
                _window.Failed();
                _stopped();
            }
        }

        private void OnDelivered(DeliveryReport<Null, byte[]> report)
        {
            if (report.Error.IsError)
            {
                _window.Failed();
            }
            else
            {
                _window.Acknowledged(_sentTimestamp, Stopwatch.GetTimestamp());
            }

            Send();
        }
    }
}
