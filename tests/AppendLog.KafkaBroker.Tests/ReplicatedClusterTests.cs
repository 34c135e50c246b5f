using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// Three broker processes, each partition a Raft group with a member on each: an idempotent Confluent.Kafka producer
/// with acks = all keeps producing while the partition's leader is killed with SIGKILL.
/// </summary>
[TestFixture]
public sealed class ReplicatedClusterTests
{
    private const string Topic = "replicated";
    private const int Records = 3000;

    /// <summary>
    /// Every record is acknowledged (the producer's retries reach the new leader), every acknowledged record is
    /// read back from the survivors at the offset its acknowledgement named, in the order produced, and none twice.
    /// </summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task IdempotentProducer_AcrossALeaderSigkill_LosesNothing_AndDuplicatesNothing(CancellationToken cancellationToken)
    {
        string root = Path.Combine(Path.GetTempPath(), "kafka-broker-tests", Guid.NewGuid().ToString("N"));
        var ports = FreePorts(6);
        string cluster = string.Join(',', Enumerable.Range(1, 3).Select(n =>
            string.Create(CultureInfo.InvariantCulture, $"{n}=127.0.0.1:{ports[n - 1]}:{ports[n + 2]}")));
        var brokers = new Dictionary<int, BrokerProcess>();
        try
        {
            for (int n = 1; n <= 3; n++)
            {
                string[] arguments = ["--node-id", n.ToString(CultureInfo.InvariantCulture), "--cluster", cluster, "--topic", $"{Topic}:1"];
                brokers[n] = await BrokerProcess.StartAsync(Path.Combine(root, $"node-{n}"), arguments, cancellationToken);
            }

            string bootstrap = string.Join(',', brokers.Values.Select(b => b.BootstrapServers));
            var (acknowledged, failed, killed, firstAfterKill) = await ProduceAcrossAKillAsync(bootstrap, brokers, cancellationToken);
            string survivors = string.Join(',', brokers.Where(b => b.Key != killed).Select(b => b.Value.BootstrapServers));
            var stored = ReadAll(survivors, acknowledged.Count, cancellationToken);
            TestContext.Progress.WriteLine(
                $"replicated: {acknowledged.Count} acknowledged, {failed} failed, leader node {killed} killed, " +
                $"first acknowledgement of a record sent after the kill {firstAfterKill.TotalMilliseconds:F0} ms after it, " +
                $"{stored.Count} read back from the survivors");

            Assert.That(failed, Is.Zero, "every record acknowledged: the producer's retries reached the new leader");
            Assert.That(acknowledged, Has.Count.EqualTo(Records));
            Assert.That(stored.Select(s => s.Value), Is.Unique, "no record stored twice");
            Assert.That(stored.Select(s => s.Value), Is.EqualTo(Enumerable.Range(0, Records).Select(i => $"v{i}")), "every record, in the order produced");
            var offsets = stored.ToDictionary(s => s.Value, s => s.Offset);
            Assert.That(acknowledged.Where(a => offsets[a.Value] != a.Offset), Is.Empty, "each record at the offset its acknowledgement named");
        }
        finally
        {
            foreach (var broker in brokers.Values)
            {
                broker.Dispose();
            }

            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // Best effort.
            }
        }
    }

    private static async Task<(List<(string Value, long Offset)> Acknowledged, int Failed, int Killed, TimeSpan FirstAfterKill)> ProduceAcrossAKillAsync(
        string bootstrap, Dictionary<int, BrokerProcess> brokers, CancellationToken cancellationToken)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrap,
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 2,
            MessageTimeoutMs = 60_000,
            RetryBackoffMs = 50,
            TopicMetadataRefreshIntervalMs = 1000,
        };
        var acknowledged = new List<(string Value, long Offset)>();
        int failed = 0;
        long killedAt = 0;
        long firstAfterKill = 0;
        await Task.Yield();
        using var producer = new ProducerBuilder<Null, string>(config).Build();
        int leader = 0;
        for (int i = 0; i < Records; i++)
        {
            bool afterKill = killedAt != 0;
            producer.Produce(Topic, new Message<Null, string> { Value = $"v{i}" }, report =>
            {
                lock (acknowledged)
                {
                    if (report.Error.IsError)
                    {
                        failed++;
                        return;
                    }

                    acknowledged.Add((report.Message.Value, report.Offset.Value));
                    if (afterKill && firstAfterKill == 0)
                    {
                        firstAfterKill = Stopwatch.GetTimestamp();
                    }
                }
            });
            if (i % 20 != 19)
            {
                continue;
            }

            // A steady stream, so that batches are in flight (sent, maybe committed, not yet acknowledged) at the kill.
            await Task.Delay(5, cancellationToken);
            int acknowledgedNow;
            lock (acknowledged)
            {
                acknowledgedNow = acknowledged.Count;
            }

            if (leader == 0 && acknowledgedNow > 0)
            {
                leader = LeaderOf(producer, bootstrap);
            }

            if (killedAt == 0 && acknowledgedNow >= Records / 3)
            {
                await brokers[leader].KillAsync(cancellationToken);
                killedAt = Stopwatch.GetTimestamp();
                TestContext.Progress.WriteLine($"killed leader node {leader} with {i + 1 - acknowledgedNow} records unacknowledged");
            }
        }

        producer.Flush(cancellationToken);
        Assert.That(killedAt, Is.Not.Zero, "the leader was killed while the producer was sending");
        return (acknowledged, failed, leader, Stopwatch.GetElapsedTime(killedAt, firstAfterKill));
    }

    /// <summary>The partition's leader in the metadata the cluster gives now (retried while an election runs).</summary>
    private static int LeaderOf(IProducer<Null, string> producer, string bootstrap)
    {
        using var admin = new DependentAdminClientBuilder(producer.Handle).Build();
        for (int attempt = 0; attempt < 100; attempt++)
        {
            var metadata = admin.GetMetadata(Topic, TimeSpan.FromSeconds(5));
            int leader = metadata.Topics[0].Partitions[0].Leader;
            if (leader > 0)
            {
                return leader;
            }

            Thread.Yield();
        }

        throw new InvalidOperationException($"no leader for {Topic} at {bootstrap}");
    }

    private static List<(string Value, long Offset)> ReadAll(string bootstrap, int count, CancellationToken cancellationToken)
    {
        var config = new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "replicated-reader", EnableAutoCommit = false };
        using var consumer = new ConsumerBuilder<Ignore, string>(config).Build();
        consumer.Assign(new TopicPartitionOffset(Topic, 0, Offset.Beginning));
        var stored = new List<(string Value, long Offset)>();
        while (stored.Count < count)
        {
            var result = consumer.Consume(cancellationToken);
            stored.Add((result.Message.Value, result.Offset.Value));
        }

        // Anything beyond the acknowledged records would be a duplicate: look a little further.
        while (consumer.Consume(TimeSpan.FromSeconds(1)) is { } extra)
        {
            stored.Add((extra.Message.Value, extra.Offset.Value));
        }

        consumer.Close();
        return stored;
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToArray();
        foreach (var listener in listeners)
        {
            listener.Start();
        }

        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        foreach (var listener in listeners)
        {
            listener.Stop();
        }

        return ports;
    }
}
