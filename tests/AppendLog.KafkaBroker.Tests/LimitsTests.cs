using System.Buffers.Binary;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaBroker;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// The broker's limits against a client that breaks them, over raw sockets: an oversized request, a frame cut off
/// mid-body, a malformed request inside a pipeline, the cap on a fetch response, and pipelined requests under the
/// per-connection in-flight bound. Each case checks that nothing partial was stored and that the partition is still
/// written and read by a real client afterwards.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class LimitsTests
{
    private const short Produce = 0;
    private const short Fetch = 1;
    private const short None = 0;

    [Test]
    [CancelAfter(30_000)]
    public async Task OversizedRequest_ClosesTheConnection_StoresNothing_AndThePartitionStaysUsable(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t", o => o with { MaximumRequestSize = 4096 });
        var body = RawKafkaClient.ProduceBody("t", 0, RawKafkaClient.Batch(-1, -1, -1, new string('x', 5000)));
        await using (var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken))
        {
            // The body is well formed and the batch below MaximumBatchSize: only the frame's size is refused.
            Assert.That(await client.SendAsync(Produce, 7, body, cancellationToken), Is.Null, "closed, no answer");
        }

        await AssertUsableAsync(broker, "t", expectedRecords: 0, cancellationToken);
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task FrameCutOffMidBody_StoresNothing_AndThePartitionStaysUsable(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        var body = RawKafkaClient.ProduceBody("t", 0, RawKafkaClient.Batch(-1, -1, -1, "never", "stored"));
        var header = new RawKafkaClient.Bytes().Int16(Produce).Int16(7).Int32(1).String("raw").ToArray();
        byte[] frame = [.. header, .. body];
        await using (var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken))
        {
            await client.SendRawAsync(frame.Length, frame[..(frame.Length - 10)], cancellationToken);
        }

        await AssertUsableAsync(broker, "t", expectedRecords: 0, cancellationToken);
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task MalformedRequestInAPipeline_IsTheLastOneServed_AndNothingAfterItIsStored(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        var lying = RawKafkaClient.ProduceBody("t", 0, RawKafkaClient.Batch(-1, -1, -1, "bad"));
        BinaryPrimitives.WriteInt32BigEndian(lying.AsSpan(8), 1_000_000); // the topics array count
        await using (var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken))
        {
            int first = await client.SendOnlyAsync(Produce, 7, ProduceBody(20, 0, "before"), cancellationToken);
            await client.SendOnlyAsync(Produce, 7, lying, cancellationToken);
            await client.SendOnlyAsync(Produce, 7, ProduceBody(20, 1, "after"), cancellationToken);

            var answer = await client.ReceiveFrameAsync(cancellationToken);
            Assert.That(answer, Is.Not.Null);
            Assert.That(answer!.Value.CorrelationId, Is.EqualTo(first));
            Assert.That(RawKafkaClient.ParseProduce(answer.Value.Body), Is.EqualTo((None, 0L)));
            Assert.That(await client.ReceiveFrameAsync(cancellationToken), Is.Null, "closed after the malformed one");
        }

        await AssertUsableAsync(broker, "t", expectedRecords: 1, cancellationToken);
    }

    [TestCase(16, 100 * 1024 * 1024, TestName = "PipelinedProduces_AreAnsweredInOrder_EachStoredOnce")]
    [TestCase(1, 4096, TestName = "PipelinedProduces_UnderAnInflightBoundOfOneRequest_AreAnsweredInOrder")]
    [CancelAfter(30_000)]
    public async Task PipelinedProduces_AreAnsweredInOrder(int requestsMax, long bytesMax, CancellationToken cancellationToken)
    {
        const int Requests = 40;
        await using var broker = await StartWithTopicAsync("t", o => o with
        {
            MaximumRequestSize = 4096,
            MaximumInflightRequestsPerConnection = requestsMax,
            MaximumInflightBytesPerConnection = bytesMax,
        });
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);

        // One idempotent producer, one record per request, sequences in order, all sent before any answer is read.
        var sent = new List<int>();
        for (int i = 0; i < Requests; i++)
        {
            sent.Add(await client.SendOnlyAsync(Produce, 7, ProduceBody(21, i, $"r{i}"), cancellationToken));
        }

        var answers = new List<(int CorrelationId, (short Error, long BaseOffset) Produce)>();
        for (int i = 0; i < Requests; i++)
        {
            var frame = await client.ReceiveFrameAsync(cancellationToken);
            Assert.That(frame, Is.Not.Null, $"answer {i}");
            answers.Add((frame!.Value.CorrelationId, RawKafkaClient.ParseProduce(frame.Value.Body)));
        }

        Assert.That(answers.Select(a => a.CorrelationId), Is.EqualTo(sent), "answers in request order");
        Assert.That(answers.Select(a => a.Produce), Is.EqualTo(Enumerable.Range(0, Requests).Select(i => (None, (long)i))),
            "every batch stored once, at the offset of its place in the pipeline");
        Assert.That(await ReadValuesAsync(broker, "t", Requests, cancellationToken),
            Is.EqualTo(Enumerable.Range(0, Requests).Select(i => $"r{i}")));
    }

    /// <summary>
    /// A write-buffer pool of the least a log accepts (its largest batch plus two chunks, about 1.1 MiB) against twenty
    /// pipelined 900 kB batches, up to sixteen in flight: one batch fills the pool, the log pushes back, so some
    /// appends are not accepted inside the call; the batches must still get offsets in the order they were sent (the
    /// producer's sequences are checked in that order, so a reordering would store them out of sequence). Whether the
    /// log pushes back depends on how fast the disk drains the pool against how fast the broker reads, so rounds are
    /// repeated (each a new producer) until one met backpressure, and the test runs alone.
    /// </summary>
    [Test]
    [NonParallelizable]
    [CancelAfter(90_000)]
    public async Task PipelinedProduces_WhenTheLogPushesBack_ReachTheLogInTheOrderSent(CancellationToken cancellationToken)
    {
        const int Requests = 20;
        const int RoundsMax = 4;
        const int Chunk = 65536;
        long budget = (((LogOptions.DefaultMaximumBatchSize + Chunk - 1) / Chunk) + 2) * (long)Chunk;
        using var pool = new LogBufferPool(budget, Chunk);
        // Writes wait for the flush policy's delay, so the first batch holds its chunks while the next ones arrive.
        var holding = new LogOptions { FlushPolicy = FlushPolicy.Debounced(TimeSpan.FromMilliseconds(200), long.MaxValue) };
        await using var broker = await StartWithTopicAsync("t", o => o with { BufferPool = pool, LogDefaults = holding });
        var partition = broker.Server.Topics.Find("t", 0)!;
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        string filler = new('f', 900_000);
        int rounds = 0;
        while (partition.DeferredAppends == 0 && rounds < RoundsMax)
        {
            for (int i = 0; i < Requests; i++)
            {
                await client.SendOnlyAsync(Produce, 7, ProduceBody(30 + rounds, i, $"{rounds}{i:D3}{filler}"), cancellationToken);
            }

            var offsets = new List<(short Error, long BaseOffset)>();
            for (int i = 0; i < Requests; i++)
            {
                var frame = await client.ReceiveFrameAsync(cancellationToken);
                Assert.That(frame, Is.Not.Null, $"answer {i}");
                offsets.Add(RawKafkaClient.ParseProduce(frame!.Value.Body));
            }

            long first = (long)rounds * Requests;
            Assert.That(offsets, Is.EqualTo(Enumerable.Range(0, Requests).Select(i => (None, first + i))), $"round {rounds}");
            rounds++;
        }

        TestContext.Progress.WriteLine($"deferred appends: {partition.DeferredAppends} in {rounds} round(s)");
        Assert.That(partition.DeferredAppends, Is.GreaterThan(0), "the premise: the log pushed back");
        var values = await ReadValuesAsync(broker, "t", rounds * Requests, cancellationToken);
        var expected = Enumerable.Range(0, rounds).SelectMany(r => Enumerable.Range(0, Requests).Select(i => $"{r}{i:D3}"));
        Assert.That(values.Select(v => v[..4]), Is.EqualTo(expected));
    }

    /// <summary>
    /// The log keeps the order of appends that wait for room, so the broker starts every batch at once, in order: one
    /// behind a batch the log could not accept yet waits only for room, never for that batch's sync. With a pool of the
    /// least a log accepts and a flush policy that never syncs on its own, six pipelined 900 kB batches are all accepted
    /// (EndOffset 6) before anything is durable; a broker that held later batches back until the first deferred one was
    /// durable would stay below 6 until a flush. The flush then answers all six, in order, at the offsets sent.
    /// </summary>
    [Test]
    [NonParallelizable]
    [CancelAfter(60_000)]
    public async Task PipelinedProduces_BehindABatchTheLogPushedBack_AreAcceptedBeforeItIsDurable(CancellationToken cancellationToken)
    {
        const int Requests = 6;
        const int Chunk = 65536;
        long budget = (((LogOptions.DefaultMaximumBatchSize + Chunk - 1) / Chunk) + 2) * (long)Chunk;
        using var pool = new LogBufferPool(budget, Chunk);
        var manual = new LogOptions { FlushPolicy = FlushPolicy.Manual };
        await using var broker = await StartWithTopicAsync("t", o => o with { BufferPool = pool, LogDefaults = manual });
        var partition = broker.Server.Topics.Find("t", 0)!;
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        string filler = new('f', 900_000);
        for (int i = 0; i < Requests; i++)
        {
            await client.SendOnlyAsync(Produce, 7, ProduceBody(40, i, $"{i:D3}{filler}"), cancellationToken);
        }

        var deadline = TimeProvider.System.GetTimestamp();
        while (partition.Log.EndOffset < Requests && TimeProvider.System.GetElapsedTime(deadline) < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(10, cancellationToken);
        }

        Assert.That(partition.DeferredAppends, Is.GreaterThan(0), "the premise: the log pushed back");
        Assert.That(partition.Log.EndOffset, Is.EqualTo(Requests), "every batch accepted without a sync");
        Assert.That(partition.Log.DurableEndOffset, Is.EqualTo(0), "nothing durable before the flush");

        await partition.Log.FlushAsync(cancellationToken);
        for (int i = 0; i < Requests; i++)
        {
            var frame = await client.ReceiveFrameAsync(cancellationToken);
            Assert.That(frame, Is.Not.Null, $"answer {i}");
            Assert.That(RawKafkaClient.ParseProduce(frame!.Value.Body), Is.EqualTo((None, (long)i)), $"answer {i}");
        }
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Fetch_AskingForMoreThanTheBrokersCap_GetsWhatFitsTheCap(CancellationToken cancellationToken)
    {
        var batch = RawKafkaClient.Batch(-1, -1, -1, new string('v', 300));
        await using var broker = await StartWithTopicAsync("t", o => o with { MaximumFetchResponseSize = (2 * batch.Length) + 10 });
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        for (int i = 0; i < 3; i++)
        {
            var response = await client.SendAsync(Produce, 7, RawKafkaClient.ProduceBody("t", 0, batch), cancellationToken);
            Assert.That(RawKafkaClient.ParseProduce(response!).Error, Is.EqualTo(None));
        }

        var fetched = await client.SendAsync(Fetch, 11, FetchBody("t", offset: 0, maxBytes: int.MaxValue), cancellationToken);

        Assert.That(FetchedRecordBytes(fetched!), Is.EqualTo(2 * batch.Length), "two batches fit the cap, three do not");
    }

    [Test]
    [CancelAfter(10_000)]
    public void Options_InflightBytesBelowTheRequestSize_AreRefusedAtStart()
    {
        var options = new BrokerOptions
        {
            DataDirectory = Path.Combine(Path.GetTempPath(), "kafka-broker-tests", Guid.NewGuid().ToString("N")),
            Port = 0,
            MaximumRequestSize = 1 << 20,
            MaximumInflightBytesPerConnection = (1 << 20) - 1,
        };

        Assert.That(async () => await KafkaServer.StartAsync(options), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    private static byte[] ProduceBody(long producerId, int sequence, string value) =>
        RawKafkaClient.ProduceBody("t", 0, RawKafkaClient.Batch(producerId, 0, sequence, value));

    private static async Task<TestBroker> StartWithTopicAsync(string topic, Func<BrokerOptions, BrokerOptions>? configure = null)
    {
        var broker = await TestBroker.StartAsync(configure);
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = 1, ReplicationFactor = 1 }]);
        return broker;
    }

    /// <summary>
    /// A real producer appends one more record, and a real consumer reads the partition from its start: every record
    /// that was there, then the new one, all intact (the partition was neither damaged nor left half-written).
    /// </summary>
    private static async Task AssertUsableAsync(TestBroker broker, string topic, int expectedRecords, CancellationToken cancellationToken)
    {
        using (var producer = new ProducerBuilder<Null, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, EnableIdempotence = true }).Build())
        {
            var delivered = await producer.ProduceAsync(topic, new Message<Null, string> { Value = "still usable" }, cancellationToken);
            Assert.That(delivered.Offset.Value, Is.EqualTo(expectedRecords), "nothing partial before the new record");
        }

        var values = await ReadValuesAsync(broker, topic, expectedRecords + 1, cancellationToken);
        Assert.That(values[^1], Is.EqualTo("still usable"));
    }

    private static Task<List<string>> ReadValuesAsync(TestBroker broker, string topic, int count, CancellationToken cancellationToken) => Task.Run(() =>
    {
        var config = new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "limits", EnableAutoCommit = false };
        using var consumer = new ConsumerBuilder<Ignore, string>(config).Build();
        consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        var values = new List<string>();
        while (values.Count < count)
        {
            var result = consumer.Consume(cancellationToken);
            Assert.That(result.Offset.Value, Is.EqualTo(values.Count), "offsets dense from 0");
            values.Add(result.Message.Value);
        }

        consumer.Close();
        return values;
    }, cancellationToken);

    private static byte[] FetchBody(string topic, long offset, int maxBytes) => new RawKafkaClient.Bytes()
        .Int32(-1).Int32(0).Int32(1).Int32(maxBytes).Int8(0).Int32(0).Int32(-1)
        .Int32(1).String(topic).Int32(1).Int32(0).Int32(-1).Int64(offset).Int64(-1).Int32(maxBytes)
        .Int32(0).String("").ToArray();

    /// <summary>The records size of the one partition of a Fetch v11 response (after checking its error is NONE).</summary>
    private static int FetchedRecordBytes(byte[] response)
    {
        int position = 4 + 2 + 4 + 4; // throttle, error, session_id, [topics]
        position += 2 + BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(position)) + 4 + 4; // name, [partitions], index
        Assert.That(BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(position)), Is.EqualTo(None));
        position += 2 + 8 + 8 + 8 + 4 + 4; // error, hw, lso, log start, aborted (null), preferred replica
        return BinaryPrimitives.ReadInt32BigEndian(response.AsSpan(position));
    }
}
