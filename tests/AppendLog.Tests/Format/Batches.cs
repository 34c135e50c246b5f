using System.Buffers.Binary;
using System.Buffers;
using System.Text;
using AppendLog.Format;
using NUnit.Framework;

namespace AppendLog.Tests.Format;

/// <summary>A decoded record copied out of its batch, for comparisons.</summary>
internal sealed record DecodedRecord(
    long Offset, long TimestampMs, byte[]? Key, byte[]? Value, (string Key, byte[]? Value)[] Headers);

/// <summary>Test helpers around the encoder and decoder.</summary>
internal static class Batches
{
    public static byte[] Encode(RecordSet set) => Encode(set.Records, set.Codec, set.TimestampMs, set.LeaderEpoch);

    public static byte[] Encode(AppendRecord[] records, CompressionCodec codec, long timestampMs = 1_700_000_000_000, int leaderEpoch = 1)
    {
        if (codec == CompressionCodec.None)
        {
            var batch = new byte[RecordBatchEncoder.MeasureUncompressed(records)];
            int length = RecordBatchEncoder.Encode(batch, records, timestampMs, leaderEpoch);
            Assert.That(length, Is.EqualTo(batch.Length), "Encode returns the measured size");
            return batch;
        }

        var destination = new byte[RecordBatchEncoder.MeasureCompressedMax(records)];
        var scratch = new byte[RecordBatchEncoder.MeasureRecords(records)];
        int size = RecordBatchEncoder.EncodeCompressed(destination, scratch, records, timestampMs, leaderEpoch);
        return destination[..size];
    }

    /// <summary>Checks, then decodes every record of <paramref name="batch"/> (either codec) into copies.</summary>
    public static List<DecodedRecord> Decode(byte[] batch)
    {
        BatchCheck check = RecordBatchDecoder.Check(batch, batch.Length, out RecordBatchHeader header);
        Assert.That(check, Is.EqualTo(BatchCheck.Valid));
        if (header.Codec == CompressionCodec.None)
        {
            return Copy(RecordBatchDecoder.GetRecords(batch, header));
        }

        var scratch = new byte[16 * 1024 * 1024];
        OperationStatus status = RecordBatchDecoder.DecompressRecords(batch, header, scratch, out int written);
        Assert.That(status, Is.EqualTo(OperationStatus.Done));
        return Copy(RecordBatchDecoder.GetDecompressedRecords(scratch.AsSpan(0, written), header));
    }

    public static List<DecodedRecord> Copy(RecordEnumerator records)
    {
        var list = new List<DecodedRecord>();
        foreach (RecordView record in records)
        {
            var headers = new List<(string, byte[]?)>();
            foreach (RecordHeaderView h in record.Headers)
            {
                headers.Add((Encoding.UTF8.GetString(h.KeyUtf8), h.HasValue ? h.Value.ToArray() : null));
            }

            list.Add(new DecodedRecord(
                record.Offset,
                record.TimestampMs,
                record.HasKey ? record.Key.ToArray() : null,
                record.HasValue ? record.Value.ToArray() : null,
                [.. headers]));
        }

        return list;
    }

    /// <summary>
    /// Builds a batch around a hand-made records section, with a correct header and CRC (from the reference
    /// CRC), so decoder tests can feed it malformed records that Check still passes.
    /// </summary>
    public static byte[] Raw(ReadOnlySpan<byte> records, int recordCount, int lastOffsetDelta, CompressionCodec codec = CompressionCodec.None)
    {
        var batch = new byte[RecordBatch.HeaderSize + records.Length];
        BinaryPrimitives.WriteInt32BigEndian(batch.AsSpan(RecordBatch.BatchLengthOffset), batch.Length - RecordBatch.LogOverhead);
        batch[RecordBatch.MagicOffset] = 2;
        BinaryPrimitives.WriteInt16BigEndian(batch.AsSpan(RecordBatch.AttributesOffset), (short)codec);
        BinaryPrimitives.WriteInt32BigEndian(batch.AsSpan(RecordBatch.LastOffsetDeltaOffset), lastOffsetDelta);
        BinaryPrimitives.WriteInt32BigEndian(batch.AsSpan(RecordBatch.RecordCountOffset), recordCount);
        records.CopyTo(batch.AsSpan(RecordBatch.RecordsOffset));
        Reseal(batch);
        return batch;
    }

    /// <summary>Recomputes the CRC after a test edited bytes inside the CRC's range.</summary>
    public static void Reseal(byte[] batch) =>
        BinaryPrimitives.WriteUInt32BigEndian(
            batch.AsSpan(RecordBatch.CrcOffset), ReferenceCrc32C.Compute(batch.AsSpan(RecordBatch.AttributesOffset)));

    public static void AssertMatches(List<DecodedRecord> decoded, AppendRecord[] records, long baseOffset, long timestampMs)
    {
        Assert.That(decoded, Has.Count.EqualTo(records.Length));
        for (int i = 0; i < records.Length; i++)
        {
            AppendRecord expected = records[i];
            DecodedRecord actual = decoded[i];
            Assert.That(actual.Offset, Is.EqualTo(baseOffset + i), $"offset of record {i}");
            Assert.That(actual.TimestampMs, Is.EqualTo(timestampMs), $"timestamp of record {i}");
            Assert.That(actual.Key, Is.EqualTo(expected.HasKey ? expected.Key.ToArray() : null), $"key of record {i}");
            Assert.That(actual.Value, Is.EqualTo(expected.HasValue ? expected.Value.ToArray() : null), $"value of record {i}");
            IReadOnlyList<RecordHeader> headers = expected.Headers ?? [];
            Assert.That(actual.Headers, Has.Length.EqualTo(headers.Count), $"header count of record {i}");
            for (int h = 0; h < headers.Count; h++)
            {
                Assert.That(actual.Headers[h].Key, Is.EqualTo(headers[h].Key), $"header {h} key of record {i}");
                Assert.That(actual.Headers[h].Value, Is.EqualTo(headers[h].Value.ToArray()), $"header {h} value of record {i}");
            }
        }
    }
}
