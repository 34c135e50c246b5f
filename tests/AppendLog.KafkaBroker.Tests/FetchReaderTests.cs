using System.Buffers.Binary;
using System.Globalization;
using Confluent.Kafka.Admin;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// The broker keeps a connection's fetch readers between fetches and sends their batches from lent memory released
/// only after the send. Checked against a model of the stored batches: on one connection, requests pipelined up to
/// three deep (the next fetch runs while the previous answer is being sent), continuing where the last answer ended,
/// seeking back and forth, inside a batch, at the end, with the partition named twice in one request, and under
/// every combination of partition and response limits, each answer holds exactly the batches KIP-74 gives.
/// </summary>
[TestFixture]
public sealed class FetchReaderTests
{
    private const short Produce = 0;
    private const short Fetch = 1;
    private const int Batches = 40;

    private static readonly int[] Limits = [1, 1000, 100_000, 600_000, 2_000_000];

    [Test]
    [CancelAfter(90_000)]
    public async Task PipelinedFetches_WithSeeksAndLimits_AnswerTheModelsBatches(CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync();
        using (var admin = new Confluent.Kafka.AdminClientBuilder(new Confluent.Kafka.AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            await admin.CreateTopicsAsync([new TopicSpecification { Name = "t", NumPartitions = 1, ReplicationFactor = 1 }]);
        }

        var random = new Random(Seed());
        var stored = await FillAsync(broker, random, cancellationToken);
        long end = stored[^1].Base + stored[^1].Count;
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        long next = 0;
        for (int round = 0; round < 60; round++)
        {
            var sent = new List<(int CorrelationId, List<byte[]> Expected)>();
            for (int depth = random.Next(1, 4); depth > 0; depth--)
            {
                var entries = new List<(long Offset, int PartitionMax)>();
                int responseMax = Limits[random.Next(Limits.Length)];
                for (int e = random.Next(1, 3); e > 0; e--)
                {
                    long offset = random.Next(10) switch
                    {
                        < 6 => next,
                        6 or 7 => random.NextInt64(0, end + 1),
                        8 => end,
                        _ => stored[random.Next(stored.Count)].Base + 1, // inside a batch (or the next one's start)
                    };
                    entries.Add((Math.Min(offset, end), Limits[random.Next(Limits.Length)]));
                }

                var expected = Model(stored, entries, responseMax, out next);
                int id = await client.SendOnlyAsync(Fetch, 11, FetchBody(entries, responseMax), cancellationToken);
                sent.Add((id, expected));
            }

            foreach (var (id, expected) in sent)
            {
                var frame = await client.ReceiveFrameAsync(cancellationToken);
                Assert.That(frame, Is.Not.Null, "the broker answered");
                Assert.That(frame!.Value.CorrelationId, Is.EqualTo(id));
                var actual = ParseRecords(frame.Value.Body);
                Assert.That(actual, Has.Count.EqualTo(expected.Count));
                for (int i = 0; i < expected.Count; i++)
                {
                    Assert.That(actual[i], Is.EqualTo(expected[i]), $"round {round}, request {id}, entry {i}");
                }
            }
        }
    }

    /// <summary>The run's seed: <c>APPENDLOG_SEED</c> when set, else a fixed one; printed for a replay.</summary>
    private static int Seed()
    {
        string? text = Environment.GetEnvironmentVariable("APPENDLOG_SEED");
        int seed = string.IsNullOrWhiteSpace(text) ? 424242 : int.Parse(text, CultureInfo.InvariantCulture);
        Console.WriteLine($"seed={seed} (replay: APPENDLOG_SEED={seed} dotnet test --filter \"Name~FetchReaderTests\")");
        return seed;
    }

    /// <summary>
    /// Produces batches of 1 to 8 records of up to 60,000 bytes, then takes each stored batch's bytes from a fresh
    /// connection (a new reader) fetching at its base offset with a 1-byte limit (KIP-74: exactly that batch).
    /// </summary>
    private static async Task<List<(long Base, int Count, byte[] Bytes)>> FillAsync(TestBroker broker, Random random, CancellationToken cancellationToken)
    {
        var stored = new List<(long Base, int Count, byte[] Bytes)>();
        await using var producer = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        for (int b = 0; b < Batches; b++)
        {
            var values = Enumerable.Range(0, random.Next(1, 9)).Select(_ => new string((char)('a' + random.Next(26)), random.Next(1, 60_000))).ToArray();
            var response = await producer.SendAsync(Produce, 7, RawKafkaClient.ProduceBody("t", 0, RawKafkaClient.Batch(-1, -1, -1, values)), cancellationToken);
            var (error, baseOffset) = RawKafkaClient.ParseProduce(response!);
            Assert.That(error, Is.Zero);
            stored.Add((baseOffset, values.Length, []));
        }

        for (int b = 0; b < stored.Count; b++)
        {
            await using var fresh = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
            var body = await fresh.SendAsync(Fetch, 11, FetchBody([(stored[b].Base, 1)], 1), cancellationToken);
            var bytes = ParseRecords(body!)[0];
            Assert.That(BinaryPrimitives.ReadInt64BigEndian(bytes), Is.EqualTo(stored[b].Base));
            Assert.That(12 + BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(8)), Is.EqualTo(bytes.Length), "one whole batch");
            stored[b] = stored[b] with { Bytes = bytes };
        }

        return stored;
    }

    /// <summary>
    /// Each entry's answer: from the batch holding its offset, the first batch of the response always, then batches
    /// while the entry's and the response's totals stay within their limits. <paramref name="next"/>: where the last
    /// entry's answer ends.
    /// </summary>
    private static List<byte[]> Model(List<(long Base, int Count, byte[] Bytes)> stored, List<(long Offset, int PartitionMax)> entries, int responseMax, out long next)
    {
        var answers = new List<byte[]>();
        int responseBytes = 0;
        next = 0;
        foreach (var (offset, partitionMax) in entries)
        {
            var answer = new List<byte>();
            next = offset;
            foreach (var batch in stored.Where(s => s.Base + s.Count > offset))
            {
                bool fits = answer.Count + batch.Bytes.Length <= partitionMax && responseBytes + batch.Bytes.Length <= responseMax;
                if (!fits && responseBytes > 0)
                {
                    break;
                }

                answer.AddRange(batch.Bytes);
                responseBytes += batch.Bytes.Length;
                next = batch.Base + batch.Count;
            }

            answers.Add([.. answer]);
        }

        return answers;
    }

    private static byte[] FetchBody(List<(long Offset, int PartitionMax)> entries, int responseMax)
    {
        var body = new RawKafkaClient.Bytes()
            .Int32(-1).Int32(0).Int32(1).Int32(responseMax).Int8(0).Int32(0).Int32(-1) // max_wait 0, min_bytes 1
            .Int32(1).String("t").Int32(entries.Count);
        foreach (var (offset, partitionMax) in entries)
        {
            body.Int32(0).Int32(-1).Int64(offset).Int64(-1).Int32(partitionMax);
        }

        return body.Int32(0).String("").ToArray();
    }

    /// <summary>The records bytes of every partition entry of a Fetch v11 answer on one topic (each must have no error).</summary>
    private static List<byte[]> ParseRecords(byte[] response)
    {
        int position = 4 + 2 + 4 + 4; // throttle, error, session_id, [topics]
        position += 2 + BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(position)); // name
        int count = BinaryPrimitives.ReadInt32BigEndian(response.AsSpan(position));
        position += 4;
        var records = new List<byte[]>();
        for (int p = 0; p < count; p++)
        {
            short error = BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(position + 4));
            Assert.That(error, Is.Zero, $"entry {p}'s error");
            position += 4 + 2 + 8 + 8 + 8 + 4 + 4; // index, error, hw, lso, log start, aborted (null), preferred replica
            int size = BinaryPrimitives.ReadInt32BigEndian(response.AsSpan(position));
            records.Add(response.AsSpan(position + 4, size).ToArray());
            position += 4 + size;
        }

        return records;
    }
}
