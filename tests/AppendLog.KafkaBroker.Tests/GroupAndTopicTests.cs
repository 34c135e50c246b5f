using Confluent.Kafka;
using Confluent.Kafka.Admin;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>Consumer-group rebalancing between real consumers, and topic creation rules.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class GroupAndTopicTests
{
    /// <summary>
    /// Two consumers of one group split a two-partition topic (JoinGroup, SyncGroup, Heartbeat answering
    /// REBALANCE_IN_PROGRESS to the first member); when one leaves (LeaveGroup), the other is given both partitions.
    /// </summary>
    [Test]
    [CancelAfter(45_000)]
    public async Task TwoConsumers_SplitThePartitions_AndTheSurvivorTakesAllWhenOneLeaves(CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync();
        using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            await admin.CreateTopicsAsync([new TopicSpecification { Name = "split", NumPartitions = 2, ReplicationFactor = 1 }]);
        }

        var config = new ConsumerConfig
        {
            BootstrapServers = broker.BootstrapServers,
            GroupId = "g-split",
            SessionTimeoutMs = 6000,
            HeartbeatIntervalMs = 200,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.Range,
        };
        using var first = new ConsumerBuilder<Ignore, Ignore>(config).Build();
        using var second = new ConsumerBuilder<Ignore, Ignore>(config).Build();
        first.Subscribe("split");
        second.Subscribe("split");

        PollUntil(() => first.Assignment.Count == 1 && second.Assignment.Count == 1, cancellationToken, first, second);
        Assert.That(first.Assignment.Concat(second.Assignment).Select(p => p.Partition.Value).Order(), Is.EqualTo(new[] { 0, 1 }));

        second.Close();
        PollUntil(() => first.Assignment.Count == 2, cancellationToken, first);
        Assert.That(first.Assignment.Select(p => p.Partition.Value).Order(), Is.EqualTo(new[] { 0, 1 }));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task CreateTopics_RefusesADuplicateAndAReplicationFactorAboveOne(CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync();
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "once", NumPartitions = 3, ReplicationFactor = 1 }]);

        var duplicate = Assert.ThrowsAsync<CreateTopicsException>(() =>
            admin.CreateTopicsAsync([new TopicSpecification { Name = "once", NumPartitions = 1, ReplicationFactor = 1 }]));
        var replicated = Assert.ThrowsAsync<CreateTopicsException>(() =>
            admin.CreateTopicsAsync([new TopicSpecification { Name = "replicated", NumPartitions = 1, ReplicationFactor = 3 }]));
        var metadata = admin.GetMetadata("once", TimeSpan.FromSeconds(10));

        Assert.That(duplicate!.Results[0].Error.Code, Is.EqualTo(ErrorCode.TopicAlreadyExists));
        Assert.That(replicated!.Results[0].Error.Code, Is.EqualTo(ErrorCode.InvalidReplicationFactor));
        Assert.That(metadata.Topics.Single().Partitions, Has.Count.EqualTo(3));
        Assert.That(metadata.Topics.Single().Partitions.Select(p => p.Leader), Is.All.EqualTo(0));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task AutoCreateOff_MetadataForAMissingTopicIsUnknownTopic(CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync(o => o with { AutoCreateTopics = false });
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();

        var metadata = admin.GetMetadata("missing", TimeSpan.FromSeconds(10));

        Assert.That(metadata.Topics.Single().Error.Code, Is.EqualTo(ErrorCode.UnknownTopicOrPart));
        Assert.That(Directory.GetDirectories(Path.Combine(broker.DataDirectory, "topics")), Is.Empty);
    }

    private static void PollUntil(Func<bool> condition, CancellationToken cancellationToken, params IConsumer<Ignore, Ignore>[] consumers)
    {
        while (!condition())
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (var consumer in consumers)
            {
                consumer.Consume(TimeSpan.FromMilliseconds(50));
            }
        }
    }
}
