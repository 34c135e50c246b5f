using System.Buffers.Binary;
using AppendLog.Format;
using AppendLog.Testing;
using AppendLog.Tests.Format;
using NUnit.Framework;
using static AppendLog.Tests.Integrity.RawBatchBuilder;

namespace AppendLog.Tests.Integrity;

/// <summary>
/// Kafka semantics on the read side (LogAppendTime, null header values, control and transactional batches, producer
/// fields), and damage met on a read surfacing as <see cref="LogCorruptedException"/>, never as an internal type.
/// </summary>
[CancelAfter(60_000)]
public sealed class ReadFidelityTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-fidelity");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private LogOptions Options => new() { Directory = _dir.File("log"), DirectIo = DirectIoMode.Disabled };

    private static async Task<List<LogRecord>> ReadAll(SegmentedLog log)
    {
        var records = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(log.StartOffset))
        {
            records.Add(r);
        }

        return records;
    }

    private static byte[] WithHeaderFields(byte[] batch, short attributesOr, long baseTimestamp, long maxTimestamp, long producerId = -1, short epoch = -1, int sequence = -1)
    {
        byte[] copy = [.. batch];
        short attributes = BinaryPrimitives.ReadInt16BigEndian(copy.AsSpan(RecordBatch.AttributesOffset));
        BinaryPrimitives.WriteInt16BigEndian(copy.AsSpan(RecordBatch.AttributesOffset), (short)(attributes | attributesOr));
        BinaryPrimitives.WriteInt64BigEndian(copy.AsSpan(RecordBatch.BaseTimestampOffset), baseTimestamp);
        BinaryPrimitives.WriteInt64BigEndian(copy.AsSpan(RecordBatch.MaxTimestampOffset), maxTimestamp);
        BinaryPrimitives.WriteInt64BigEndian(copy.AsSpan(RecordBatch.ProducerIdOffset), producerId);
        BinaryPrimitives.WriteInt16BigEndian(copy.AsSpan(RecordBatch.ProducerEpochOffset), epoch);
        BinaryPrimitives.WriteInt32BigEndian(copy.AsSpan(RecordBatch.BaseSequenceOffset), sequence);
        Batches.Reseal(copy);
        return copy;
    }

    [Test]
    public async Task LogAppendTimeBatch_ReadsEveryRecordAtTheBatchMaxTimestamp()
    {
        byte[] records = [.. Record(0, value: [1], timestampDelta: 5), .. Record(1, value: [2], timestampDelta: 9)];
        byte[] batch = WithHeaderFields(Batch(records, 2, 1), RecordBatch.LogAppendTimeFlag, baseTimestamp: 1_000, maxTimestamp: 77_777);
        byte[] createTime = WithHeaderFields(Batch(records, 2, 1), 0, baseTimestamp: 1_000, maxTimestamp: 1_009);
        await using var log = await SegmentedLog.OpenAsync(Options);
        await log.AppendRawBatchAsync(batch);
        await log.AppendRawBatchAsync(createTime);

        var read = await ReadAll(log);
        Assert.That(read.Select(r => r.TimestampMs), Is.EqualTo(new long[] { 77_777, 77_777, 1_005, 1_009 }), "LogAppendTime: maxTimestamp; CreateTime: base + delta");
        var flags = new List<bool>();
        await foreach (var b in log.ReadBatchesAsync(0))
        {
            flags.Add(b.IsLogAppendTime);
        }

        Assert.That(flags, Is.EqualTo(new[] { true, false }));
        Assert.That(await log.FindOffsetAsync(DateTimeOffset.FromUnixTimeMilliseconds(50_000)), Is.EqualTo(0), "time lookup uses the same timestamps");
    }

    [Test]
    public async Task TheLogAppendTimeOption_StampsEveryBatchWithTheLogsClock_EncodedAndRaw()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(5_000_000));
        byte[] records = [.. Record(0, value: [1], timestampDelta: 5), .. Record(1, value: [2], timestampDelta: 9)];
        byte[] raw = WithHeaderFields(Batch(records, 2, 1), 0, baseTimestamp: 1_000, maxTimestamp: 1_009);
        await using var log = await SegmentedLog.OpenAsync(Options with { TimestampType = TimestampType.LogAppendTime, TimeProvider = time });
        await log.AppendRawBatchAsync(raw);
        time.Advance(TimeSpan.FromSeconds(10));
        await log.AppendAsync(new AppendRecord(new byte[] { 3 }));

        var read = await ReadAll(log);
        Assert.That(read.Select(r => r.TimestampMs), Is.EqualTo(new long[] { 5_000_000, 5_000_000, 5_010_000 }));
        var batches = new List<LogBatch>();
        await foreach (var b in log.ReadBatchesAsync(0))
        {
            batches.Add(b);
        }

        Assert.That(batches.Select(b => b.IsLogAppendTime), Is.All.True);
        Assert.That(batches.Select(b => RecordBatchDecoder.Check(b.Bytes.Span, int.MaxValue, out _)), Is.All.EqualTo(BatchCheck.Valid), "the CRC covers the stamp");
        Assert.That(await log.FindOffsetAsync(DateTimeOffset.FromUnixTimeMilliseconds(5_005_000)), Is.EqualTo(2), "the time index uses the append time");
        Assert.That(raw, Is.EqualTo(WithHeaderFields(Batch(records, 2, 1), 0, baseTimestamp: 1_000, maxTimestamp: 1_009)), "the caller's buffer is not changed");
    }

    [Test]
    public async Task CreateTime_StoresARawBatchByteForByte()
    {
        byte[] raw = WithHeaderFields(Batch(Records(2), 2, 1), 0, baseTimestamp: 1_000, maxTimestamp: 1_009);
        await using var log = await SegmentedLog.OpenAsync(Options);
        await log.AppendRawBatchAsync(raw);
        await foreach (var b in log.ReadBatchesAsync(0))
        {
            Assert.That(b.Bytes.ToArray(), Is.EqualTo(raw));
        }
    }

    [Test]
    public async Task NullHeaderValue_ReadsBackAsNull_AndEmptyAsEmpty()
    {
        await using var log = await SegmentedLog.OpenAsync(Options);
        await log.AppendAsync(new AppendRecord(default, new byte[] { 1 }, [RecordHeader.WithNullValue("n"), new RecordHeader("e", Array.Empty<byte>()), new RecordHeader("v", new byte[] { 7 })]));
        await log.AppendRawBatchAsync(Batch(Record(0, headers: [([(byte)'r'], null)]), 1, 0));

        var read = await ReadAll(log);
        Assert.That(read[0].Headers.Select(h => h.IsValueNull), Is.EqualTo(new[] { true, false, false }));
        Assert.That(read[0].Headers[2].Value.ToArray(), Is.EqualTo(new byte[] { 7 }));
        Assert.That(read[1].Headers.Single().IsValueNull, Is.True, "a raw batch's null header value too");
        Assert.That(RecordHeader.WithNullValue("x"), Is.Not.EqualTo(new RecordHeader("x", Array.Empty<byte>())), "null and empty differ");
    }

    [Test]
    public async Task ControlAndTransactionalBatches_ExposeTheirFlagsAndProducerFields()
    {
        // A commit marker as a broker writes it: control + transactional, key = version 0, type 1 (commit).
        byte[] marker = WithHeaderFields(
            Batch(Record(0, key: [0, 0, 0, 1], value: [0, 0, 0, 0, 0, 5]), 1, 0),
            (short)(RecordBatch.ControlFlag | RecordBatch.TransactionalFlag), 2_000, 2_000, producerId: 99, epoch: 4, sequence: -1);
        byte[] data = WithHeaderFields(Batch(Records(2), 2, 1), RecordBatch.TransactionalFlag, 1_000, 1_000, producerId: 99, epoch: 4, sequence: 12);
        await using var log = await SegmentedLog.OpenAsync(Options);
        await log.AppendRawBatchAsync(data);
        await log.AppendRawBatchAsync(marker);
        await log.AppendAsync(new byte[] { 1 });

        var batches = new List<LogBatch>();
        await foreach (var b in log.ReadBatchesAsync(0))
        {
            batches.Add(b);
        }

        Assert.That(batches.Select(b => b.IsTransactional), Is.EqualTo(new[] { true, true, false }));
        Assert.That(batches.Select(b => b.IsControl), Is.EqualTo(new[] { false, true, false }));
        Assert.That(batches.Select(b => b.ProducerId), Is.EqualTo(new long[] { 99, 99, -1 }));
        Assert.That(batches.Select(b => b.ProducerEpoch), Is.EqualTo(new short[] { 4, 4, -1 }));
        Assert.That(batches.Select(b => b.BaseSequence), Is.EqualTo(new[] { 12, -1, -1 }));
    }

    /// <summary>Damage whose CRC was recomputed (so recovery keeps the batch) surfaces on read as LogCorruptedException.</summary>
    [TestCase("recordCount", TestName = "A record count damaged on disk (CRC recomputed) reads as LogCorruptedException")]
    [TestCase("codec", TestName = "Unsupported codec bits damaged on disk (CRC recomputed) read as LogCorruptedException")]
    [TestCase("lz4", TestName = "A damaged LZ4 frame on disk (CRC recomputed) reads as LogCorruptedException")]
    public async Task DamageInsideABatchOnDisk_SurfacesAsLogCorruptedException(string damage)
    {
        var options = Options with { Compression = damage == "lz4" ? CompressionCodec.Lz4 : CompressionCodec.None };
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            await log.AppendBatchAsync(new[] { new AppendRecord(new byte[] { 1 }), new AppendRecord(new byte[] { 2 }) });
            await log.AppendBatchAsync(new[] { new AppendRecord(new byte[100]), new AppendRecord(new byte[100]) });
        }

        string segment = Directory.GetFiles(options.Directory, "*.log").Single();
        long position;
        using (var file = new FileStream(segment, FileMode.Open, FileAccess.ReadWrite))
        {
            var head = new byte[RecordBatch.HeaderSize];
            file.ReadExactly(head);
            position = RecordBatch.LogOverhead + BinaryPrimitives.ReadInt32BigEndian(head.AsSpan(RecordBatch.BatchLengthOffset));
            var batch = new byte[4096];
            file.Position = position;
            file.ReadExactly(batch, 0, RecordBatch.HeaderSize);
            int size = RecordBatch.LogOverhead + BinaryPrimitives.ReadInt32BigEndian(batch.AsSpan(RecordBatch.BatchLengthOffset));
            file.Position = position;
            file.ReadExactly(batch, 0, size);
            batch = batch[..size];
            switch (damage)
            {
                case "recordCount":
                    BinaryPrimitives.WriteInt32BigEndian(batch.AsSpan(RecordBatch.RecordCountOffset), 1);
                    break;
                case "codec":
                    batch[RecordBatch.AttributesOffset + 1] |= 0x06;
                    break;
                default:
                    batch[RecordBatch.RecordsOffset] ^= 0xFF; // the LZ4 frame magic
                    break;
            }

            Batches.Reseal(batch);
            file.Position = position;
            file.Write(batch);
        }

        await using var reopened = await SegmentedLog.OpenAsync(options);
        Assert.That(reopened.DurableEndOffset, Is.EqualTo(4), "recovery keeps the batch: its CRC matches");
        var first = new List<LogRecord>();
        var ex = Assert.ThrowsAsync<LogCorruptedException>(async () =>
        {
            await foreach (var r in reopened.ReadAsync(0))
            {
                first.Add(r);
            }
        })!;
        Assert.That(ex.FilePath, Is.EqualTo(segment));
        Assert.That(ex.Position, Is.EqualTo(position));
        Assert.That(ex.InnerException, Is.Null, "no internal type leaks, not even as the inner exception");
        Assert.That(first.Select(r => r.Value), Is.EqualTo(new byte[]?[] { [1], [2] }), "records before the damage are served");
    }
}
