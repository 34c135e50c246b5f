using System.Text;
using FsCheck.Fluent;
using FsCheck;

namespace AppendLog.Tests.Format;

/// <summary>A generated batch input: records, codec, timestamp, epoch. Printed by FsCheck on failure.</summary>
public sealed class RecordSet
{
    public RecordSet(AppendRecord[] records, CompressionCodec codec, long timestampMs, int leaderEpoch)
    {
        Records = records;
        Codec = codec;
        TimestampMs = timestampMs;
        LeaderEpoch = leaderEpoch;
    }

    public AppendRecord[] Records { get; }

    public CompressionCodec Codec { get; }

    public long TimestampMs { get; }

    public int LeaderEpoch { get; }

    public override string ToString()
    {
        var sb = new StringBuilder($"{Records.Length} records, {Codec}, ts {TimestampMs}, epoch {LeaderEpoch}:");
        foreach (AppendRecord r in Records)
        {
            sb.Append($" [key {(r.HasKey ? r.Key.Length.ToString() : "null")}, value {(r.HasValue ? r.Value.Length.ToString() : "null")}, headers {r.Headers?.Count ?? 0}]");
        }

        return sb.ToString();
    }
}

/// <summary>Generators for the format properties. Byte contents come from a seeded <see cref="System.Random"/>
/// drawn by FsCheck, so every case replays from FsCheck's printed seed.</summary>
public static class FormatArbitraries
{
    private static readonly string[] s_headerKeys = ["", "k", "trace-id", "ключ", "🔑 emoji", new string('h', 300)];

    public static Arbitrary<RecordSet> RecordSets() => Arb.From(RecordSetGen());

    public static Gen<RecordSet> RecordSetGen() =>
        from count in Gen.Frequency((6, Gen.Choose(1, 4)), (3, Gen.Choose(5, 20)), (1, Gen.Choose(21, 60)))
        from records in Gen.ArrayOf(RecordGen(), count)
        from codec in Gen.Elements(CompressionCodec.None, CompressionCodec.Lz4)
        from timestamp in Gen.Frequency(
            (3, Gen.Constant(1_700_000_000_000L)),
            (1, Gen.Elements(0L, -1L, long.MinValue, long.MaxValue)),
            (2, ArbMap.Default.GeneratorFor<long>()))
        from epoch in Gen.Frequency((3, Gen.Choose(-1, 10)), (1, ArbMap.Default.GeneratorFor<int>()))
        select new RecordSet(records, codec, timestamp, epoch);

    public static Gen<AppendRecord> RecordGen() =>
        from shape in Gen.Choose(0, 3)
        from key in BytesGen()
        from value in BytesGen()
        from headers in Gen.Frequency(
            (2, Gen.Constant<RecordHeader[]?>(null)),
            (1, Gen.Constant<RecordHeader[]?>([])),
            (2, Gen.ArrayOf(HeaderGen(), 3).Select(h => (RecordHeader[]?)h)),
            (1, Gen.Choose(1, 12).SelectMany(n => Gen.ArrayOf(HeaderGen(), n)).Select(h => (RecordHeader[]?)h)))
        select shape switch
        {
            // The public constructors allow exactly these shapes (a keyless record cannot carry headers).
            0 => new AppendRecord(value),
            1 => new AppendRecord(key, value, headers),
            2 => AppendRecord.Tombstone(key),
            _ => default, // no key, no value, no headers
        };

    public static Gen<RecordHeader> HeaderGen() =>
        from key in Gen.Elements(s_headerKeys)
        from value in BytesGen()
        select new RecordHeader(key, value);

    /// <summary>Empty, small, or up to a few KiB; random, low-entropy or zero contents (LZ4 sees all three).</summary>
    public static Gen<byte[]> BytesGen() =>
        from length in Gen.Frequency((2, Gen.Constant(0)), (6, Gen.Choose(1, 16)), (2, Gen.Choose(17, 4096)))
        from kind in Gen.Choose(0, 2)
        from seed in ArbMap.Default.GeneratorFor<int>()
        select Fill(length, kind, seed);

    public static byte[] Fill(int length, int kind, int seed)
    {
        var bytes = new byte[length];
        var random = new Random(seed);
        switch (kind)
        {
            case 0:
                random.NextBytes(bytes);
                break;
            case 1:
                for (int i = 0; i < bytes.Length; i++)
                {
                    bytes[i] = (byte)('a' + random.Next(4)); // 2 bits of entropy per byte: compresses about 4:1
                }

                break;
            default:
                break; // zeros
        }

        return bytes;
    }
}
