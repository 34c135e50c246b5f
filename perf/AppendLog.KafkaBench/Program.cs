using System.Globalization;
using AppendLog.KafkaBench;
using AppendLog.LoadGen.Measurement;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaBroker;
using AppendLog.ReadBench;

// The Kafka broker sample (samples/KafkaBroker) against AppendLog's own API, on the same machine in one run:
// produce (Confluent.Kafka, acks=all) beside AppendAsync at the same load, and consumer catch-up beside the
// library's cold scan, with the broker's allocation per fetched batch. See README.md for the command.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

KafkaBenchOptions options;
try
{
    if (args.Contains("--help") || args.Contains("-h"))
    {
        Console.WriteLine(KafkaBenchOptions.Usage);
        return 0;
    }

    options = KafkaBenchOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(KafkaBenchOptions.Usage);
    return 2;
}

// As LoadGen does: closed-loop slots and librdkafka's callbacks must not wait for the pool to grow.
ThreadPool.SetMinThreads(Math.Max(32, options.Inflight), 32);
Directory.CreateDirectory(options.Directory);
var machine = MachineInfo.Collect(options.Directory, TimeProvider.System);
var report = new Report();
report.Line($"Machine: {machine.HeaderLine}");
report.Line();
report.Line($"Command: `AppendLog.KafkaBench {string.Join(' ', args)}`");
report.Line();
report.Line($"Confluent.Kafka {Library.VersionString} (librdkafka), acks=all, idempotence {(options.Idempotence ? "on" : "off")}, no compression, " +
    $"linger.ms {options.LingerMs}; {options.RecordSize} B records; {options.Inflight} in flight on both sides.");
report.Line();
report.Json["machine"] = machine;
report.Json["options"] = options;
report.Json["librdkafka"] = Library.VersionString;
string runDirectory = Path.Combine(options.Directory, $"kafkabench-{Guid.NewGuid():N}"[..20]);
bool complete = true;
var singleBroker = new List<ProduceResult>();
try
{
    if (!options.SkipProduce)
    {
        complete &= await ProduceAsync();
    }

    if (!options.SkipCatchup)
    {
        await CatchUpAsync();
    }

    if (options.Replicated)
    {
        complete &= await ReplicatedAsync();
    }
}
finally
{
    if (!options.KeepData && Directory.Exists(runDirectory))
    {
        Directory.Delete(runDirectory, recursive: true);
    }
}

report.Save(options.Out);
return complete ? 0 : 1;

async Task<bool> ProduceAsync()
{
    var results = new List<ProduceResult>();
    string brokerDirectory = Path.Combine(runDirectory, "broker");
    await using (var broker = await KafkaServer.StartAsync(new BrokerOptions
    {
        DataDirectory = brokerDirectory,
        Port = 0,
        AutoCreateTopics = false,
        Log = Console.Error,
        MaximumInflightRequestsPerConnection = options.BrokerInflight ?? 16,
    }))
    {
        string bootstrap = $"127.0.0.1:{broker.Port}";
        foreach (int partitions in options.Partitions)
        {
            string topic = $"produce-{partitions}";
            using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).Build())
            {
                await admin.CreateTopicsAsync(
                    [new TopicSpecification { Name = topic, NumPartitions = partitions, ReplicationFactor = 1 }]);
            }

            Console.Error.WriteLine($"produce: {partitions} partition(s), library then Kafka...");
            string libraryDirectory = Path.Combine(runDirectory, $"library-{partitions}");
            results.Add(await ProduceRuns.LibraryAsync(libraryDirectory, partitions, options));
            Directory.Delete(libraryDirectory, recursive: true);
            using var observer = new BrokerObserver();
            results.Add(await ProduceRuns.KafkaAsync(bootstrap, topic, partitions, options, observer));
        }
    }

    report.Line($"## Produce, closed loop: warmup {options.Warmup} s, measured {options.Duration} s");
    report.Line();
    report.Table(
        ["partitions (logs)", "path", "durable records/s", "p50", "p99", "p99.99", "max", "errors", "p99 ÷ library's"],
        results.Select(r =>
        {
            var library = results.First(l => l.Partitions == r.Partitions && l.Engine.StartsWith("AppendLog", StringComparison.Ordinal));
            string ratio = library.Latency.P99Micros == 0 ? "n/a" : Report.F((double)r.Latency.P99Micros / library.Latency.P99Micros, 2) + "×";
            return new[]
            {
                r.Partitions.ToString(CultureInfo.InvariantCulture), r.Engine + (r.Complete ? "" : " (incomplete)"),
                Report.F(r.DurableRecordsPerSecond, 0), Report.Micros(r.Latency.P50Micros), Report.Micros(r.Latency.P99Micros),
                Report.Micros(r.Latency.P9999Micros), Report.Micros(r.Latency.MaxMicros),
                r.Errors.ToString(CultureInfo.InvariantCulture), ratio,
            };
        }));
    var observed = results.Where(r => r.Broker is not null).ToList();
    report.Line("The broker's side of the Kafka runs (its `kafka.broker.request.duration` metric: a Produce request's arrival " +
        "to its answer sent; a request waits for its slowest partition). The client's latency beyond it is spent in the " +
        "client (librdkafka allows 5 requests in flight per connection with idempotence) and on the wire.");
    report.Line();
    report.Table(
        ["partitions", "produce requests", "partitions per request", "broker p50", "broker p99", "broker p99.99", "client p99 ÷ broker p99"],
        observed.Select(r => new[]
        {
            r.Partitions.ToString(CultureInfo.InvariantCulture), r.Broker!.ProduceRequests.ToString("N0", CultureInfo.InvariantCulture),
            Report.F(r.Broker.PartitionsPerRequest, 1), Report.Micros(r.Broker.ProduceLatency.P50Micros),
            Report.Micros(r.Broker.ProduceLatency.P99Micros), Report.Micros(r.Broker.ProduceLatency.P9999Micros),
            r.Broker.ProduceLatency.P99Micros == 0 ? "n/a" : Report.F((double)r.Latency.P99Micros / r.Broker.ProduceLatency.P99Micros, 2) + "×",
        }));
    report.Json["produce"] = results;
    singleBroker.AddRange(results);
    return results.All(r => r.Complete && r.Errors == 0);
}

async Task<bool> ReplicatedAsync()
{
    var (produce, failover) = await ReplicatedRuns.RunAsync(Path.Combine(runDirectory, "replicated"), options);
    report.Line($"## Replicated mode: three broker processes, each partition a Raft group; closed loop, warmup " +
        $"{options.Warmup} s, measured {options.Duration} s");
    report.Line();
    report.Table(
        ["partitions", "path", "durable records/s", "p50", "p99", "p99.99", "max", "errors", "p99 ÷ single broker's"],
        produce.Select(r =>
        {
            var single = singleBroker.FirstOrDefault(s => s.Partitions == r.Partitions && s.Engine.StartsWith("Confluent", StringComparison.Ordinal));
            string ratio = single is null || single.Latency.P99Micros == 0 ? "n/a" : Report.F((double)r.Latency.P99Micros / single.Latency.P99Micros, 2) + "×";
            return new[]
            {
                r.Partitions.ToString(CultureInfo.InvariantCulture), r.Engine + (r.Complete ? "" : " (incomplete)"),
                Report.F(r.DurableRecordsPerSecond, 0), Report.Micros(r.Latency.P50Micros), Report.Micros(r.Latency.P99Micros),
                Report.Micros(r.Latency.P9999Micros), Report.Micros(r.Latency.MaxMicros),
                r.Errors.ToString(CultureInfo.InvariantCulture), ratio,
            };
        }));
    report.Line($"Leader SIGKILL under a steady producer (1,000 records/s, acks=all, idempotent): node {failover.KilledNode} " +
        $"killed; first acknowledgement of a record sent after the kill {Report.F(failover.KillToFirstAckMilliseconds, 0)} ms " +
        $"after it; {failover.Acknowledged:N0} acknowledged, {failover.Errors} delivery errors.");
    report.Line();
    report.Json["replicated"] = new { produce, failover };
    return produce.All(r => r.Complete && r.Errors == 0) && failover.Errors == 0;
}

async Task CatchUpAsync()
{
    string data = Path.Combine(runDirectory, "catchup");
    Console.Error.WriteLine($"catch-up: filling {options.CatchupMib} MiB through the broker...");
    long records = await CatchUpRuns.FillAsync(data, options);
    Console.Error.WriteLine("catch-up: library cold scan, Confluent consumer, raw fetch...");
    var scan = await CatchUpRuns.LibraryScanAsync(data);
    if (scan.EndOffset != records)
    {
        throw new InvalidOperationException($"the partition holds {scan.EndOffset} records, {records} were produced");
    }

    var consumers = new List<ScanResult>();
    foreach (var variant in CatchUpRuns.ConsumerVariants(options))
    {
        consumers.Add(await CatchUpRuns.ConsumerAsync(data, scan, options, variant));
    }

    var raw = await CatchUpRuns.RawFetchAsync(data, scan, options);
    if (raw.Bytes != scan.Bytes)
    {
        throw new InvalidOperationException($"the raw fetch read {raw.Bytes} B, the scan {scan.Bytes} B");
    }

    report.Line($"## Consumer catch-up: {scan.EndOffset:N0} records, {scan.Batches:N0} stored batches, " +
        $"{scan.Bytes / 1e6:N1} MB (each read after a fresh open; fetch partition limit {options.FetchMaxMib} MiB)");
    report.Line();
    report.Table(
        ["path", "seconds", "MB/s", "÷ library's cold scan", "first record after", "MB/s after it"],
        [
            [scan.Path, Report.F(scan.Seconds, 2), Report.F(scan.MegabytesPerSecond, 0), "1.00", "", ""],
            .. consumers.Select(consumer => new[]
            {
                consumer.Path, Report.F(consumer.Seconds, 2), Report.F(consumer.MegabytesPerSecond, 0),
                Report.F(consumer.MegabytesPerSecond / scan.MegabytesPerSecond, 2),
                consumer.FirstRecordSeconds is { } first ? Report.F(first * 1000, 0) + " ms" : "",
                consumer.SteadyMegabytesPerSecond is { } steady ? Report.F(steady, 0) : "",
            }),
            ["raw Fetch v11 loop → broker (no client cost)", Report.F(raw.Seconds, 2), Report.F(raw.MegabytesPerSecond, 0),
                Report.F(raw.MegabytesPerSecond / scan.MegabytesPerSecond, 2), "", ""],
        ]);
    report.Line("The consumer and the broker share the machine's cores (one process); the raw fetch loop is the " +
        "broker's rate without a client's decoding, so the gap between it and the best consumer row is the client's.");
    report.Line();
    report.Line("## Allocation per fetched batch (GC.GetTotalAllocatedBytes(precise: true) deltas, all threads)");
    report.Line();
    report.Line("The broker while serving the raw fetch loop (whose client allocates nothing; its first 16 fetches " +
        "excluded), beside the library's own scan (ReadBatchesAsync alone, no broker running).");
    report.Line();
    long scanAllocated = scan.AllocatedBytes ?? 0;
    report.Table(
        ["reader", "requests", "batches", "allocated", "B per batch", "B per request"],
        [
            ["broker, Fetch v11", raw.MeasuredFetches.ToString("N0", CultureInfo.InvariantCulture),
                raw.MeasuredBatches.ToString("N0", CultureInfo.InvariantCulture), $"{raw.AllocatedBytes:N0} B",
                Report.F(raw.AllocatedBytesPerBatch, 0), Report.F(raw.AllocatedBytesPerFetch, 0)],
            ["library, ReadBatchesAsync", "1", scan.Batches.ToString("N0", CultureInfo.InvariantCulture),
                $"{scanAllocated:N0} B", Report.F((double)scanAllocated / scan.Batches, 0), "n/a"],
        ]);
    if (raw.AllocationSamples is { } samples)
    {
        long sampled = samples.Sum(s => s.Bytes);
        report.Line($"Allocations by type over {options.AllocTracePasses} more raw-fetch passes (the runtime's GC " +
            $"AllocationTick event, one about every 100 KB allocated, its amount summed by the type named: {sampled:N0} B):");
        report.Line();
        report.Table(
            ["type", "bytes (estimate)", "share"],
            samples.Take(20).Select(s => new[]
            {
                $"`{s.Type}`", s.Bytes.ToString("N0", CultureInfo.InvariantCulture), Report.F(100.0 * s.Bytes / sampled, 1) + " %",
            }));
    }

    report.Json["catchUp"] = new { scan, consumers, rawFetch = raw };
}
