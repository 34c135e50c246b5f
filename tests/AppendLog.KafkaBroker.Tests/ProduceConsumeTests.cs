using Confluent.Kafka;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>Librdkafka (Confluent.Kafka) producers and group consumers against the in-process broker.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class ProduceConsumeTests
{
    /// <summary>
    /// Every codec Kafka defines, with idempotence on: the broker stores each producer batch verbatim (it only checks
    /// framing, CRC and sequence) and the consumer decompresses what it fetches, so the values come back intact.
    /// </summary>
    [TestCase(CompressionType.None)]
    [TestCase(CompressionType.Gzip)]
    [TestCase(CompressionType.Snappy)]
    [TestCase(CompressionType.Lz4)]
    [TestCase(CompressionType.Zstd)]
    [CancelAfter(30_000)]
    public async Task IdempotentProducer_EveryCodec_RecordsComeBackThroughAGroupConsumer(CompressionType codec, CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync();
        const int count = 500;
        var sent = Enumerable.Range(0, count).Select(i => ($"key-{i}", $"value {i} {new string('x', i % 50)}")).ToList();
        var reports = Produce(broker.BootstrapServers, "codec", sent, codec, cancellationToken);

        Assert.That(reports.Select(r => r.Status), Is.All.EqualTo(PersistenceStatus.Persisted));
        var consumed = ConsumeAll(broker.BootstrapServers, "codec", "g-codec", count, cancellationToken);
        TestContext.Progress.WriteLine($"{codec}: produced {sent.Count}, consumed {consumed.Count}");
        Assert.That(consumed.Select(m => (m.Message.Key, m.Message.Value)), Is.EqualTo(sent));
        Assert.That(consumed.Select(m => m.Offset.Value), Is.EqualTo(Enumerable.Range(0, count).Select(i => (long)i)));
    }

    /// <summary>
    /// A consumer commits part way, the broker restarts (flushing and reopening every log, the committed offsets
    /// reloaded from their compacted log), and a new consumer of the same group starts at the committed offset.
    /// </summary>
    [Test]
    [CancelAfter(45_000)]
    public async Task CommittedOffset_SurvivesABrokerRestart_AndTheGroupResumesThere(CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync();
        var sent = Enumerable.Range(0, 100).Select(i => ($"k{i}", $"v{i}")).ToList();
        Produce(broker.BootstrapServers, "resume", sent, CompressionType.Lz4, cancellationToken);

        var first = ConsumeAll(broker.BootstrapServers, "resume", "g-resume", 60, cancellationToken, commitAfter: true);
        Assert.That(first[^1].Offset.Value, Is.EqualTo(59));

        await broker.RestartAsync();

        var rest = ConsumeAll(broker.BootstrapServers, "resume", "g-resume", 40, cancellationToken);
        TestContext.Progress.WriteLine($"before restart: {first.Count} consumed and committed; after: {rest.Count} consumed from {rest[0].Offset}");
        Assert.That(rest.Select(m => m.Offset.Value), Is.EqualTo(Enumerable.Range(60, 40).Select(i => (long)i)));
        Assert.That(rest.Select(m => (m.Message.Key, m.Message.Value)), Is.EqualTo(sent[60..]));
    }

    /// <summary>10,000 records with acks = all, each acknowledged only once durable, all read back after a restart.</summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task AcksAll_TenThousandRecords_AllReadBackAfterARestart(CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync(o => o with { DefaultPartitions = 4 });
        const int count = 10_000;
        var sent = Enumerable.Range(0, count).Select(i => ($"k{i}", $"record {i}")).ToList();
        var reports = Produce(broker.BootstrapServers, "bulk", sent, CompressionType.None, cancellationToken);
        Assert.That(reports.Select(r => r.Status), Is.All.EqualTo(PersistenceStatus.Persisted));

        await broker.RestartAsync();

        var consumed = ConsumeAll(broker.BootstrapServers, "bulk", "g-bulk", count, cancellationToken);
        TestContext.Progress.WriteLine($"acks=all: produced {count}, acknowledged {reports.Count}, read back after restart {consumed.Count}");
        Assert.That(consumed.Select(m => (m.Message.Key, m.Message.Value)), Is.EquivalentTo(sent));
        var byReport = reports.ToDictionary(r => r.Message.Key, r => (r.Partition.Value, r.Offset.Value));
        Assert.That(consumed.All(m => byReport[m.Message.Key] == (m.Partition.Value, m.Offset.Value)), Is.True,
            "every record is read back at the partition and offset its acknowledgement named");
    }

    internal static List<DeliveryResult<string, string>> Produce(
        string bootstrap, string topic, IReadOnlyList<(string Key, string Value)> records, CompressionType codec, CancellationToken cancellationToken)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrap,
            EnableIdempotence = true,
            Acks = Acks.All,
            CompressionType = codec,
            LingerMs = 5,
        };
        var reports = new List<DeliveryResult<string, string>>();
        using var producer = new ProducerBuilder<string, string>(config).Build();
        foreach (var (key, value) in records)
        {
            producer.Produce(topic, new Message<string, string> { Key = key, Value = value }, report =>
            {
                lock (reports)
                {
                    reports.Add(report);
                }
            });
        }

        producer.Flush(cancellationToken);
        return reports;
    }

    internal static List<ConsumeResult<string, string>> ConsumeAll(
        string bootstrap, string topic, string group, int count, CancellationToken cancellationToken, bool commitAfter = false)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = group,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        };
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Subscribe(topic);
        var results = new List<ConsumeResult<string, string>>();
        while (results.Count < count)
        {
            var result = consumer.Consume(cancellationToken);
            if (result is { IsPartitionEOF: false })
            {
                results.Add(result);
            }
        }

        if (commitAfter)
        {
            consumer.Commit(results[^1]);
        }

        consumer.Close();
        return results;
    }
}
