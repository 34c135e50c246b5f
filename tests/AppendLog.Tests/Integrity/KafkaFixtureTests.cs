using System.Text;
using System.Text.Json;
using AppendLog.Format;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Integrity;

/// <summary>
/// Every Kafka codec, read from bytes that independent clients wrote (kafkajs 2.2.4 and kafka-python 2.0.2, see
/// <c>KafkaFixtures/README.md</c>), and written by this log then read back.
/// </summary>
[CancelAfter(60_000)]
public sealed class KafkaFixtureTests
{
    private static readonly string Folder = Path.Combine(TestContext.CurrentContext.TestDirectory, "Integrity", "KafkaFixtures");

    private sealed record ExpectedRecord(int OffsetDelta, long TimestampDelta, byte[]? Key, byte[]? Value, (string Key, byte[]? Value)[] Headers);

    private static (long BaseTimestamp, ExpectedRecord[] Records) Expected()
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Folder, "expected.json")));
        static byte[]? B64(JsonElement e) => e.ValueKind == JsonValueKind.Null ? null : Convert.FromBase64String(e.GetString()!);
        var records = json.RootElement.GetProperty("records").EnumerateArray().Select(r => new ExpectedRecord(
            r.GetProperty("offsetDelta").GetInt32(),
            r.GetProperty("timestampDelta").GetInt64(),
            B64(r.GetProperty("key")),
            B64(r.GetProperty("value")),
            [.. r.GetProperty("headers").EnumerateArray().Select(h => (h[0].GetString()!, B64(h[1])))])).ToArray();
        return (json.RootElement.GetProperty("baseTimestamp").GetInt64(), records);
    }

    [TestCase("kafkajs-none.bin", CompressionCodec.None)]
    [TestCase("kafkajs-gzip.bin", CompressionCodec.Gzip)]
    [TestCase("kafkajs-snappy.bin", CompressionCodec.Snappy)]
    [TestCase("kafkajs-lz4.bin", CompressionCodec.Lz4)]
    [TestCase("kafkajs-zstd.bin", CompressionCodec.Zstd)]
    [TestCase("kafka-python-none.bin", CompressionCodec.None)]
    [TestCase("kafka-python-gzip.bin", CompressionCodec.Gzip)]
    [TestCase("kafka-python-snappy.bin", CompressionCodec.Snappy)]
    [TestCase("kafka-python-lz4.bin", CompressionCodec.Lz4)]
    [TestCase("kafka-python-zstd.bin", CompressionCodec.Zstd)]
    public async Task BatchFromAnIndependentClient_IsAcceptedAndReadsBackEveryField(string file, CompressionCodec codec)
    {
        byte[] bytes = File.ReadAllBytes(Path.Combine(Folder, file));
        var header = RecordBatchValidator.Validate(bytes, bytes.Length, 1 << 20, "batch");
        Assert.That(header.Codec, Is.EqualTo(codec));
        bool nullHeader = file.StartsWith("kafka-python", StringComparison.Ordinal);
        var (baseTimestamp, expected) = Expected();

        using var dir = new TempDirectory("appendlog-kafkafix");
        await using var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = dir.File("log"), DirectIo = DirectIoMode.Disabled });
        await log.AppendAsync(new byte[] { 9 });
        Assert.That(await log.AppendRawBatchAsync(bytes), Is.EqualTo(1));
        var read = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(1))
        {
            read.Add(r);
        }

        Assert.That(read, Has.Count.EqualTo(expected.Length));
        for (int i = 0; i < expected.Length; i++)
        {
            var e = expected[i];
            var r = read[i];
            Assert.That(r.Offset, Is.EqualTo(1 + e.OffsetDelta), $"offset of record {i}");
            Assert.That(r.TimestampMs, Is.EqualTo(baseTimestamp + e.TimestampDelta), $"timestamp of record {i}");
            Assert.That(r.Key, Is.EqualTo(e.Key), $"key of record {i}");
            Assert.That(r.Value, Is.EqualTo(e.Value), $"value of record {i}");
            var headers = nullHeader ? [.. e.Headers, ("n", null)] : e.Headers;
            Assert.That(r.Headers.Select(h => h.Key), Is.EqualTo(headers.Select(h => h.Key)), $"header keys of record {i}");
            for (int h = 0; h < headers.Length; h++)
            {
                Assert.That(r.Headers[h].IsValueNull, Is.EqualTo(headers[h].Value is null), $"header {h} null-ness of record {i}");
                Assert.That(r.Headers[h].Value.ToArray(), Is.EqualTo(headers[h].Value ?? []), $"header {h} value of record {i}");
            }
        }
    }

    [Test]
    public void SnappyFixtures_CoverBothFramings()
    {
        // kafkajs-snappy writes one raw block (as librdkafka does); kafka-python writes the Java producer's xerial framing.
        byte[] xerial = [0x82, (byte)'S', (byte)'N', (byte)'A', (byte)'P', (byte)'P', (byte)'Y', 0];
        Assert.That(File.ReadAllBytes(Path.Combine(Folder, "kafka-python-snappy.bin")).AsSpan(RecordBatch.RecordsOffset).StartsWith(xerial), Is.True);
        Assert.That(File.ReadAllBytes(Path.Combine(Folder, "kafkajs-snappy.bin")).AsSpan(RecordBatch.RecordsOffset).StartsWith(xerial), Is.False);
    }

    [Test]
    public async Task TransactionalBatchFromKafkajs_ExposesProducerFields()
    {
        byte[] bytes = File.ReadAllBytes(Path.Combine(Folder, "kafkajs-transactional.bin"));
        using var dir = new TempDirectory("appendlog-kafkafix");
        await using var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = dir.File("log"), DirectIo = DirectIoMode.Disabled });
        await log.AppendRawBatchAsync(bytes);
        await foreach (var batch in log.ReadBatchesAsync(0))
        {
            Assert.That(batch.IsTransactional, Is.True);
            Assert.That(batch.IsControl, Is.False);
            Assert.That(batch.IsLogAppendTime, Is.False);
            Assert.That(batch.ProducerId, Is.EqualTo(4242));
            Assert.That(batch.ProducerEpoch, Is.EqualTo(3));
            Assert.That(batch.BaseSequence, Is.EqualTo(17));
            Assert.That(batch.RecordCount, Is.EqualTo(2));
        }
    }

    [TestCase(CompressionCodec.Gzip)]
    [TestCase(CompressionCodec.Snappy)]
    [TestCase(CompressionCodec.Lz4)]
    [TestCase(CompressionCodec.Zstd)]
    public async Task EveryCodec_WrittenByTheLog_ReadsBackAndStoresItsCodecBits(CompressionCodec codec)
    {
        using var dir = new TempDirectory("appendlog-codecs");
        var options = new LogOptions { Directory = dir.File("log"), DirectIo = DirectIoMode.Disabled, Compression = codec };
        var records = Enumerable.Range(0, 200).Select(i => new AppendRecord(
            Encoding.UTF8.GetBytes($"key-{i}"),
            Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat($"value {i} ", 50))),
            [new RecordHeader("h", new byte[] { (byte)i }), RecordHeader.WithNullValue("n"), new RecordHeader("e", Array.Empty<byte>())])).ToArray();
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            await log.AppendBatchAsync(records);
        }

        await using var reopened = await SegmentedLog.OpenAsync(options with { Compression = CompressionCodec.None });
        int size = 0;
        await foreach (var batch in reopened.ReadBatchesAsync(0))
        {
            RecordBatchHeader.TryRead(batch.Bytes.Span, out var header);
            Assert.That(header.Codec, Is.EqualTo(codec));
            size += batch.Bytes.Length;
        }

        Assert.That(size, Is.LessThan(RecordBatchEncoder.MeasureUncompressed(records) / 4), "the records were compressed");
        var read = new List<LogRecord>();
        await foreach (var r in reopened.ReadAsync(0))
        {
            read.Add(r);
        }

        Assert.That(read.Select(r => r.Value), Is.EqualTo(records.Select(r => r.Value.ToArray())));
        Assert.That(read.Select(r => r.Key), Is.EqualTo(records.Select(r => r.Key.ToArray())));
        Assert.That(read.Select(r => r.Headers[1].IsValueNull), Is.All.True, "a null header value reads back as null");
        Assert.That(read.Select(r => r.Headers[2].IsValueNull), Is.All.False, "an empty header value reads back as empty");
        Assert.That(read.Select(r => r.Headers[0].Value.ToArray()), Is.EqualTo(records.Select(r => r.Headers![0].Value.ToArray())));
    }
}
