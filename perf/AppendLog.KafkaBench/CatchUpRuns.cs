using System.Diagnostics;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaBroker;

namespace AppendLog.KafkaBench;

/// <summary>
/// Consumer catch-up over one partition of <c>--catchup-mib</c>: filled through the broker by a Confluent.Kafka
/// producer, then read from the start three ways, each after a fresh open (cold: AppendLog reads with O_DIRECT, so
/// the page cache does not carry one read over to the next, and the process's shared BatchCache is cleared before
/// each): the library's own <c>ReadBatchesAsync</c> scan, a
/// Confluent.Kafka consumer through the broker, and a raw fetch loop that allocates nothing itself, so that the
/// process's allocation delta over it is the broker's alone.
/// </summary>
internal static class CatchUpRuns
{
    public const string Topic = "catchup";
    public const string LogName = Topic + "-0";

    /// <summary>Fetches before the allocation count starts (buffers grown, pools and caches warm).</summary>
    private const int WarmupFetches = 16;

    private static readonly TimeSpan ConsumeDeadline = TimeSpan.FromMinutes(20);

    public static async Task<long> FillAsync(string dataDirectory, KafkaBenchOptions options)
    {
        await using var broker = await StartBrokerAsync(dataDirectory).ConfigureAwait(false);
        string bootstrap = $"127.0.0.1:{broker.Port}";
        using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).Build())
        {
            await admin.CreateTopicsAsync(
                [new TopicSpecification { Name = Topic, NumPartitions = 1, ReplicationFactor = 1 }]).ConfigureAwait(false);
        }

        long records = (options.CatchupMib << 20) / options.RecordSize;
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrap,
            Acks = Acks.All,
            EnableIdempotence = true,
            LingerMs = 20,
            BatchSize = 1_000_000,
            CompressionType = CompressionType.None,
        };
        long errors = 0;
        using var producer = new ProducerBuilder<Null, byte[]>(config).Build();
        var message = new Message<Null, byte[]> { Value = ProduceRuns.Payload(options.RecordSize) };
        Action<DeliveryReport<Null, byte[]>> onDelivered = r =>
        {
            if (r.Error.IsError)
            {
                Interlocked.Increment(ref errors);
            }
        };
        for (long i = 0; i < records; i++)
        {
            while (true)
            {
                try
                {
                    producer.Produce(Topic, message, onDelivered);
                    break;
                }
                catch (ProduceException<Null, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    producer.Poll(TimeSpan.FromMilliseconds(10));
                }
            }
        }

        if (producer.Flush(TimeSpan.FromMinutes(5)) != 0 || Interlocked.Read(ref errors) != 0)
        {
            throw new InvalidOperationException($"filling the catch-up topic failed ({errors} delivery errors)");
        }

        return records;
    }

    /// <summary>The library's own cold scan: open the partition's log and read every batch.</summary>
    public static async Task<ScanResult> LibraryScanAsync(string dataDirectory)
    {
        BatchCache.Shared.Clear();
        var topics = new LogManagerOptions { RootDirectory = Path.Combine(dataDirectory, "topics") };
        await using var manager = LogManager.Create(topics);
        var log = await manager.GetOrOpenAsync(LogName).ConfigureAwait(false);
        long bytes = 0;
        long batches = 0;
        long end = log.DurableEndOffset;
        long allocatedAtStart = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        await foreach (var batch in log.ReadBatchesAsync(log.StartOffset).ConfigureAwait(false))
        {
            bytes += batch.Bytes.Length;
            batches++;
            if (batch.LastOffset + 1 >= end)
            {
                break;
            }
        }

        double seconds = clock.Elapsed.TotalSeconds;
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedAtStart;
        return new ScanResult("AppendLog ReadBatchesAsync (cold scan)", bytes, batches, end, seconds)
        {
            AllocatedBytes = allocated,
        };
    }

    /// <summary>
    /// The consumer settings each catch-up run uses: librdkafka's defaults (with <c>--fetch-max-mib</c> as
    /// max.partition.fetch.bytes), then what a user tuning for catch-up would set, then the same with the .NET
    /// wrapper told to fill no optional field of each ConsumeResult (its per-message cost is the client's ceiling).
    /// </summary>
    public static IReadOnlyList<ConsumerVariant> ConsumerVariants(KafkaBenchOptions options) =>
    [
        new($"defaults (max.partition.fetch.bytes {options.FetchMaxMib} MiB)", _ => { }),
        new("catch-up settings (max.partition.fetch.bytes 16 MiB, fetch.max.bytes 50 MiB, queued.max.messages.kbytes " +
            "256 MiB, queued.min.messages 1,000,000, fetch.queue.backoff.ms 10, fetch.wait.max.ms 100)", CatchUpSettings),
        new("catch-up settings + consume.result.fields none", c =>
        {
            CatchUpSettings(c);
            c.ConsumeResultFields = "none";
        }),
        new("catch-up settings + consume.result.fields none, assigned at offset 0 rather than BEGINNING", c =>
        {
            CatchUpSettings(c);
            c.ConsumeResultFields = "none";
        })
        {
            // A logical offset assigned before the client knows the partition's leader waits for librdkafka's offset
            // query timer (about 500 ms after the assignment, seen with debug "fetch"); an offset it can fetch at
            // once starts when the metadata arrives.
            StartOffset = new Offset(0),
        },
        new($"client ceiling: Consume() alone over records prefetched during a {PrefetchPause(options).TotalSeconds:F0} s " +
            "pause after the assignment (the previous settings, a local queue that holds the whole partition; not a catch-up time)",
            c =>
            {
                CatchUpSettings(c);
                c.ConsumeResultFields = "none";
                c.QueuedMaxMessagesKbytes = (int)Math.Min(QueuedKilobytesMax, (options.CatchupMib + 64) * 1024);
                c.QueuedMinMessages = QueuedMessagesMax;
            })
        {
            Prefetch = PrefetchPause(options),
        },
    ];

    /// <summary>librdkafka's upper bounds of queued.max.messages.kbytes and queued.min.messages.</summary>
    private const long QueuedKilobytesMax = 2_097_151;
    private const int QueuedMessagesMax = 10_000_000;

    /// <summary>Long enough for the fetcher to queue the partition at 200 MB/s (the raw loop fetches it several times faster).</summary>
    private static TimeSpan PrefetchPause(KafkaBenchOptions options) =>
        TimeSpan.FromSeconds(2 + Math.Ceiling(options.CatchupMib * 1.048576 / 200));

    private static void CatchUpSettings(ConsumerConfig config)
    {
        config.MaxPartitionFetchBytes = 16 << 20;
        config.FetchMaxBytes = 50 << 20; // librdkafka's default, named: the broker caps a response at 55 MiB
        config.QueuedMaxMessagesKbytes = 256 * 1024;
        config.QueuedMinMessages = 1_000_000;
        config.FetchQueueBackoffMs = 10; // default 1,000: a full local queue otherwise pauses fetching for a second
        config.FetchWaitMaxMs = 100;
    }

    /// <summary>A Confluent.Kafka consumer assigned the partition from its start, until it has the last record.</summary>
    public static async Task<ScanResult> ConsumerAsync(
        string dataDirectory, ScanResult scan, KafkaBenchOptions options, ConsumerVariant variant)
    {
        BatchCache.Shared.Clear();
        await using var broker = await StartBrokerAsync(dataDirectory).ConfigureAwait(false);
        var config = new ConsumerConfig
        {
            BootstrapServers = $"127.0.0.1:{broker.Port}",
            GroupId = "catchup-bench",
            EnableAutoCommit = false,
            MaxPartitionFetchBytes = options.FetchMaxMib << 20,
        };
        variant.Configure(config);
        if (Environment.GetEnvironmentVariable("KAFKABENCH_RDKAFKA_DEBUG") is { Length: > 0 } debug)
        {
            config.Debug = debug; // librdkafka's own log on stderr (e.g. "fetch,protocol"): where a consumer's time goes
        }
        return await Task.Run(async () =>
        {
            using var consumer = new ConsumerBuilder<Ignore, Ignore>(config).Build();
            long last = scan.EndOffset - 1;
            var clock = Stopwatch.StartNew();
            consumer.Assign(new TopicPartitionOffset(Topic, 0, variant.StartOffset));
            if (variant.Prefetch > TimeSpan.Zero)
            {
                // librdkafka's fetcher fills the local queue on its own threads meanwhile; only Consume() is timed.
                await Task.Delay(variant.Prefetch).ConfigureAwait(false);
                clock.Restart();
            }

            double? firstRecord = null;
            while (clock.Elapsed < ConsumeDeadline)
            {
                var result = consumer.Consume(TimeSpan.FromSeconds(1));
                if (result is null)
                {
                    continue;
                }

                firstRecord ??= clock.Elapsed.TotalSeconds;
                if (result.Offset.Value >= last)
                {
                    var seconds = clock.Elapsed.TotalSeconds;
                    consumer.Close();
                    return new ScanResult($"Confluent.Kafka consumer → broker, {variant.Label}", scan.Bytes, scan.Batches, scan.EndOffset, seconds)
                    {
                        FirstRecordSeconds = firstRecord,
                    };
                }
            }

            throw new TimeoutException($"the consumer did not reach offset {last} in {ConsumeDeadline}");
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// Raw Fetch v11 requests on one blocking socket with reused buffers (so nothing of the client is allocated),
    /// counting <see cref="GC.GetTotalAllocatedBytes(bool)"/> over all threads after <see cref="WarmupFetches"/>.
    /// </summary>
    public static async Task<RawFetchResult> RawFetchAsync(string dataDirectory, ScanResult scan, KafkaBenchOptions options)
    {
        BatchCache.Shared.Clear();
        await using var broker = await StartBrokerAsync(dataDirectory).ConfigureAwait(false);
        var done = new TaskCompletionSource<RawFetchResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using var client = new RawFetchClient(broker.Port, Topic, options.FetchMaxMib << 20);
                var result = client.CatchUp(scan.EndOffset, WarmupFetches, ConsumeDeadline);
                if (options.AllocTracePasses > 0)
                {
                    // More passes from the start on the same connection (each opens one reader at offset 0).
                    using var sampler = new AllocationSampler();
                    sampler.Start();
                    for (int pass = 0; pass < options.AllocTracePasses; pass++)
                    {
                        var again = client.CatchUp(scan.EndOffset, 0, ConsumeDeadline);
                        Console.Error.WriteLine(
                            $"alloc-trace pass {pass}: {again.AllocatedBytesPerBatch:F0} B per batch over {again.MeasuredBatches} batches");
                    }

                    result = result with { AllocationSamples = sampler.Stop() };
                }

                done.SetResult(result);
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        { IsBackground = true, Name = "raw fetch" };
        thread.Start();
        return await done.Task.ConfigureAwait(false);
    }

    private static Task<KafkaServer> StartBrokerAsync(string dataDirectory) => KafkaServer.StartAsync(new BrokerOptions
    {
        DataDirectory = dataDirectory,
        Port = 0,
        AutoCreateTopics = false,
        Log = Console.Error,
    });
}

/// <summary>A labelled set of consumer settings for one catch-up run.</summary>
internal sealed record ConsumerVariant(string Label, Action<ConsumerConfig> Configure)
{
    /// <summary>When positive, the wait after the assignment before Consume() is called and the clock starts.</summary>
    public TimeSpan Prefetch { get; init; }

    /// <summary>Where the partition is assigned: BEGINNING, or the stored start (0) named outright.</summary>
    public Offset StartOffset { get; init; } = Offset.Beginning;
}

/// <summary>One read of the whole partition.</summary>
internal sealed record ScanResult(string Path, long Bytes, long Batches, long EndOffset, double Seconds)
{
    public double MegabytesPerSecond => Bytes / 1e6 / Seconds;

    /// <summary>
    /// A consumer's time to its first record (connection, metadata, the offset lookup, the first fetch): the rest of
    /// <see cref="Seconds"/> is the steady part.
    /// </summary>
    public double? FirstRecordSeconds { get; init; }

    /// <summary>The rate after the first record (the start-up left out), when known.</summary>
    public double? SteadyMegabytesPerSecond =>
        FirstRecordSeconds is { } first && Seconds > first ? Bytes / 1e6 / (Seconds - first) : null;

    /// <summary>Bytes allocated by the whole process during the library's scan (no broker runs then).</summary>
    public long? AllocatedBytes { get; init; }
}

/// <summary>The raw fetch loop: its rate, and the broker's allocation per fetched batch in steady state.</summary>
internal sealed record RawFetchResult(
    long Bytes, double Seconds, long MeasuredFetches, long MeasuredBatches, long AllocatedBytes)
{
    public double MegabytesPerSecond => Bytes / 1e6 / Seconds;

    public double AllocatedBytesPerBatch => MeasuredBatches == 0 ? double.NaN : (double)AllocatedBytes / MeasuredBatches;

    public double AllocatedBytesPerFetch => MeasuredFetches == 0 ? double.NaN : (double)AllocatedBytes / MeasuredFetches;

    /// <summary>With <c>--alloc-trace</c>: AllocationTick events by type over the extra passes.</summary>
    public IReadOnlyList<AllocationSample>? AllocationSamples { get; init; }
}
