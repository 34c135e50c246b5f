using System.Buffers;
using System.Buffers.Binary;
using AppendLog.Format;
using AppendLog.Testing;
using AppendLog.Tests.Format;
using K4os.Compression.LZ4.Streams;
using NUnit.Framework;
using static AppendLog.Tests.Integrity.RawBatchBuilder;

namespace AppendLog.Tests.Integrity;

/// <summary>
/// Every raw batch is validated completely before <see cref="SegmentedLog.AppendRawBatchAsync"/> accepts it. The table
/// below holds the malformed kinds found by probing the log with an independent Kafka client (issue 15: 33 kinds, 14 of
/// which used to be accepted and then poisoned every later read), plus more, each with the check that must refuse it.
/// Each case asserts the typed exception and its check name, that the log is unchanged, still takes appends, and reads
/// back whole after a reopen.
/// </summary>
[CancelAfter(60_000)]
public sealed class RawBatchValidationTests
{
    private const int MaximumBatchSize = 64 * 1024;

    /// <summary>(case name, the bytes offered, the expected <see cref="InvalidRecordBatchException.FailedCheck"/>).</summary>
    private static IEnumerable<TestCaseData> MalformedBatches()
    {
        byte[] valid = Valid(3);
        static TestCaseData Case(string name, byte[] bytes, string check) => new TestCaseData(bytes, check).SetName(name);

        // Framing: header, length, magic, CRC, exactly one batch.
        yield return Case("01 Empty buffer", [], "header");
        yield return Case("02 Shorter than the 61-byte header", valid[..60], "header");
        yield return Case("03 batchLength below 49", WithInt32(valid, RecordBatch.BatchLengthOffset, 48), "batchLength");
        yield return Case("04 Batch cut short (batchLength beyond the bytes)", valid[..^1], "batchLength");
        yield return Case("05 A trailing byte after the batch", [.. valid, 0], "batchLength");
        yield return Case("06 Two batches in one buffer", [.. valid, .. valid], "batchLength");
        yield return Case("07 batchLength says fewer bytes than given", WithInt32(valid, RecordBatch.BatchLengthOffset, valid.Length - 13), "batchLength");
        yield return Case("08 Larger than MaximumBatchSize", Batch(Record(0, value: new byte[MaximumBatchSize]), 1, 0), "maximumBatchSize");
        yield return Case("09 Magic 1", WithByte(valid, RecordBatch.MagicOffset, 1), "magic");
        yield return Case("10 Magic 3", WithByte(valid, RecordBatch.MagicOffset, 3), "magic");
        yield return Case("11 A flipped bit in a value (CRC not resealed)", Flip(valid, valid.Length - 3), "crc");
        yield return Case("12 A flipped bit in recordCount (CRC not resealed)", Flip(valid, RecordBatch.RecordCountOffset + 3), "crc");

        // Header fields under the CRC.
        yield return Case("13 Codec bits 5", BatchWithPayload(Records(3), 3, 2, 5), "codec");
        yield return Case("14 Codec bits 6", BatchWithPayload(Records(3), 3, 2, 6), "codec");
        yield return Case("15 Codec bits 7", BatchWithPayload(Records(3), 3, 2, 7), "codec");
        yield return Case("16 recordCount > lastOffsetDelta + 1", Batch(Records(3), 3, 1), "offsetRange");
        yield return Case("17 Negative recordCount", Batch(Records(3), -1, 2), "offsetRange");
        yield return Case("18 Negative lastOffsetDelta", Batch([], 0, -1), "offsetRange");

        // Records framing against the count and lengths.
        yield return Case("19 recordCount lower than the records present", Batch(Records(3), 2, 2), "recordCount");
        yield return Case("20 recordCount higher than the records present", Batch(Records(2), 3, 2), "recordCount");
        yield return Case("21 recordCount 1 over an empty records section", Batch([], 1, 0), "recordCount");
        yield return Case("22 Garbage record bytes", Batch([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x13, 0x37], 1, 0), "recordLength");
        yield return Case("23 Record length past the batch", Batch([.. Varint(200), .. Record(0)[1..]], 1, 0), "recordLength");
        yield return Case("24 Record length below the smallest body", Batch([.. Varint(3), 0, 0, 0], 1, 0), "recordLength");
        yield return Case("25 Record length leaves bytes after the headers", Batch(Padded(Record(0), 1), 1, 0), "recordLength");
        yield return Case("26 Offset deltas backwards", Batch([.. Record(0), .. Record(2), .. Record(1)], 3, 2), "offsetDelta");
        yield return Case("27 Offset delta repeated", Batch([.. Record(0), .. Record(0)], 2, 1), "offsetDelta");
        yield return Case("28 Offset delta beyond lastOffsetDelta", Batch([.. Record(0), .. Record(2)], 2, 1), "offsetDelta");
        yield return Case("29 Negative offset delta", Batch(Record(-1), 1, 0), "offsetDelta");
        yield return Case("30 Null header key", Batch(Record(0, headers: [(null, [1])]), 1, 0), "headerKey");
        yield return Case("31 Negative header count", Batch(WithVarintAt(Record(0), 5, -1), 1, 0), "headerCount");
        yield return Case("32 Header value length past the record", Batch(WithTail(Record(0, headers: [([(byte)'k'], [1])]), 2, [.. Varint(9), 1]), 1, 0), "headerValue");
        yield return Case("33 Key length past the record", Batch(WithVarintAt(Record(0), 3, 40), 1, 0), "key");
        yield return Case("34 Value length -2", Batch(WithVarintAt(Record(0), 4, -2), 1, 0), "value");
        yield return Case("35 Truncated timestampDelta varint", Batch([.. Varint(6), 0, 0x80, 0x80, 0x80, 0x80, 0x80], 1, 0), "timestampDelta");
        yield return Case("36 Overlong offsetDelta varint", Batch([.. Varint(10), 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 1, 1, 0], 1, 0), "offsetDelta");

        // Codecs: payloads that do not decompress, or decompress to records that do not match the header.
        byte[] lz4 = Batch(Records(3), 3, 2, CompressionCodec.Lz4);
        yield return Case("37 LZ4 frame with a bad magic", WithPayloadByte(lz4, 0, 0x05), "compressedPayload");
        yield return Case("38 LZ4 frame with a corrupt block", CorruptLz4Block(), "compressedPayload");
        yield return Case("39 LZ4 frame with a bad content checksum", Lz4WithBadContentChecksum(), "compressedPayload");
        yield return Case("40 LZ4 frame cut short", BatchWithPayload(Compress(CompressionCodec.Lz4, Records(3))[..^4], 3, 2, 3), "compressedPayload");
        yield return Case("41 LZ4 records fewer than recordCount", Batch(Records(2), 3, 2, CompressionCodec.Lz4), "recordCount");
        yield return Case("42 GZIP payload that is not gzip", BatchWithPayload([0x1F, 0x8B, 8, 0, 1, 2, 3, 4, 5, 6, 7], 3, 2, 1), "compressedPayload");
        yield return Case("43 GZIP stream cut short", BatchWithPayload(Compress(CompressionCodec.Gzip, Records(50))[..40], 50, 49, 1), "compressedPayload");
        yield return Case("44 GZIP records with offset deltas backwards", Batch([.. Record(1), .. Record(0)], 2, 1, CompressionCodec.Gzip), "offsetDelta");
        yield return Case("45 Snappy raw block that is garbage", BatchWithPayload([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x42], 3, 2, 2), "compressedPayload");
        yield return Case("46 Snappy xerial block length past the payload", XerialWithBadBlockLength(), "compressedPayload");
        yield return Case("47 Snappy records with a null header key", Batch(Record(0, headers: [(null, null)]), 1, 0, CompressionCodec.Snappy), "headerKey");
        yield return Case("48 ZSTD payload that is garbage", BatchWithPayload([0x28, 0xB5, 0x2F, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF], 3, 2, 4), "compressedPayload");
        yield return Case("49 ZSTD empty payload with recordCount 1", BatchWithPayload([], 1, 0, 4), "recordCount");
        yield return Case("50 ZSTD records more than recordCount", Batch(Records(3), 2, 2, CompressionCodec.Zstd), "recordCount");
        yield return Case("51 LZ4 payload inflating beyond 64 x MaximumBatchSize", Batch(Record(0, value: new byte[(64 * MaximumBatchSize) + 1]), 1, 0, CompressionCodec.Lz4), "compressedPayload");
        yield return Case("52 Compressed batch with recordCount 0 but records inside", Batch(Records(1), 0, 0, CompressionCodec.Zstd), "recordCount");
    }

    [TestCaseSource(nameof(MalformedBatches))]
    public async Task MalformedBatch_IsRefusedWithItsCheckName_AndTheLogIsUnchanged(byte[] bytes, string check)
    {
        using var dir = new TempDirectory("appendlog-rawvalid");
        var options = new LogOptions { Directory = dir.File("log"), DirectIo = DirectIoMode.Disabled, MaximumBatchSize = MaximumBatchSize };
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            await log.AppendBatchAsync(new[] { new AppendRecord(new byte[] { 1 }), new AppendRecord(new byte[] { 2 }) });
            var ex = Assert.Throws<InvalidRecordBatchException>(() => log.AppendRawBatchAsync(bytes))!;
            Assert.That(ex.FailedCheck, Is.EqualTo(check), ex.Message);
            Assert.That(ex.ParamName, Is.EqualTo("batch"));
            Assert.That(ex, Is.InstanceOf<ArgumentException>(), "callers catching ArgumentException keep working");
            Assert.That(log.EndOffset, Is.EqualTo(2), "nothing was appended");
            Assert.That(await log.AppendRawBatchAsync(Valid(3)), Is.EqualTo(2), "the log still takes a valid raw batch");
        }

        await using (var reopened = await SegmentedLog.OpenAsync(options))
        {
            var values = new List<byte[]?>();
            await foreach (var r in reopened.ReadAsync(0))
            {
                values.Add(r.Value);
            }

            Assert.That(values, Is.EqualTo(new byte[]?[] { [1], [2], [0, 0xAB], [1, 0xAB], [2, 0xAB] }), "every record reads back after reopen");
        }
    }

    [Test]
    public void TheTable_CoversEveryCheckName()
    {
        var names = MalformedBatches().Select(c => (string)c.Arguments[1]!).ToHashSet();
        Assert.That(names, Is.SupersetOf(new[]
        {
            "header", "batchLength", "maximumBatchSize", "magic", "crc", "codec", "offsetRange", "compressedPayload",
            "recordCount", "recordLength", "offsetDelta", "headerKey", "headerCount", "headerValue", "key", "value", "timestampDelta",
        }));
        Assert.That(MalformedBatches().Count(), Is.GreaterThanOrEqualTo(33));
    }

    [TestCase(CompressionCodec.None)]
    [TestCase(CompressionCodec.Gzip)]
    [TestCase(CompressionCodec.Snappy)]
    [TestCase(CompressionCodec.Lz4)]
    [TestCase(CompressionCodec.Zstd)]
    public void WellFormedBatches_PassValidation_IncludingCompactedOnes(CompressionCodec codec)
    {
        Assert.That(RecordBatchValidator.Validate(Batch(Records(3), 3, 2, codec), MaximumBatchSize, 1 << 20, "b").RecordCount, Is.EqualTo(3));

        // Key compaction leaves gaps and may empty a batch while keeping its range: those forward between logs.
        Assert.That(RecordBatchValidator.Validate(Batch([.. Record(1), .. Record(4)], 2, 5, codec), MaximumBatchSize, 1 << 20, "b").LastOffsetDelta, Is.EqualTo(5));
        Assert.That(RecordBatchValidator.Validate(Batch([], 0, 3, codec), MaximumBatchSize, 1 << 20, "b").RecordCount, Is.Zero);

        // Kafka's cleaner writes an emptied batch as a bare header that keeps its codec bits.
        Assert.That(RecordBatchValidator.Validate(BatchWithPayload([], 0, 3, (short)codec), MaximumBatchSize, 1 << 20, "b").RecordCount, Is.Zero);
    }

    [Test]
    public void RawSnappyBlocks_AsLibrdkafkaWrites_PassValidation()
    {
        byte[] records = Records(4);
        byte[] raw = Snappier.Snappy.CompressToArray(records);
        Assert.That(RecordBatchValidator.Validate(BatchWithPayload(raw, 4, 3, 2), MaximumBatchSize, 1 << 20, "b").RecordCount, Is.EqualTo(4));
    }

    [Test]
    public void ZstdStreamingFrames_WithoutAContentSize_AsTheJavaProducerWrites_PassValidation()
    {
        // Kafka's Java producer compresses through zstd-jni's ZstdOutputStream: a streaming frame whose header does
        // not state the content size. ZstdSharp's CompressionStream writes the same kind of frame.
        byte[] records = Records(50);
        using var output = new MemoryStream();
        using (var zstd = new ZstdSharp.CompressionStream(output, 3))
        {
            zstd.Write(records);
        }

        byte[] frame = output.ToArray();
        Assert.That(frame[4] & 0xC0, Is.Zero, "Frame_Content_Size_flag 0: no content size in the frame header");
        Assert.That(frame[4] & 0x20, Is.Zero, "not a single-segment frame (which would carry the size)");
        Assert.That(RecordBatchValidator.Validate(BatchWithPayload(frame, 50, 49, 4), MaximumBatchSize, 1 << 20, "b").RecordCount, Is.EqualTo(50));
    }

    private static byte[] WithByte(byte[] batch, int offset, byte value)
    {
        byte[] copy = [.. batch];
        copy[offset] = value;
        return copy;
    }

    private static byte[] Flip(byte[] batch, int offset)
    {
        byte[] copy = [.. batch];
        copy[offset] ^= 0x01;
        return copy;
    }

    private static byte[] WithPayloadByte(byte[] batch, int payloadOffset, byte value)
    {
        byte[] copy = [.. batch];
        copy[RecordBatch.RecordsOffset + payloadOffset] = value;
        Batches.Reseal(copy);
        return copy;
    }

    /// <summary>A record whose length varint claims <paramref name="extra"/> bytes more, which follow as zeros.</summary>
    private static byte[] Padded(byte[] record, int extra)
    {
        AppendLog.Format.Varint.TryRead(record, out int length, out int size);
        return [.. Varint(length + extra), .. record[size..], .. new byte[extra]];
    }

    /// <summary>Replaces the one-byte varint at body index <paramref name="bodyIndex"/> of a small record, fixing its length.</summary>
    private static byte[] WithVarintAt(byte[] record, int bodyIndex, int value)
    {
        AppendLog.Format.Varint.TryRead(record, out int _, out int size);
        byte[] body = record[size..];
        byte[] edited = [.. body[..bodyIndex], .. Varint(value), .. body[(bodyIndex + 1)..]];
        return [.. Varint(edited.Length), .. edited];
    }

    /// <summary>Replaces the last <paramref name="cut"/> bytes of a record's body with <paramref name="tail"/>, fixing its length.</summary>
    private static byte[] WithTail(byte[] record, int cut, byte[] tail)
    {
        AppendLog.Format.Varint.TryRead(record, out int _, out int size);
        byte[] body = [.. record[size..^cut], .. tail];
        return [.. Varint(body.Length), .. body];
    }

    /// <summary>An LZ4 frame of compressible records whose block's bytes after its first token are overwritten with 0xFF.</summary>
    private static byte[] CorruptLz4Block()
    {
        byte[] records = [.. Enumerable.Range(0, 40).SelectMany(i => Record(i, value: new byte[100]))];
        byte[] frame = Compress(CompressionCodec.Lz4, records);
        int blockSize = BinaryPrimitives.ReadInt32LittleEndian(frame.AsSpan(7));
        Assert.That(blockSize & 0x8000_0000, Is.Zero, "the block is compressed");
        frame.AsSpan(7 + 4 + 1, blockSize - 1).Fill(0xFF);
        return BatchWithPayload(frame, 40, 39, 3);
    }

    private static byte[] Lz4WithBadContentChecksum()
    {
        byte[] records = Records(3);
        var writer = new ArrayBufferWriter<byte>();
        K4os.Compression.LZ4.Streams.LZ4Frame.Encode(records.AsSpan(), writer, new LZ4EncoderSettings { ContentChecksum = true });
        byte[] frame = writer.WrittenSpan.ToArray();
        frame[^1] ^= 0x5A; // the content checksum is the frame's last 4 bytes
        return BatchWithPayload(frame, 3, 2, 3);
    }

    private static byte[] XerialWithBadBlockLength()
    {
        byte[] payload = Compress(CompressionCodec.Snappy, Records(3));
        BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(16), payload.Length); // the first block's length
        return BatchWithPayload(payload, 3, 2, 2);
    }
}
