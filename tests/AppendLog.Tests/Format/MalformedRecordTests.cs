using AppendLog.Format;
using NUnit.Framework;

namespace AppendLog.Tests.Format;

/// <summary>
/// Hand-made records sections that pass Check (correct CRC) but break the record grammar. Each must throw
/// RecordBatchFormatException naming the field, never read out of bounds.
/// </summary>
public sealed class MalformedRecordTests
{
    // A well-formed one-record section to mutate: length 6, attributes, tsDelta, offsetDelta 0, no key, no value, 0 headers.
    private static readonly byte[] s_minimal = [0x0C, 0, 0, 0, 0x01, 0x01, 0x00];

    [Test]
    public void MinimalRecord_Decodes() =>
        Assert.That(Decode(s_minimal, count: 1), Is.EqualTo(1));

    [TestCase(new byte[] { 0x7E, 0, 0, 0, 0x01, 0x01, 0x00 }, "record length", TestName = "Record length 63 beyond the batch")]
    [TestCase(new byte[] { 0x01, 0, 0, 0, 0x01, 0x01, 0x00 }, "record length", TestName = "Record length -1")]
    [TestCase(new byte[] { 0x0A, 0, 0, 0, 0x01, 0x01 }, "record length", TestName = "Record length below the minimum body")]
    [TestCase(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, "record length", TestName = "Record length varint overlong")]
    [TestCase(new byte[] { 0x0C, 0, 0, 0, 0x20, 0x01, 0x00 }, "key", TestName = "Key length 16 beyond the record")]
    [TestCase(new byte[] { 0x0C, 0, 0, 0, 0x03, 0x01, 0x00 }, "key", TestName = "Key length -2")]
    [TestCase(new byte[] { 0x0C, 0, 0, 0, 0x01, 0x0A, 0x00 }, "value", TestName = "Value length 5 beyond the record")]
    [TestCase(new byte[] { 0x0C, 0, 0, 0, 0x01, 0x01, 0x02 }, "header key", TestName = "One header announced, none present")]
    [TestCase(new byte[] { 0x0C, 0, 0, 0, 0x01, 0x01, 0x01 }, "headerCount", TestName = "Header count -1")]
    [TestCase(new byte[] { 0x10, 0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x00 }, "header key", TestName = "Header with a null key")]
    [TestCase(new byte[] { 0x0E, 0, 0, 0, 0x01, 0x01, 0x00, 0x55 }, "record length", TestName = "Record length leaves bytes after the headers")]
    [TestCase(new byte[] { 0x0C, 0, 0, 0x02, 0x01, 0x01, 0x00 }, "offsetDelta", TestName = "Offset delta 1 beyond lastOffsetDelta 0")]
    [TestCase(new byte[] { 0x0C, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, "timestampDelta", TestName = "Timestamp delta runs off the record")]
    [TestCase(new byte[] { 0x0C, 0, 0, 0, 0x01, 0x01, 0x00, 0x00 }, "end of batch", TestName = "Bytes after the last record")]
    [TestCase(new byte[0], "record count", TestName = "Fewer records than recordCount")]
    public void Malformed_ThrowsFormatExceptionNamingTheField(byte[] records, string field)
    {
        var ex = Assert.Throws<RecordBatchFormatException>(() => Decode(records, count: 1));
        Assert.That(ex!.Message, Does.Contain(field));
        Assert.That(ex, Is.InstanceOf<FormatException>());
        Assert.That(ex.Position, Is.InRange(0, records.Length));
    }

    [Test]
    public void OffsetDeltas_MustIncrease()
    {
        byte[] twoRecordsSameDelta = [.. s_minimal, .. s_minimal];
        var ex = Assert.Throws<RecordBatchFormatException>(() => Decode(twoRecordsSameDelta, count: 2));
        Assert.That(ex!.Message, Does.Contain("offsetDelta").And.Contain("record 1"));
    }

    [Test]
    public void NegativeRecordCount_Throws() =>
        Assert.That(() => Decode(s_minimal, count: -1), Throws.TypeOf<RecordBatchFormatException>());

    [Test]
    public void GetRecords_OnACompressedBatch_IsMisuse()
    {
        byte[] batch = Batches.Encode([new AppendRecord(new byte[3])], CompressionCodec.Lz4);
        RecordBatchHeader.TryRead(batch, out RecordBatchHeader header);
        Assert.That(() => RecordBatchDecoder.GetRecords(batch, header), Throws.ArgumentException);
        Assert.That(() => RecordBatchDecoder.DecompressRecords(Batches.Encode([default], CompressionCodec.None), header with { Attributes = 0 }, new byte[100], out _), Throws.ArgumentException);
    }

    private static int Decode(byte[] records, int count)
    {
        byte[] batch = Batches.Raw(records, count, lastOffsetDelta: Math.Max(0, count - 1));
        Assert.That(RecordBatchDecoder.Check(batch, batch.Length, out RecordBatchHeader header), Is.EqualTo(BatchCheck.Valid));
        int seen = 0;
        foreach (RecordView record in RecordBatchDecoder.GetRecords(batch, header))
        {
            seen++;
            _ = record.Offset;
        }

        return seen;
    }
}
