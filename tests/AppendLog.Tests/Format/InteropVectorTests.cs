using System.Buffers;
using AppendLog.Format;
using NUnit.Framework;

namespace AppendLog.Tests.Format;

/// <summary>
/// Batches written by an independent Kafka client: the byte vectors of Sarama's <c>record_test.go</c>
/// (IBM/sarama, <c>recordBatchTestCases</c>), which its own tests check against Kafka. Our checker must accept
/// them (same CRC-32C and CRC range) and our decoder must read the same fields. Sarama leaves producerId,
/// producerEpoch and baseSequence at 0 rather than -1, and maxTimestamp at 0; we read what is there.
/// </summary>
public sealed class InteropVectorTests
{
    private static readonly byte[] s_header =
    [
        0, 0, 0, 0, 0, 0, 0, 0, // baseOffset
    ];

    // One record: timestampDelta 5 ms, key 01 02 03 04, value 05 06 07, one header key 08 09 0A value 0B 0C.
    private static readonly byte[] s_record = [40, 0, 10, 0, 8, 1, 2, 3, 4, 6, 5, 6, 7, 2, 6, 8, 9, 10, 4, 11, 12];

    private static readonly byte[] s_uncompressed =
    [
        .. s_header,
        0, 0, 0, 70,                    // batchLength
        0, 0, 0, 0,                     // partitionLeaderEpoch
        2,                              // magic
        84, 121, 97, 253,               // crc
        0, 0,                           // attributes
        0, 0, 0, 0,                     // lastOffsetDelta
        0, 0, 1, 88, 141, 205, 89, 56,  // baseTimestamp 1 479 847 795 000
        0, 0, 0, 0, 0, 0, 0, 0,         // maxTimestamp
        0, 0, 0, 0, 0, 0, 0, 0,         // producerId
        0, 0,                           // producerEpoch
        0, 0, 0, 0,                     // baseSequence
        0, 0, 0, 1,                     // recordCount
        .. s_record,
    ];

    private static readonly byte[] s_lz4 =
    [
        .. s_header,
        0, 0, 0, 89,
        0, 0, 0, 0,
        2,
        169, 74, 119, 197,
        0, 3,                           // attributes: LZ4
        0, 0, 0, 0,
        0, 0, 1, 88, 141, 205, 89, 56,
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
        0, 0, 0, 0,
        0, 0, 0, 1,
        // LZ4 frame from Go's pierrec/lz4: FLG 0x64 (independent blocks + content checksum), BD 0x70 (4 MiB),
        // HC 185; one block stored raw (0x80000015 = 21 bytes, high bit set); end mark; content checksum.
        4, 34, 77, 24, 100, 112, 185, 21, 0, 0, 128, .. s_record, 0, 0, 0, 0, 12, 59, 239, 146,
    ];

    private static readonly byte[] s_empty =
    [
        .. s_header,
        0, 0, 0, 49,
        0, 0, 0, 0,
        2,
        89, 95, 183, 221,
        0, 0,
        0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
        0, 0, 0, 0,
        0, 0, 0, 0,
    ];

    [Test]
    public void SaramaUncompressedBatch_ChecksAndDecodes()
    {
        Assert.That(RecordBatchDecoder.Check(s_uncompressed, 1024, out RecordBatchHeader header), Is.EqualTo(BatchCheck.Valid));
        AssertTheRecord(Batches.Copy(RecordBatchDecoder.GetRecords(s_uncompressed, header)));
    }

    [Test]
    public void SaramaLz4Batch_ChecksAndDecodes()
    {
        Assert.That(RecordBatchDecoder.Check(s_lz4, 1024, out RecordBatchHeader header), Is.EqualTo(BatchCheck.Valid));
        Assert.That(header.Codec, Is.EqualTo(CompressionCodec.Lz4));
        var scratch = new byte[1024];
        Assert.That(RecordBatchDecoder.DecompressRecords(s_lz4, header, scratch, out int written), Is.EqualTo(OperationStatus.Done));
        Assert.That(scratch[..written], Is.EqualTo(s_record));
        AssertTheRecord(Batches.Copy(RecordBatchDecoder.GetDecompressedRecords(scratch.AsSpan(0, written), header)));
    }

    [Test]
    public void SaramaEmptyBatch_ChecksAndHasNoRecords()
    {
        Assert.That(RecordBatchDecoder.Check(s_empty, 1024, out RecordBatchHeader header), Is.EqualTo(BatchCheck.Valid));
        Assert.That(header.TotalSize, Is.EqualTo(61));
        Assert.That(Batches.Copy(RecordBatchDecoder.GetRecords(s_empty, header)), Is.Empty);
    }

    [Test]
    public void OurEncodingOfTheSameRecord_HasTheSameRecordBytesExceptTheTimestampDelta()
    {
        // We give every record the batch timestamp (delta 0), so only that byte differs: 10 (zigzag 5) → 0.
        byte[] ours = Batches.Encode(
            [new AppendRecord(new byte[] { 1, 2, 3, 4 }, new byte[] { 5, 6, 7 }, [new RecordHeader("\b\t\n", new byte[] { 11, 12 })])],
            CompressionCodec.None);
        byte[] expected = (byte[])s_record.Clone();
        expected[2] = 0;
        Assert.That(ours[RecordBatch.RecordsOffset..], Is.EqualTo(expected));
    }

    private static void AssertTheRecord(List<DecodedRecord> records)
    {
        Assert.That(records, Has.Count.EqualTo(1));
        DecodedRecord r = records[0];
        Assert.That(r.Offset, Is.Zero);
        Assert.That(r.TimestampMs, Is.EqualTo(1_479_847_795_005));
        Assert.That(r.Key, Is.EqualTo(new byte[] { 1, 2, 3, 4 }));
        Assert.That(r.Value, Is.EqualTo(new byte[] { 5, 6, 7 }));
        Assert.That(r.Headers, Has.Length.EqualTo(1));
        Assert.That(r.Headers[0].Key, Is.EqualTo("\b\t\n"));
        Assert.That(r.Headers[0].Value, Is.EqualTo(new byte[] { 11, 12 }));
    }
}
