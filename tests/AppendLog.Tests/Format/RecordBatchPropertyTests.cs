using System.Buffers.Binary;
using System.Buffers;
using AppendLog.Format;
using NUnit.Framework;

namespace AppendLog.Tests.Format;

/// <summary>
/// FsCheck properties of the batch format. On failure FsCheck prints the seed ("Replay"); paste it into
/// <c>[FsCheck.NUnit.Property(Replay = "...")]</c> to rerun the exact case.
/// </summary>
public sealed class RecordBatchPropertyTests
{
    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(FormatArbitraries) }, MaxTest = 200)]
    public void EncodeThenDecode_ReturnsTheRecords(RecordSet set, long baseOffset)
    {
        byte[] batch = Batches.Encode(set);
        RecordBatchEncoder.PatchBaseOffset(batch, baseOffset);

        List<DecodedRecord> decoded = Batches.Decode(batch);

        Batches.AssertMatches(decoded, set.Records, baseOffset, set.TimestampMs);
        RecordBatchHeader.TryRead(batch, out RecordBatchHeader header);
        Assert.That(header.Codec, Is.EqualTo(set.Codec));
        Assert.That(header.RecordCount, Is.EqualTo(set.Records.Length));
        Assert.That(header.PartitionLeaderEpoch, Is.EqualTo(set.LeaderEpoch));
        if (set.Codec == CompressionCodec.None)
        {
            Assert.That(batch, Has.Length.EqualTo(RecordBatchEncoder.MeasureUncompressed(set.Records)), "Measure is exact");
        }
        else
        {
            Assert.That(batch, Has.Length.LessThanOrEqualTo(RecordBatchEncoder.MeasureCompressedMax(set.Records)), "within the bound");
        }
    }

    /// <summary>
    /// Flips one bit anywhere in a batch and pins what Check reports for each region. The batch is followed by
    /// random bytes up to maxBatchSize, as inside a segment, so a batchLength grown by the flip lands on bytes
    /// that exist (→ BadCrc) or beyond the limit (→ BadLength), never on a short read.
    /// </summary>
    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(FormatArbitraries) }, MaxTest = 300)]
    public void AnySingleBitFlip_IsDetectedOrPinned(RecordSet set, int bitSeed, int paddingSeed)
    {
        byte[] batch = Batches.Encode(set);
        var data = new byte[batch.Length + 256];
        new Random(paddingSeed).NextBytes(data);
        batch.CopyTo(data, 0);
        int bit = (int)((uint)bitSeed % (uint)(batch.Length * 8));

        AssertFlipOutcome(data, bit);
    }

    [Test]
    public void EverySingleBitFlip_InOneBatchOfEachCodec_IsDetectedOrPinned()
    {
        AppendRecord[] records = [new AppendRecord("key"u8.ToArray(), FormatArbitraries.Fill(300, 1, 7), [new RecordHeader("h", new byte[] { 9 })]), AppendRecord.Tombstone(new byte[] { 1 })];
        foreach (CompressionCodec codec in new[] { CompressionCodec.None, CompressionCodec.Lz4 })
        {
            byte[] batch = Batches.Encode(records, codec);
            var data = new byte[batch.Length + 64];
            batch.CopyTo(data, 0);
            for (int bit = 0; bit < batch.Length * 8; bit++)
            {
                AssertFlipOutcome(data, bit);
            }
        }
    }

    private static void AssertFlipOutcome(byte[] data, int bit)
    {
        int index = bit / 8;
        byte[] flipped = (byte[])data.Clone();
        flipped[index] ^= (byte)(1 << (bit % 8));
        BatchCheck check = RecordBatchDecoder.Check(flipped, data.Length, out RecordBatchHeader header);
        string where = $"bit {bit % 8} of byte {index}";

        if (index < RecordBatch.BatchLengthOffset || (index >= RecordBatch.PartitionLeaderEpochOffset && index < RecordBatch.MagicOffset))
        {
            // baseOffset and partitionLeaderEpoch are outside the CRC, as in Kafka (so offsets can be assigned
            // after encoding). Check cannot see this flip and must say Valid; the log detects a damaged base
            // offset because it must equal the offset expected next. A damaged epoch is not detected by the
            // batch at all (as in Kafka); users of the stored term must cross-check it against a checksummed
            // term history. The header shows the damaged value so those checks can see it.
            Assert.That(check, Is.EqualTo(BatchCheck.Valid), where);
            Assert.That(flipped.AsSpan(0, 16).SequenceEqual(data.AsSpan(0, 16)), Is.False);
        }
        else if (index < RecordBatch.PartitionLeaderEpochOffset)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(flipped.AsSpan(RecordBatch.BatchLengthOffset));
            bool outOfBounds = length < RecordBatch.BatchLengthMin || RecordBatch.LogOverhead + (long)length > data.Length;
            Assert.That(check, Is.EqualTo(outOfBounds ? BatchCheck.BadLength : BatchCheck.BadCrc), $"{where}: batchLength {length}");
        }
        else if (index == RecordBatch.MagicOffset)
        {
            Assert.That(check, Is.EqualTo(BatchCheck.BadMagic), where);
        }
        else
        {
            // The crc field itself or anything it covers: CRC-32C detects every single-bit error.
            Assert.That(check, Is.EqualTo(BatchCheck.BadCrc), where);
        }

        Assert.That(header.BatchLength, Is.EqualTo(BinaryPrimitives.ReadInt32BigEndian(flipped.AsSpan(8))), "header is reported");
    }

    [Test]
    public void GrownLength_AtTheEndOfTheData_IsIncomplete()
    {
        // Pinned behaviour: when a flip grows batchLength and the batch is the last thing in the data (the end of
        // the file), Check cannot tell it from a torn write and says Incomplete. Recovery may treat Incomplete as
        // a torn tail only beyond the last durable position; at or below it (or in a sealed segment) it must
        // report LogCorruptedException. (A preallocated file has bytes past the batch, which give BadCrc.)
        byte[] batch = Batches.Encode([new AppendRecord(new byte[10])], CompressionCodec.None);
        batch[RecordBatch.BatchLengthOffset + 2] ^= 0x01; // batchLength 66 + 256

        Assert.That(RecordBatchDecoder.Check(batch, 4096, out _), Is.EqualTo(BatchCheck.Incomplete));
    }

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(FormatArbitraries) }, MaxTest = 100)]
    public void EveryTruncation_IsIncomplete(RecordSet set)
    {
        byte[] batch = Batches.Encode(set);
        for (int length = 0; length < batch.Length; length++)
        {
            Assert.That(RecordBatchDecoder.Check(batch.AsSpan(0, length), batch.Length, out _), Is.EqualTo(BatchCheck.Incomplete), $"{length} of {batch.Length} bytes");
        }

        Assert.That(RecordBatchDecoder.Check(batch, batch.Length, out _), Is.EqualTo(BatchCheck.Valid));
        Assert.That(RecordBatchDecoder.Check(batch, batch.Length - 1, out _), Is.EqualTo(BatchCheck.BadLength), "over the caller's limit");
    }

    [FsCheck.NUnit.Property(MaxTest = 2000)]
    public void RandomGarbage_NeverThrowsFromCheck(byte[] garbage, int maxSeed)
    {
        int maxBatchSize = RecordBatch.HeaderSize + (int)((uint)maxSeed % 100_000);
        BatchCheck check = RecordBatchDecoder.Check(garbage, maxBatchSize, out _);
        Assert.That(Enum.IsDefined(check), Is.True);
        Assert.That(check == BatchCheck.Valid, Is.EqualTo(ReferenceValid(garbage, maxBatchSize)));
    }

    [FsCheck.NUnit.Property(MaxTest = 2000)]
    public void GarbageWithAValidHeader_DecodesOrThrowsFormatException(byte[] records, int count, bool lz4)
    {
        // A damaged batch whose CRC was recomputed over the damage (or a bug in a writer) passes Check; the
        // record decoder is the last line and may only throw RecordBatchFormatException.
        byte[] batch = Batches.Raw(records, count, lastOffsetDelta: count - 1, lz4 ? CompressionCodec.Lz4 : CompressionCodec.None);
        Assert.That(RecordBatchDecoder.Check(batch, batch.Length, out RecordBatchHeader header), Is.EqualTo(BatchCheck.Valid));
        DecodeAllAllowingFormatException(batch, header);
    }

    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(FormatArbitraries) }, MaxTest = 300)]
    public void DamageUnderARecomputedCrc_DecodesOrThrowsFormatException(RecordSet set, int positionSeed, byte xor)
    {
        byte[] batch = Batches.Encode(set);
        int position = RecordBatch.RecordsOffset + (int)((uint)positionSeed % (uint)(batch.Length - RecordBatch.RecordsOffset));
        batch[position] ^= xor == 0 ? (byte)1 : xor;
        Batches.Reseal(batch);
        Assert.That(RecordBatchDecoder.Check(batch, batch.Length, out RecordBatchHeader header), Is.EqualTo(BatchCheck.Valid));
        DecodeAllAllowingFormatException(batch, header);
    }

    /// <summary>Any exception other than RecordBatchFormatException escapes and fails the property.</summary>
    private static void DecodeAllAllowingFormatException(byte[] batch, RecordBatchHeader header)
    {
        try
        {
            DecodeAll(batch, header);
        }
        catch (RecordBatchFormatException ex)
        {
            Assert.That(ex.Message, Does.StartWith("Malformed"));
        }
    }

    private static int DecodeAll(byte[] batch, RecordBatchHeader header)
    {
        int seen = 0;
        ReadOnlySpan<byte> records;
        var scratch = new byte[1024 * 1024];
        if (header.Codec == CompressionCodec.Lz4)
        {
            if (RecordBatchDecoder.DecompressRecords(batch, header, scratch, out int written) != OperationStatus.Done)
            {
                return -1;
            }

            records = scratch.AsSpan(0, written);
        }
        else
        {
            records = batch.AsSpan(RecordBatch.RecordsOffset);
        }

        foreach (RecordView record in RecordBatchDecoder.GetDecompressedRecords(records, header))
        {
            seen += record.Key.Length + record.Value.Length;
            foreach (RecordHeaderView h in record.Headers)
            {
                seen += h.KeyUtf8.Length + h.Value.Length;
            }
        }

        return seen;
    }

    private static bool ReferenceValid(byte[] data, int maxBatchSize)
    {
        // Independent restatement of "valid" for random input: enough bytes, sane length, magic 2, CRC matches.
        if (data.Length < 61)
        {
            return false;
        }

        int length = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(8));
        return length >= 49 && length + 12L <= data.Length && length + 12L <= maxBatchSize && data[16] == 2
            && BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(17)) == ReferenceCrc32C.Compute(data.AsSpan(21, length - 9));
    }
}
