using Confluent.Kafka;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class ProduceConsumeTests
{
    [Test]
    [CancelAfter(30_000)]
    public async Task IdempotentProducer_RecordsComeBackThroughAGroupConsumer(CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync();
        const int count = 200;
        var config = new ProducerConfig { BootstrapServers = broker.BootstrapServers, EnableIdempotence = true, Acks = Acks.All, LingerMs = 5 };
        using (var producer = new ProducerBuilder<string, string>(config).Build())
        {
            for (int i = 0; i < count; i++)
            {
                producer.Produce("orders", new Message<string, string> { Key = $"k{i}", Value = $"value {i}" });
            }

            producer.Flush(cancellationToken);
        }

        var consumed = ConsumeAll(broker.BootstrapServers, "orders", "g1", count, cancellationToken);
        Assert.That(consumed.Select(m => m.Message.Value), Is.EqualTo(Enumerable.Range(0, count).Select(i => $"value {i}")));
        Assert.That(consumed.Select(m => m.Offset.Value), Is.EqualTo(Enumerable.Range(0, count).Select(i => (long)i)));
    }

    internal static List<ConsumeResult<string, string>> ConsumeAll(string bootstrap, string topic, string group, int count, CancellationToken cancellationToken)
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

        consumer.Close();
        return results;
    }
}
