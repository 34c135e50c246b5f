using System.Buffers.Binary;
using System.Diagnostics;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// What real clients never send, over <see cref="RawKafkaClient"/>: the idempotent producer's sequence rules with
/// Kafka's error codes, bad batches and framing errors. Each case checks that nothing was stored (the high watermark
/// did not move) and that the broker still serves the next client.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class ProtocolTests
{
    private const short Produce = 0;
    private const short Fetch = 1;
    private const short ApiVersions = 18;
    private const short None = 0;
    private const short CorruptMessage = 2;
    private const short UnknownTopicOrPartition = 3;
    private const short MessageTooLarge = 10;
    private const short InvalidRequiredAcks = 21;
    private const short UnsupportedVersion = 35;
    private const short OutOfOrderSequenceNumber = 45;
    private const short DuplicateSequenceNumber = 46;
    private const short InvalidProducerEpoch = 47;

    [Test]
    [CancelAfter(20_000)]
    public async Task RetriedBatch_GetsItsFirstOffset_AndIsStoredOnce(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        var batch = RawKafkaClient.Batch(producerId: 7, producerEpoch: 0, baseSequence: 0, "a", "b", "c");

        var first = await ProduceAsync(client, "t", batch, cancellationToken);
        var retry = await ProduceAsync(client, "t", batch, cancellationToken);
        var next = await ProduceAsync(client, "t", RawKafkaClient.Batch(7, 0, 3, "d"), cancellationToken);

        Assert.That(first, Is.EqualTo((None, 0L)));
        Assert.That(retry, Is.EqualTo((None, 0L)), "a retry is answered with the offset the batch already has");
        Assert.That(next, Is.EqualTo((None, 3L)));
        Assert.That(HighWatermark(broker, "t"), Is.EqualTo(4));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task SequenceGap_IsOutOfOrder_AndNothingIsStored(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);

        var newProducerNotAtZero = await ProduceAsync(client, "t", RawKafkaClient.Batch(8, 0, 5, "x"), cancellationToken);
        await ProduceAsync(client, "t", RawKafkaClient.Batch(9, 0, 0, "a"), cancellationToken);
        var gap = await ProduceAsync(client, "t", RawKafkaClient.Batch(9, 0, 2, "c"), cancellationToken);

        Assert.That(newProducerNotAtZero.Error, Is.EqualTo(OutOfOrderSequenceNumber));
        Assert.That(gap.Error, Is.EqualTo(OutOfOrderSequenceNumber));
        Assert.That(HighWatermark(broker, "t"), Is.EqualTo(1));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task SequenceOlderThanTheRememberedBatches_IsDuplicate(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        for (int sequence = 0; sequence < 6; sequence++)
        {
            Assert.That((await ProduceAsync(client, "t", RawKafkaClient.Batch(10, 0, sequence, $"r{sequence}"), cancellationToken)).Error, Is.EqualTo(None));
        }

        var tooOld = await ProduceAsync(client, "t", RawKafkaClient.Batch(10, 0, 0, "r0"), cancellationToken);

        Assert.That(tooOld.Error, Is.EqualTo(DuplicateSequenceNumber));
        Assert.That(HighWatermark(broker, "t"), Is.EqualTo(6));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task OlderProducerEpoch_IsFenced(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        await ProduceAsync(client, "t", RawKafkaClient.Batch(11, 1, 0, "new"), cancellationToken);

        var old = await ProduceAsync(client, "t", RawKafkaClient.Batch(11, 0, 1, "old"), cancellationToken);

        Assert.That(old.Error, Is.EqualTo(InvalidProducerEpoch));
        Assert.That(HighWatermark(broker, "t"), Is.EqualTo(1));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ProducerState_IsRebuiltFromTheLog_SoARetryAfterARestartIsNotStoredTwice(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        var batch = RawKafkaClient.Batch(12, 0, 0, "once");
        await using (var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken))
        {
            Assert.That(await ProduceAsync(client, "t", batch, cancellationToken), Is.EqualTo((None, 0L)));
        }

        await broker.RestartAsync();

        await using var again = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        Assert.That(await ProduceAsync(again, "t", batch, cancellationToken), Is.EqualTo((None, 0L)));
        Assert.That(await ProduceAsync(again, "t", RawKafkaClient.Batch(12, 0, 1, "next"), cancellationToken), Is.EqualTo((None, 1L)));
        Assert.That(HighWatermark(broker, "t"), Is.EqualTo(2));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task DamagedBatch_IsCorruptMessage_AndNoBatchOfThePartitionIsStored(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        var good = RawKafkaClient.Batch(-1, -1, -1, "good");
        var damaged = RawKafkaClient.Batch(-1, -1, -1, "damaged");
        damaged[^1] ^= 0x01;

        var alone = await ProduceAsync(client, "t", damaged, cancellationToken);
        var afterAGoodOne = await ProduceAsync(client, "t", [.. good, .. damaged], cancellationToken);
        var truncated = await ProduceAsync(client, "t", good[..^3], cancellationToken);

        Assert.That(alone.Error, Is.EqualTo(CorruptMessage));
        Assert.That(afterAGoodOne.Error, Is.EqualTo(CorruptMessage));
        Assert.That(truncated.Error, Is.EqualTo(CorruptMessage));
        Assert.That(HighWatermark(broker, "t"), Is.EqualTo(0));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task BadAcks_OversizedBatch_AndUnknownTopic_GetTheirErrorCodes(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t", o => o with { MaximumBatchSize = 256 });
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        var small = RawKafkaClient.Batch(-1, -1, -1, "small");
        var large = RawKafkaClient.Batch(-1, -1, -1, new string('x', 300));

        var badAcks = RawKafkaClient.ParseProduce((await client.SendAsync(Produce, 7, RawKafkaClient.ProduceBody("t", 0, small, acks: 5), cancellationToken))!);
        var tooLarge = await ProduceAsync(client, "t", large, cancellationToken);
        var unknown = await ProduceAsync(client, "nope", small, cancellationToken);

        Assert.That(badAcks.Error, Is.EqualTo(InvalidRequiredAcks));
        Assert.That(tooLarge.Error, Is.EqualTo(MessageTooLarge));
        Assert.That(unknown.Error, Is.EqualTo(UnknownTopicOrPartition));
        Assert.That(HighWatermark(broker, "t"), Is.EqualTo(0));
    }

    [TestCase(200 * 1024 * 1024, TestName = "FramingError_SizeAboveTheLimit_ClosesTheConnection")]
    [TestCase(3, TestName = "FramingError_SizeBelowAHeader_ClosesTheConnection")]
    [TestCase(-1, TestName = "FramingError_NegativeSize_ClosesTheConnection")]
    [CancelAfter(20_000)]
    public async Task FramingError_ClosesTheConnection_AndTheBrokerServesTheNextClient(int sizePrefix, CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        await using (var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken))
        {
            await client.SendRawAsync(sizePrefix, new byte[16], cancellationToken);
            Assert.That(await client.ReceiveAsync(cancellationToken), Is.Null);
        }

        await AssertServesApiVersionsAsync(broker, cancellationToken);
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task LyingArrayCount_AndUnknownApi_CloseTheConnection_AndNothingIsStored(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        var body = RawKafkaClient.ProduceBody("t", 0, RawKafkaClient.Batch(-1, -1, -1, "v"));
        BinaryPrimitives.WriteInt32BigEndian(body.AsSpan(8), 1_000_000); // the topics array count
        await using (var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken))
        {
            Assert.That(await client.SendAsync(Produce, 7, body, cancellationToken), Is.Null);
        }

        await using (var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken))
        {
            Assert.That(await client.SendAsync(60, 0, [], cancellationToken), Is.Null);
        }

        await using (var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken))
        {
            Assert.That(await client.SendAsync(Produce, 2, body, cancellationToken), Is.Null, "Produce v2 is not advertised");
        }

        await AssertServesApiVersionsAsync(broker, cancellationToken);
        Assert.That(HighWatermark(broker, "t"), Is.EqualTo(0));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task ApiVersions_AboveTheAdvertisedRange_AnswersUnsupportedVersionWithTheList(CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        // Header v2 (flexible): client id then an empty tagged-field section; the body is not read.
        var response = await client.SendAsync(ApiVersions, 9, [0], cancellationToken);

        Assert.That(response, Is.Not.Null);
        Assert.That(BinaryPrimitives.ReadInt16BigEndian(response), Is.EqualTo(UnsupportedVersion));
        int count = BinaryPrimitives.ReadInt32BigEndian(response.AsSpan(2));
        var apiVersions = Enumerable.Range(0, count).Select(i => response.AsSpan(6 + (i * 6)).ToArray())
            .ToDictionary(e => BinaryPrimitives.ReadInt16BigEndian(e), e => (BinaryPrimitives.ReadInt16BigEndian(e.AsSpan(2)), BinaryPrimitives.ReadInt16BigEndian(e.AsSpan(4))));
        Assert.That(apiVersions[ApiVersions], Is.EqualTo(((short)0, (short)3)));
        Assert.That(apiVersions[Produce], Is.EqualTo(((short)3, (short)7)));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task AcksZero_StoresTheBatch_AndSendsNoResponse(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        var body = RawKafkaClient.ProduceBody("t", 0, RawKafkaClient.Batch(-1, -1, -1, "fire", "forget"), acks: 0);
        var header = new RawKafkaClient.Bytes().Int16(Produce).Int16(7).Int32(99).String("raw").ToArray();
        await client.SendRawAsync(header.Length + body.Length, [.. header, .. body], cancellationToken);

        // The next frame on the connection answers the next request: nothing was sent for the produce.
        var next = await client.SendAsync(ApiVersions, 0, [], cancellationToken);

        Assert.That(next, Is.Not.Null);
        Assert.That(BinaryPrimitives.ReadInt16BigEndian(next), Is.EqualTo(None));
        Assert.That(BinaryPrimitives.ReadInt32BigEndian(next.AsSpan(2)), Is.EqualTo(14), "the ApiVersions list, not a produce answer");
        Assert.That(HighWatermark(broker, "t"), Is.EqualTo(2));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task Fetch_WithFewerThanMinBytesAvailable_WaitsMaxWait_ThenReturnsWhatThereIs(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        var batch = RawKafkaClient.Batch(-1, -1, -1, "small");
        await ProduceAsync(client, "t", batch, cancellationToken);

        var clock = Stopwatch.StartNew();
        var enough = ParseFetch((await client.SendAsync(Fetch, 11, FetchBody("t", 0, maxWaitMs: 5000, minBytes: 1), cancellationToken))!);
        var enoughWait = clock.Elapsed;
        clock.Restart();
        var tooFew = ParseFetch((await client.SendAsync(Fetch, 11, FetchBody("t", 0, maxWaitMs: 300, minBytes: 1 << 20), cancellationToken))!);
        var tooFewWait = clock.Elapsed;

        Assert.That(enough, Is.EqualTo((None, 1L, batch.Length)));
        Assert.That(enoughWait, Is.LessThan(TimeSpan.FromSeconds(4)), "min_bytes reached: no wait");
        Assert.That(tooFew, Is.EqualTo((None, 1L, batch.Length)));
        Assert.That(tooFewWait, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(250)), "below min_bytes: waits max_wait_ms");
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Fetch_AtTheTail_WaitsForTheNextAppend_NotForMaxWait(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        await using var fetcher = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        await using var producer = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);

        var clock = Stopwatch.StartNew();
        var empty = ParseFetch((await fetcher.SendAsync(Fetch, 11, FetchBody("t", 0, maxWaitMs: 300), cancellationToken))!);
        var emptyWait = clock.Elapsed;

        clock.Restart();
        var waiting = fetcher.SendAsync(Fetch, 11, FetchBody("t", 0, maxWaitMs: 20_000), cancellationToken);
        await Task.Delay(200, cancellationToken);
        await ProduceAsync(producer, "t", RawKafkaClient.Batch(-1, -1, -1, "wake"), cancellationToken);
        var woken = ParseFetch((await waiting)!);
        var wokenWait = clock.Elapsed;

        Assert.That(empty, Is.EqualTo((None, 0L, 0)));
        Assert.That(emptyWait, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(250)), "an empty fetch waits max_wait_ms");
        Assert.That(woken.Error, Is.EqualTo(None));
        Assert.That(woken.HighWatermark, Is.EqualTo(1));
        Assert.That(woken.RecordBytes, Is.EqualTo(RawKafkaClient.Batch(-1, -1, -1, "wake").Length), "the stored batch, byte for byte in size");
        Assert.That(wokenWait, Is.LessThan(TimeSpan.FromSeconds(10)), "the append woke the fetch long before max_wait_ms");
    }

    /// <summary>
    /// All ten records in one batch. Whatever the codec the answer is the exact record (AppendLog's time index, then
    /// record decoding: AppendLog reads all four Kafka codecs).
    /// </summary>
    [TestCase(CompressionType.None, 6)]
    [TestCase(CompressionType.Lz4, 6)]
    [TestCase(CompressionType.Gzip, 6)]
    [TestCase(CompressionType.Snappy, 6)]
    [TestCase(CompressionType.Zstd, 6)]
    [CancelAfter(30_000)]
    public async Task ListOffsets_EarliestLatestAndByTimestamp(CompressionType codec, long expectedOffset, CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t");
        var start = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var config = new ProducerConfig { BootstrapServers = broker.BootstrapServers, EnableIdempotence = true, LingerMs = 200, CompressionType = codec };
        using (var producer = new ProducerBuilder<Null, string>(config).Build())
        {
            for (int i = 0; i < 10; i++)
            {
                producer.Produce("t", new Message<Null, string> { Value = $"v{i} {new string('z', 500)}", Timestamp = new Timestamp(start.AddSeconds(i)) });
            }

            producer.Flush(cancellationToken);
        }

        await using (var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken))
        {
            // The premise: the ten 500-byte values went out compressed (librdkafka sends a batch uncompressed when
            // compression does not make it smaller), so the lookup really meets a compressed batch.
            var fetched = ParseFetch((await client.SendAsync(Fetch, 11, FetchBody("t", 0, maxWaitMs: 0), cancellationToken))!);
            Assert.That(fetched.RecordBytes, codec == CompressionType.None ? Is.GreaterThan(5000) : Is.LessThan(1000));
        }

        using var consumer = new ConsumerBuilder<Null, string>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "g" }).Build();
        var partition = new TopicPartition("t", 0);
        var watermarks = consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10));
        var found = consumer.OffsetsForTimes([new TopicPartitionTimestamp(partition, new Timestamp(start.AddSeconds(5.5)))], TimeSpan.FromSeconds(10));
        var afterAll = consumer.OffsetsForTimes([new TopicPartitionTimestamp(partition, new Timestamp(start.AddSeconds(60)))], TimeSpan.FromSeconds(10));

        Assert.That((watermarks.Low.Value, watermarks.High.Value), Is.EqualTo((0L, 10L)));
        Assert.That(found[0].Offset.Value, Is.EqualTo(expectedOffset), "the first record at or after the time");
        Assert.That(afterAll[0].Offset, Is.EqualTo(Offset.End), "no record that late: offset -1");
    }

    private static async Task<TestBroker> StartWithTopicAsync(string topic, Func<global::KafkaBroker.BrokerOptions, global::KafkaBroker.BrokerOptions>? configure = null)
    {
        var broker = await TestBroker.StartAsync(configure);
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = 1, ReplicationFactor = 1 }]);
        return broker;
    }

    private static async Task<(short Error, long BaseOffset)> ProduceAsync(RawKafkaClient client, string topic, byte[] records, CancellationToken cancellationToken)
    {
        var response = await client.SendAsync(Produce, 7, RawKafkaClient.ProduceBody(topic, 0, records), cancellationToken);
        Assert.That(response, Is.Not.Null, "the broker answered");
        return RawKafkaClient.ParseProduce(response!);
    }

    private static long HighWatermark(TestBroker broker, string topic)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "hw" }).Build();
        return consumer.QueryWatermarkOffsets(new TopicPartition(topic, 0), TimeSpan.FromSeconds(10)).High.Value;
    }

    private static async Task AssertServesApiVersionsAsync(TestBroker broker, CancellationToken cancellationToken)
    {
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        var response = await client.SendAsync(ApiVersions, 0, [], cancellationToken);
        Assert.That(response, Is.Not.Null);
        Assert.That(BinaryPrimitives.ReadInt16BigEndian(response), Is.EqualTo(None));
    }

    private static byte[] FetchBody(string topic, long offset, int maxWaitMs, int minBytes = 1) => new RawKafkaClient.Bytes()
        .Int32(-1).Int32(maxWaitMs).Int32(minBytes).Int32(1 << 20).Int8(0).Int32(0).Int32(-1)
        .Int32(1).String(topic).Int32(1).Int32(0).Int32(-1).Int64(offset).Int64(-1).Int32(1 << 20)
        .Int32(0).String("").ToArray();

    /// <summary>Error, high watermark and records size of the one partition of a Fetch v11 response.</summary>
    private static (short Error, long HighWatermark, int RecordBytes) ParseFetch(byte[] response)
    {
        int position = 4 + 2 + 4 + 4; // throttle, error, session_id, [topics]
        position += 2 + BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(position)) + 4 + 4; // name, [partitions], index
        short error = BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(position));
        long highWatermark = BinaryPrimitives.ReadInt64BigEndian(response.AsSpan(position + 2));
        position += 2 + 8 + 8 + 8 + 4 + 4; // error, hw, lso, log start, aborted (null), preferred replica
        return (error, highWatermark, BinaryPrimitives.ReadInt32BigEndian(response.AsSpan(position)));
    }
}
