using System.Buffers;
using System.Buffers.Binary;
using AppendLog.Format;
using AppendLog.Tests.Format;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace AppendLog.Tests.Integrity;

/// <summary>
/// Fuzzing the raw-batch validator with FsCheck: valid batches of every codec, mutated (truncated, bits flipped with
/// and without the CRC recomputed, header fields edited, bytes inserted or removed, trailing bytes, the records
/// under the compression damaged and recompressed). The property: the validator either accepts a batch that then
/// decodes cleanly in full, or refuses it with <see cref="InvalidRecordBatchException"/> naming a documented check;
/// never any other exception. A short run by default; set APPENDLOG_FUZZ_RUNS (for example 200000) for a long one.
/// On failure FsCheck prints the seed to replay.
/// </summary>
[CancelAfter(600_000)]
public sealed class RawBatchFuzzTests
{
    private const int MaximumBatchSize = 1024 * 1024;
    private const int DecompressedLimit = 4 * 1024 * 1024;

    private static readonly HashSet<string> s_checks =
    [
        "header", "batchLength", "maximumBatchSize", "magic", "crc", "codec", "offsetRange", "compressedPayload",
        "recordCount", "recordLength", "attributes", "timestampDelta", "offsetDelta", "key", "value", "headerCount",
        "headerKey", "headerValue",
    ];

    /// <summary>What a mutation does; <see cref="Seed"/> drives its positions and values.</summary>
    public sealed record Mutation(int Kind, int Seed)
    {
        public override string ToString() => $"Mutation(kind {Kind}, seed {Seed})";
    }

    private static Gen<(RecordSet Set, CompressionCodec Codec, Mutation[] Mutations)> Cases() =>
        from set in FormatArbitraries.RecordSetGen()
        from codec in Gen.Elements(CompressionCodec.None, CompressionCodec.Gzip, CompressionCodec.Snappy, CompressionCodec.Lz4, CompressionCodec.Zstd)
        from count in Gen.Frequency((6, Gen.Constant(1)), (3, Gen.Constant(2)), (1, Gen.Constant(4)))
        from mutations in Gen.ArrayOf(
            from kind in Gen.Choose(0, 8)
            from seed in ArbMap.Default.GeneratorFor<int>()
            select new Mutation(kind, seed), count)
        select (set, codec, mutations);

    [Test]
    public void MutatedBatches_AreAcceptedAndDecodeCleanly_OrRefusedWithTheTypedException()
    {
        int runs = int.TryParse(Environment.GetEnvironmentVariable("APPENDLOG_FUZZ_RUNS"), out int n) && n > 0 ? n : 400;
        int accepted = 0, refused = 0;
        var byCheck = new Dictionary<string, int>();
        Check.One(
            Config.QuickThrowOnFailure.WithMaxTest(runs),
            Prop.ForAll(Cases().ToArbitrary(), c =>
            {
                byte[] batch = Batches.Encode(c.Set.Records, CompressionCodec.None, c.Set.TimestampMs, c.Set.LeaderEpoch);
                batch = Recode(batch, c.Codec);
                foreach (var m in c.Mutations)
                {
                    batch = Mutate(batch, m);
                }

                if (Outcome(batch) is { } check)
                {
                    refused++;
                    byCheck[check] = byCheck.GetValueOrDefault(check) + 1;
                }
                else
                {
                    accepted++;
                }
            }));

        TestContext.Out.WriteLine($"{accepted + refused} executions: {accepted} accepted and decoded, {refused} refused: "
            + string.Join(", ", byCheck.OrderByDescending(p => p.Value).Select(p => $"{p.Key} {p.Value}")));
        Assert.That(refused, Is.GreaterThan(0), "the mutations reach the refusals");
        Assert.That(byCheck.Keys.Count, Is.GreaterThanOrEqualTo(runs >= 400 ? 6 : 1), "the mutations reach many different checks");
    }

    /// <summary>Null when accepted (after decoding every record), else the check that refused it.</summary>
    private static string? Outcome(byte[] batch)
    {
        RecordBatchHeader header;
        try
        {
            header = RecordBatchValidator.Validate(batch, MaximumBatchSize, DecompressedLimit, "batch");
        }
        catch (InvalidRecordBatchException e)
        {
            Assert.That(s_checks, Does.Contain(e.FailedCheck), e.Message);
            return e.FailedCheck;
        }

        // Accepted: the read path's decoder must take every record without complaint.
        int decoded = 0;
        if (header.Codec == CompressionCodec.None)
        {
            foreach (var _ in RecordBatchDecoder.GetRecords(batch, header))
            {
                decoded++;
            }
        }
        else
        {
            var scratch = new byte[DecompressedLimit];
            Assert.That(RecordBatchDecoder.DecompressRecords(batch, header, scratch, out int written), Is.EqualTo(OperationStatus.Done));
            foreach (var _ in RecordBatchDecoder.GetDecompressedRecords(scratch.AsSpan(0, written), header))
            {
                decoded++;
            }
        }

        Assert.That(decoded, Is.EqualTo(header.RecordCount), "an accepted batch holds exactly recordCount records");
        return null;
    }

    /// <summary>Rewrites an uncompressed batch's records section with <paramref name="codec"/>.</summary>
    private static byte[] Recode(byte[] batch, CompressionCodec codec)
    {
        RecordBatchHeader.TryRead(batch, out var header);
        if (codec == CompressionCodec.None)
        {
            return batch;
        }

        byte[] payload = RawBatchBuilder.Compress(codec, batch[RecordBatch.RecordsOffset..]);
        byte[] recoded = [.. batch[..RecordBatch.RecordsOffset], .. payload];
        BinaryPrimitives.WriteInt32BigEndian(recoded.AsSpan(RecordBatch.BatchLengthOffset), recoded.Length - RecordBatch.LogOverhead);
        BinaryPrimitives.WriteInt16BigEndian(recoded.AsSpan(RecordBatch.AttributesOffset), (short)((header.Attributes & ~RecordBatch.CodecMask) | (int)codec));
        Batches.Reseal(recoded);
        return recoded;
    }

    private static byte[] Mutate(byte[] batch, Mutation m)
    {
        var random = new Random(m.Seed);
        int records = RecordBatch.RecordsOffset;
        switch (m.Kind)
        {
            case 0: // truncate anywhere
                return batch[..random.Next(batch.Length)];
            case 1: // flip a bit under the CRC, then recompute the CRC: only the structure can catch it
            {
                byte[] copy = [.. batch];
                if (copy.Length > RecordBatch.AttributesOffset)
                {
                    int at = random.Next(RecordBatch.AttributesOffset, copy.Length);
                    copy[at] ^= (byte)(1 << random.Next(8));
                    Reseal(copy);
                }

                return copy;
            }

            case 2: // flip a bit anywhere, CRC left as it is
            {
                byte[] copy = [.. batch];
                if (copy.Length == 0)
                {
                    return copy; // an earlier truncation left nothing to flip
                }

                copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
                return copy;
            }

            case 3: // edit a header field, CRC recomputed
            {
                byte[] copy = [.. batch];
                if (copy.Length < RecordBatch.HeaderSize)
                {
                    return copy;
                }

                int[] fields = [RecordBatch.BatchLengthOffset, RecordBatch.LastOffsetDeltaOffset, RecordBatch.RecordCountOffset];
                int field = fields[random.Next(fields.Length)];
                int old = BinaryPrimitives.ReadInt32BigEndian(copy.AsSpan(field));
                int value = random.Next(3) switch { 0 => old + random.Next(-3, 4), 1 => random.Next(-2, 100), _ => random.Next() };
                BinaryPrimitives.WriteInt32BigEndian(copy.AsSpan(field), value);
                if (random.Next(4) == 0)
                {
                    copy[RecordBatch.AttributesOffset + 1] = (byte)((copy[RecordBatch.AttributesOffset + 1] & ~RecordBatch.CodecMask) | random.Next(8));
                }

                Reseal(copy);
                return copy;
            }

            case 4: // insert a byte in the records section, batchLength and CRC fixed
            case 5: // remove a byte from it, batchLength and CRC fixed
            {
                if (batch.Length <= records)
                {
                    return batch;
                }

                int at = random.Next(records, batch.Length);
                byte[] edited = m.Kind == 4
                    ? [.. batch[..at], (byte)random.Next(256), .. batch[at..]]
                    : [.. batch[..at], .. batch[(at + 1)..]];
                BinaryPrimitives.WriteInt32BigEndian(edited.AsSpan(RecordBatch.BatchLengthOffset), edited.Length - RecordBatch.LogOverhead);
                Reseal(edited);
                return edited;
            }

            case 6: // trailing bytes
                return [.. batch, .. Enumerable.Range(0, random.Next(1, 70)).Select(_ => (byte)random.Next(256))];
            case 7: // damage the records under the compression, then recompress: the codec is fine, the records are not
                return DamageUnderCodec(batch, random);
            default: // two batches in one buffer
                return [.. batch, .. batch];
        }
    }

    private static byte[] DamageUnderCodec(byte[] batch, Random random)
    {
        if (!RecordBatchHeader.TryRead(batch, out var header) || header.Codec == CompressionCodec.None
            || RecordBatchDecoder.Check(batch, int.MaxValue, out _) != BatchCheck.Valid || batch.Length != header.TotalSize
            || !BatchCompression.IsSupported(header.Codec))
        {
            return batch;
        }

        var scratch = new byte[DecompressedLimit];
        try
        {
            if (RecordBatchDecoder.DecompressRecords(batch, header, scratch, out int written) != OperationStatus.Done || written == 0)
            {
                return batch;
            }

            byte[] plain = scratch[..written];
            plain[random.Next(plain.Length)] = (byte)random.Next(256);
            byte[] payload = RawBatchBuilder.Compress(header.Codec, plain);
            byte[] damaged = [.. batch[..RecordBatch.RecordsOffset], .. payload];
            BinaryPrimitives.WriteInt32BigEndian(damaged.AsSpan(RecordBatch.BatchLengthOffset), damaged.Length - RecordBatch.LogOverhead);
            Reseal(damaged);
            return damaged;
        }
        catch (RecordBatchFormatException)
        {
            return batch; // an earlier mutation already broke the payload
        }
    }

    private static void Reseal(byte[] batch)
    {
        if (batch.Length >= RecordBatch.HeaderSize)
        {
            Batches.Reseal(batch);
        }
    }
}
