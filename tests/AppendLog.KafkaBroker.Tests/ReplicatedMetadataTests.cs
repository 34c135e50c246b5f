using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaBroker;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// A replicated cluster of three brokers hosted in the test process: what Metadata says, who accepts a produce,
/// what is refused. (The SIGKILL of a leader is <see cref="ReplicatedClusterTests"/>, with processes.)
/// </summary>
[TestFixture]
public sealed class ReplicatedMetadataTests
{
    private const short Produce = 0;
    private const short Fetch = 1;
    private const short InitProducerId = 22;
    private const short None = 0;
    private const short NotLeaderOrFollower = 6;
    private const short PolicyViolation = 44;

    [Test]
    [CancelAfter(60_000)]
    public async Task MetadataNamesTheRaftLeader_WhichAloneAcceptsAProduce_AndEveryReplicaServesTheRecord(CancellationToken cancellationToken)
    {
        await using var cluster = await Cluster.StartAsync(cancellationToken);
        int leader = await cluster.WaitForLeaderAsync(cancellationToken);
        var batch = RawKafkaClient.Batch(-1, -1, -1, "replicated");

        var answers = new Dictionary<int, (short Error, long BaseOffset)>();
        foreach (var (nodeId, bootstrap) in cluster.Bootstraps)
        {
            await using var client = await RawKafkaClient.ConnectAsync(bootstrap, cancellationToken);
            var response = await client.SendAsync(Produce, 7, RawKafkaClient.ProduceBody("t", 0, batch), cancellationToken);
            answers[nodeId] = RawKafkaClient.ParseProduce(response!);
        }

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.Bootstraps[1] }).Build();
        var metadata = admin.GetMetadata("t", TimeSpan.FromSeconds(10));
        Assert.That(metadata.Brokers.Select(b => (b.BrokerId, $"{b.Host}:{b.Port}")), Is.EquivalentTo(cluster.Bootstraps.Select(b => (b.Key, b.Value))));
        Assert.That(metadata.Topics[0].Partitions[0].Replicas, Is.EquivalentTo(new[] { 1, 2, 3 }));
        Assert.That(answers[leader], Is.EqualTo((None, 0L)), "the leader named by Metadata accepts");
        Assert.That(answers.Where(a => a.Key != leader).Select(a => a.Value.Error), Is.All.EqualTo(NotLeaderOrFollower), "followers refuse");

        // Every member applies the committed batch to its own local log, at the same offset, and serves it: a fetch
        // sent to each broker directly (a long poll, as a follower learns of the commit with the next heartbeat).
        foreach (var bootstrap in cluster.Bootstraps.Values)
        {
            await using var client = await RawKafkaClient.ConnectAsync(bootstrap, cancellationToken);
            var fetch = new RawKafkaClient.Bytes()
                .Int32(-1).Int32(5000).Int32(1).Int32(1 << 20).Int8(0).Int32(0).Int32(-1)
                .Int32(1).String("t").Int32(1).Int32(0).Int32(-1).Int64(0).Int64(-1).Int32(1 << 20)
                .Int32(0).String("").ToArray();
            var response = (await client.SendAsync(Fetch, 11, fetch, cancellationToken))!;
            int position = 4 + 2 + 4 + 4 + 2 + 1 + 4 + 4; // throttle, error, session, [topics], "t", [partitions], index
            Assert.That(BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(position)), Is.EqualTo(None));
            Assert.That(BinaryPrimitives.ReadInt64BigEndian(response.AsSpan(position + 2)), Is.EqualTo(1), $"high watermark at {bootstrap}");
            position += 2 + 8 + 8 + 8 + 4 + 4;
            Assert.That(BinaryPrimitives.ReadInt32BigEndian(response.AsSpan(position)), Is.EqualTo(batch.Length), $"the batch, served by {bootstrap}");
        }
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task TopicsAreFixed_AndProducerIdsNeverCollideAcrossBrokers(CancellationToken cancellationToken)
    {
        await using var cluster = await Cluster.StartAsync(cancellationToken);
        var producerIds = new List<long>();
        foreach (var bootstrap in cluster.Bootstraps.Values)
        {
            await using var client = await RawKafkaClient.ConnectAsync(bootstrap, cancellationToken);
            for (int i = 0; i < 2; i++)
            {
                var response = (await client.SendAsync(InitProducerId, 1, new RawKafkaClient.Bytes().NullString().Int32(60_000).ToArray(), cancellationToken))!;
                Assert.That(BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(4)), Is.EqualTo(None));
                producerIds.Add(BinaryPrimitives.ReadInt64BigEndian(response.AsSpan(6)));
            }
        }

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.Bootstraps[1] }).Build();
        var create = admin.CreateTopicsAsync([new TopicSpecification { Name = "new", NumPartitions = 1, ReplicationFactor = 3 }]);

        Assert.That(producerIds, Is.Unique);
        var refused = Assert.ThrowsAsync<CreateTopicsException>(async () => await create);
        Assert.That((short)refused!.Results[0].Error.Code, Is.EqualTo(PolicyViolation));
    }

    /// <summary>Three in-process brokers with topic "t" of one partition.</summary>
    private sealed class Cluster : IAsyncDisposable
    {
        private readonly List<KafkaServer> _servers;
        private readonly string _root;

        private Cluster(List<KafkaServer> servers, string root, Dictionary<int, string> bootstraps)
        {
            _servers = servers;
            _root = root;
            Bootstraps = bootstraps;
        }

        public Dictionary<int, string> Bootstraps { get; }

        public static async Task<Cluster> StartAsync(CancellationToken cancellationToken)
        {
            string root = Path.Combine(Path.GetTempPath(), "kafka-broker-tests", Guid.NewGuid().ToString("N"));
            var ports = FreePorts(6);
            var nodes = Enumerable.Range(1, 3).Select(n => new ClusterNode(n, "127.0.0.1", ports[n - 1], ports[n + 2])).ToArray();
            var servers = new List<KafkaServer>();
            foreach (var node in nodes)
            {
                servers.Add(await KafkaServer.StartAsync(
                    new BrokerOptions
                    {
                        DataDirectory = Path.Combine(root, $"node-{node.NodeId}"),
                        Port = node.KafkaPort,
                        NodeId = node.NodeId,
                        Cluster = nodes,
                        ReplicatedTopics = new Dictionary<string, int> { ["t"] = 1 },
                        MaximumBatchSize = 64 * 1024,
                        Log = TestContext.Progress,
                    },
                    cancellationToken));
            }

            return new Cluster(servers, root, nodes.ToDictionary(n => n.NodeId, n => $"127.0.0.1:{n.KafkaPort}"));
        }

        /// <summary>The leader Metadata names, once an election has given one.</summary>
        public async Task<int> WaitForLeaderAsync(CancellationToken cancellationToken)
        {
            using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = Bootstraps[1] }).Build();
            while (true)
            {
                var partition = admin.GetMetadata("t", TimeSpan.FromSeconds(10)).Topics[0].Partitions[0];
                if (partition.Leader > 0)
                {
                    return partition.Leader;
                }

                await Task.Delay(50, cancellationToken);
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var server in _servers)
            {
                await server.DisposeAsync();
            }

            try
            {
                Directory.Delete(_root, recursive: true);
            }
            catch (IOException)
            {
                // Best effort.
            }
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
}
