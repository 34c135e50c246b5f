using System.Buffers.Binary;
using System.Text;
using AppendLog.Format;
using NUnit.Framework;

namespace AppendLog.Tests.Format;

/// <summary>Byte-exact layout of what the encoder writes, against Kafka's RecordBatch v2.</summary>
public sealed class RecordBatchLayoutTests
{
    private const long Timestamp = 1_700_000_000_000; // 0x0000018B_CFE56800

    private static AppendRecord KnownRecord() =>
        new(Encoding.ASCII.GetBytes("k"), Encoding.ASCII.GetBytes("v1"), [new RecordHeader("h", new byte[] { 0x01 })]);

    [Test]
    public void Constants_LineUpWithTheFieldSizes()
    {
        // Each field starts where the previous one ends (sizes from DefaultRecordBatch.java).
        Assert.Multiple(() =>
        {
            Assert.That(RecordBatch.BatchLengthOffset, Is.EqualTo(RecordBatch.BaseOffsetOffset + 8));
            Assert.That(RecordBatch.PartitionLeaderEpochOffset, Is.EqualTo(RecordBatch.BatchLengthOffset + 4));
            Assert.That(RecordBatch.MagicOffset, Is.EqualTo(RecordBatch.PartitionLeaderEpochOffset + 4));
            Assert.That(RecordBatch.CrcOffset, Is.EqualTo(RecordBatch.MagicOffset + 1));
            Assert.That(RecordBatch.AttributesOffset, Is.EqualTo(RecordBatch.CrcOffset + 4));
            Assert.That(RecordBatch.LastOffsetDeltaOffset, Is.EqualTo(RecordBatch.AttributesOffset + 2));
            Assert.That(RecordBatch.BaseTimestampOffset, Is.EqualTo(RecordBatch.LastOffsetDeltaOffset + 4));
            Assert.That(RecordBatch.MaxTimestampOffset, Is.EqualTo(RecordBatch.BaseTimestampOffset + 8));
            Assert.That(RecordBatch.ProducerIdOffset, Is.EqualTo(RecordBatch.MaxTimestampOffset + 8));
            Assert.That(RecordBatch.ProducerEpochOffset, Is.EqualTo(RecordBatch.ProducerIdOffset + 8));
            Assert.That(RecordBatch.BaseSequenceOffset, Is.EqualTo(RecordBatch.ProducerEpochOffset + 2));
            Assert.That(RecordBatch.RecordCountOffset, Is.EqualTo(RecordBatch.BaseSequenceOffset + 4));
            Assert.That(RecordBatch.RecordsOffset, Is.EqualTo(RecordBatch.RecordCountOffset + 4));
            Assert.That(RecordBatch.HeaderSize, Is.EqualTo(RecordBatch.RecordsOffset).And.EqualTo(61));
            Assert.That(RecordBatch.LogOverhead, Is.EqualTo(RecordBatch.PartitionLeaderEpochOffset));
            Assert.That(RecordBatch.BatchLengthMin, Is.EqualTo(49));
            Assert.That((int)CompressionCodec.Lz4 & ~RecordBatch.CodecMask, Is.Zero);
        });
    }

    [Test]
    public void Encode_OneKnownRecord_MatchesHandComputedKafkaBytes()
    {
        byte[] expected =
        [
            // --- header, big-endian ---
            0, 0, 0, 0, 0, 0, 0, 0,             // baseOffset 0 (assigned later by the log)
            0, 0, 0, 0x3F,                      // batchLength 63 = 75 total - 12
            0, 0, 0, 7,                         // partitionLeaderEpoch 7
            2,                                  // magic
            0x96, 0x0E, 0x30, 0xB3,             // crc: CRC-32C of bytes 21..74, computed with an independent bitwise CRC
            0, 0,                               // attributes: codec 0, create time
            0, 0, 0, 0,                         // lastOffsetDelta 0 (one record)
            0, 0, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00, // baseTimestamp 1 700 000 000 000 ms
            0, 0, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00, // maxTimestamp, the same
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // producerId -1
            0xFF, 0xFF,                         // producerEpoch -1
            0xFF, 0xFF, 0xFF, 0xFF,             // baseSequence -1
            0, 0, 0, 1,                         // recordCount 1
            // --- the record, zigzag varints ---
            0x1A,                               // length 13 (zigzag 26)
            0x00,                               // attributes
            0x00,                               // timestampDelta 0
            0x00,                               // offsetDelta 0
            0x02, 0x6B,                         // keyLength 1 (zigzag 2), "k"
            0x04, 0x76, 0x31,                   // valueLength 2 (zigzag 4), "v1"
            0x02,                               // headerCount 1
            0x02, 0x68,                         // header keyLength 1, "h"
            0x02, 0x01,                         // header valueLength 1, 0x01
        ];

        byte[] batch = Batches.Encode([KnownRecord()], CompressionCodec.None, Timestamp, leaderEpoch: 7);

        Assert.That(batch, Is.EqualTo(expected));
        Assert.That(ReferenceCrc32C.Compute(expected.AsSpan(21)), Is.EqualTo(0x960E30B3u), "the CRC in the table is right");
    }

    [Test]
    public void Encode_NullKeyAndNullValue_AreLengthMinusOne()
    {
        byte[] tombstone = Batches.Encode([AppendRecord.Tombstone(new byte[] { 0xAA })], CompressionCodec.None);
        byte[] empty = Batches.Encode([default], CompressionCodec.None);

        // Tombstone record: length, attributes, tsDelta, offsetDelta, keyLength 1 + 0xAA, valueLength -1 (0x01), 0 headers.
        Assert.That(tombstone[RecordBatch.RecordsOffset..], Is.EqualTo(new byte[] { 0x0E, 0, 0, 0, 0x02, 0xAA, 0x01, 0x00 }));
        // No key, no value: keyLength -1, valueLength -1.
        Assert.That(empty[RecordBatch.RecordsOffset..], Is.EqualTo(new byte[] { 0x0C, 0, 0, 0, 0x01, 0x01, 0x00 }));
    }

    [Test]
    public void Crc_CoversAttributesToTheEnd_AndNothingBefore()
    {
        byte[] batch = Batches.Encode([KnownRecord(), new AppendRecord(new byte[100])], CompressionCodec.None);
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(batch.AsSpan(RecordBatch.CrcOffset));

        Assert.That(stored, Is.EqualTo(ReferenceCrc32C.Compute(batch.AsSpan(RecordBatch.AttributesOffset))));
        Assert.That(stored, Is.Not.EqualTo(ReferenceCrc32C.Compute(batch.AsSpan(RecordBatch.AttributesOffset + 1))), "starts at attributes, not after");
        Assert.That(stored, Is.Not.EqualTo(ReferenceCrc32C.Compute(batch.AsSpan(RecordBatch.AttributesOffset, batch.Length - RecordBatch.AttributesOffset - 1))), "reaches the last byte");
    }

    [Test]
    public void PatchBaseOffset_And_PatchLeaderEpoch_LeaveTheCrcValid()
    {
        byte[] batch = Batches.Encode([KnownRecord(), KnownRecord()], CompressionCodec.None);
        byte[] crcBefore = batch[RecordBatch.CrcOffset..RecordBatch.AttributesOffset];

        RecordBatchEncoder.PatchBaseOffset(batch, 0x0102_0304_0506_0708);
        RecordBatchEncoder.PatchLeaderEpoch(batch, 42);

        Assert.That(batch[..8], Is.EqualTo(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }), "big-endian base offset");
        Assert.That(batch[RecordBatch.CrcOffset..RecordBatch.AttributesOffset], Is.EqualTo(crcBefore), "CRC bytes untouched");
        Assert.That(RecordBatchDecoder.Check(batch, batch.Length, out RecordBatchHeader header), Is.EqualTo(BatchCheck.Valid));
        Assert.That(header.BaseOffset, Is.EqualTo(0x0102_0304_0506_0708));
        Assert.That(header.LastOffset, Is.EqualTo(0x0102_0304_0506_0709));
        Assert.That(header.PartitionLeaderEpoch, Is.EqualTo(42));
        Assert.That(Batches.Decode(batch).Select(r => r.Offset), Is.EqualTo(new[] { 0x0102_0304_0506_0708, 0x0102_0304_0506_0709 }));
    }

    [Test]
    public void Header_ReportsEveryField()
    {
        byte[] batch = Batches.Encode([KnownRecord(), KnownRecord(), KnownRecord()], CompressionCodec.Lz4, Timestamp, leaderEpoch: 9);
        Assert.That(RecordBatchDecoder.Check(batch, batch.Length, out RecordBatchHeader h), Is.EqualTo(BatchCheck.Valid));
        Assert.Multiple(() =>
        {
            Assert.That(h.TotalSize, Is.EqualTo(batch.Length));
            Assert.That(h.BatchLength, Is.EqualTo(batch.Length - 12));
            Assert.That(h.Magic, Is.EqualTo(2));
            Assert.That(h.Codec, Is.EqualTo(CompressionCodec.Lz4));
            Assert.That(h.Attributes, Is.EqualTo(3));
            Assert.That(h.LastOffsetDelta, Is.EqualTo(2));
            Assert.That(h.RecordCount, Is.EqualTo(3));
            Assert.That(h.BaseTimestamp, Is.EqualTo(Timestamp));
            Assert.That(h.MaxTimestamp, Is.EqualTo(Timestamp));
            Assert.That(h.PartitionLeaderEpoch, Is.EqualTo(9));
            Assert.That(h.ProducerId, Is.EqualTo(-1));
            Assert.That(h.ProducerEpoch, Is.EqualTo(-1));
            Assert.That(h.BaseSequence, Is.EqualTo(-1));
            Assert.That(RecordBatchHeader.TryRead(batch.AsSpan(0, 60), out _), Is.False);
        });
    }

    [Test]
    public void Encode_RejectsMisuse()
    {
        AppendRecord[] one = [KnownRecord()];
        Assert.Multiple(() =>
        {
            Assert.That(() => RecordBatchEncoder.Encode(new byte[74], one, 0, 0), Throws.ArgumentException, "one byte short");
            Assert.That(() => RecordBatchEncoder.Encode(new byte[100], [], 0, 0), Throws.ArgumentException, "no records");
            Assert.That(
                () => RecordBatchEncoder.Encode(new byte[100], [new AppendRecord(default, default, [default])], 0, 0),
                Throws.ArgumentException.With.Message.Contains("null key"));
            Assert.That(
                () => RecordBatchEncoder.EncodeCompressed(new byte[200], new byte[13], one, 0, 0),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("scratch"), "scratch one byte short");
            Assert.That(() => RecordBatchEncoder.PatchBaseOffset(new byte[60], 1), Throws.ArgumentException);
        });
    }

    [Test]
    public void EncodeAndDecode_DoNotAllocate()
    {
        AppendRecord[] records = [new AppendRecord(new byte[8], new byte[1024], [new RecordHeader("h", new byte[4])])];
        var batch = new byte[RecordBatchEncoder.MeasureUncompressed(records)];
        long sum = RunOnce(batch, records); // warm up (JIT, static constructors)

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            sum += RunOnce(batch, records);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.Zero);
        Assert.That(sum, Is.EqualTo(101 * (1024 + 4)));
    }

    private static long RunOnce(byte[] batch, AppendRecord[] records)
    {
        RecordBatchEncoder.Encode(batch, records, Timestamp, 1);
        RecordBatchEncoder.PatchBaseOffset(batch, 10);
        if (RecordBatchDecoder.Check(batch, batch.Length, out RecordBatchHeader header) != BatchCheck.Valid)
        {
            return -1;
        }

        long sum = 0;
        foreach (RecordView record in RecordBatchDecoder.GetRecords(batch, header))
        {
            sum += record.Value.Length;
            foreach (RecordHeaderView h in record.Headers)
            {
                sum += h.Value.Length;
            }
        }

        return sum;
    }
}
