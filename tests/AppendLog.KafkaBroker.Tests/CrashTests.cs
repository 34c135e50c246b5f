using Confluent.Kafka;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>The broker process killed with SIGKILL while a producer is sending.</summary>
[TestFixture]
public sealed class CrashTests
{
    /// <summary>
    /// A producer with acks = all keeps 20,000 records in flight; once 5,000 are acknowledged the broker is killed
    /// with SIGKILL. After a restart every acknowledged record is there, at the partition and offset its
    /// acknowledgement named (an acknowledgement means durable), and no record is there twice.
    /// </summary>
    [Test]
    [CancelAfter(90_000)]
    public async Task AcksAll_EveryAcknowledgedRecord_SurvivesASigkillOfTheBroker(CancellationToken cancellationToken)
    {
        string directory = Path.Combine(Path.GetTempPath(), "kafka-broker-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var acknowledged = await ProduceUntilKilledAsync(directory, cancellationToken);

            using var broker = await BrokerProcess.StartAsync(directory, cancellationToken);
            var stored = ReadEverything(broker.BootstrapServers, "crash", cancellationToken);
            TestContext.Progress.WriteLine(
                $"SIGKILL: {acknowledged.Count} acknowledged before the kill, {stored.Count} stored after the restart");

            Assert.That(acknowledged, Has.Count.GreaterThanOrEqualTo(5000));
            Assert.That(stored.Select(s => s.Key), Is.Unique, "no record stored twice");
            var storedByKey = stored.ToDictionary(s => s.Key, s => s.Position);
            Assert.That(acknowledged.Where(a => !storedByKey.ContainsKey(a.Key)), Is.Empty, "acknowledged records lost");
            Assert.That(acknowledged.Where(a => storedByKey[a.Key] != a.Position), Is.Empty, "records moved");
        }
        finally
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
                // Best effort.
            }
        }
    }

    private static async Task<List<(string Key, (int, long) Position)>> ProduceUntilKilledAsync(
        string directory, CancellationToken cancellationToken)
    {
        var acknowledged = new List<(string Key, (int, long) Position)>();
        using var broker = await BrokerProcess.StartAsync(directory, cancellationToken);
        var config = new ProducerConfig
        {
            BootstrapServers = broker.BootstrapServers,
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 2,
            BatchNumMessages = 200,
            MessageTimeoutMs = 3000,
        };
        using var producer = new ProducerBuilder<string, string>(config).Build();
        for (int i = 0; i < 20_000; i++)
        {
            producer.Produce("crash", new Message<string, string> { Key = $"k{i}", Value = $"v{i}" }, report =>
            {
                if (report.Status == PersistenceStatus.Persisted)
                {
                    lock (acknowledged)
                    {
                        acknowledged.Add((report.Message.Key, (report.Partition.Value, report.Offset.Value)));
                    }
                }
            });
        }

        while (Count(acknowledged) < 5000)
        {
            await Task.Delay(5, cancellationToken);
        }

        await broker.KillAsync(cancellationToken);
        producer.Flush(TimeSpan.FromSeconds(10)); // the rest fail: message.timeout.ms passes with no broker
        lock (acknowledged)
        {
            return [.. acknowledged];
        }
    }

    private static List<(string Key, (int, long) Position)> ReadEverything(string bootstrap, string topic, CancellationToken cancellationToken)
    {
        var config = new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "check", EnablePartitionEof = true };
        using var consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        var stored = new List<(string Key, (int, long) Position)>();
        while (consumer.Consume(cancellationToken) is { IsPartitionEOF: false } result)
        {
            stored.Add((result.Message.Key, (result.Partition.Value, result.Offset.Value)));
        }

        return stored;
    }

    private static int Count(List<(string, (int, long))> list)
    {
        lock (list)
        {
            return list.Count;
        }
    }
}
