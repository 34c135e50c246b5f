using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// A clock the test sets by hand, also backwards (FakeTimeProvider refuses that): the log stamps each batch with
/// <see cref="GetUtcNow"/> when it encodes it, so the test decides every record's timestamp.
/// </summary>
internal sealed class ManualClock(long nowMs) : TimeProvider
{
    public long NowMs { get; set; } = nowMs;

    public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(NowMs);
}

/// <summary>One record as the model expects to read it back.</summary>
internal sealed record ModelRecord(long Offset, long TimestampMs, byte[]? Key, byte[] Value, RecordHeader[] Headers);

/// <summary>One batch as appended: its offsets, its timestamp, and (once read back) its size on disk.</summary>
internal sealed class ModelBatch(long baseOffset, int count, long timestampMs)
{
    public long BaseOffset { get; } = baseOffset;

    public int Count { get; } = count;

    public long LastOffset => BaseOffset + Count - 1;

    public long TimestampMs { get; } = timestampMs;

    /// <summary>Segment file base offset and byte position, filled in by <see cref="ReadModel.LocateBatchesAsync"/>.</summary>
    public long SegmentBase { get; set; } = -1;

    public long Position { get; set; } = -1;

    public int Length { get; set; }
}

/// <summary>
/// The in-memory model of a log: every record appended, in offset order, with the batch it came in. Only public
/// behaviour is used: the API, the segment file names (base offset in 20 digits) and the Kafka RecordBatch v2
/// layout the README promises byte for byte.
/// </summary>
internal sealed class ReadModel
{
    /// <summary>The sparse index's documented interval (README, "Choosing the defaults").</summary>
    public const int IndexIntervalBytes = 32 * 1024;

    public List<ModelRecord> Records { get; } = [];

    public List<ModelBatch> Batches { get; } = [];

    public long EndOffset => Records.Count == 0 ? StartOffset : Records[^1].Offset + 1;

    /// <summary>Records below this offset were removed from the log (prefix truncation, retention).</summary>
    public long StartOffset { get; set; }

    public static byte[] Fill(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Builds one record per size, with keys and a header when asked.</summary>
    public static AppendRecord[] MakeRecords(int[] sizes, bool keyed, int seed)
    {
        var records = new AppendRecord[sizes.Length];
        for (int i = 0; i < sizes.Length; i++)
        {
            byte[] value = Fill(sizes[i], unchecked((seed * 31) + i));
            records[i] = keyed
                ? new AppendRecord(BitConverter.GetBytes(unchecked((seed * 1000L) + i)), value, [new RecordHeader("h", new byte[] { (byte)i, 7 })])
                : new AppendRecord(value);
        }

        return records;
    }

    /// <summary>Adds a batch the log accepted at <paramref name="baseOffset"/> with timestamp <paramref name="timestampMs"/>.</summary>
    public void Add(long baseOffset, AppendRecord[] records, long timestampMs)
    {
        Assert.That(baseOffset, Is.EqualTo(EndOffset), "offsets are dense: a batch starts where the previous one ended");
        Batches.Add(new ModelBatch(baseOffset, records.Length, timestampMs));
        for (int i = 0; i < records.Length; i++)
        {
            var r = records[i];
            Records.Add(new ModelRecord(
                baseOffset + i,
                timestampMs,
                r.HasKey ? r.Key.ToArray() : null,
                r.Value.ToArray(),
                r.Headers is null ? [] : [.. r.Headers]));
        }
    }

    /// <summary>Forgets every record at or after <paramref name="fromOffset"/> (suffix truncation at a batch start).</summary>
    public void TruncateSuffix(long fromOffset)
    {
        Records.RemoveAll(r => r.Offset >= fromOffset);
        Batches.RemoveAll(b => b.BaseOffset >= fromOffset);
        Assert.That(Batches.Count == 0 || Batches[^1].LastOffset == fromOffset - 1, "the cut is at a batch boundary");
    }

    /// <summary>Forgets every record below <paramref name="startOffset"/>.</summary>
    public void TruncatePrefix(long startOffset)
    {
        Records.RemoveAll(r => r.Offset < startOffset);
        Batches.RemoveAll(b => b.BaseOffset < startOffset);
        StartOffset = startOffset;
    }

    /// <summary>The record at <paramref name="offset"/> (the model is dense from <see cref="StartOffset"/>).</summary>
    public ModelRecord At(long offset) => Records[(int)(offset - StartOffset)];

    /// <summary>The first offset whose timestamp is at or after <paramref name="targetMs"/>, else the end.</summary>
    public long FirstOffsetAtOrAfter(long targetMs)
    {
        foreach (var r in Records)
        {
            if (r.TimestampMs >= targetMs)
            {
                return r.Offset;
            }
        }

        return EndOffset;
    }

    /// <summary>The base offsets of the segment files in <paramref name="directory"/>, ascending.</summary>
    public static List<long> SegmentBases(string directory)
    {
        var bases = new List<long>();
        foreach (string path in Directory.GetFiles(directory, "*.log"))
        {
            string name = Path.GetFileNameWithoutExtension(path);
            if (name.Length == 20 && long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out long b))
            {
                bases.Add(b);
            }
        }

        bases.Sort();
        return bases;
    }

    public static string SegmentPath(string directory, long baseOffset) =>
        Path.Combine(directory, baseOffset.ToString("D20", CultureInfo.InvariantCulture) + ".log");

    /// <summary>
    /// Reads every batch once and assigns each model batch its segment and byte position (batches lie back to back
    /// in a segment from position 0), checking that the log's batches tile the model exactly.
    /// </summary>
    public async Task LocateBatchesAsync(SegmentedLog log)
    {
        var bases = SegmentBases(log.Directory);
        int i = 0;
        long segment = -1, position = 0;
        await foreach (var batch in log.ReadBatchesAsync(StartOffset))
        {
            Assert.That(i, Is.LessThan(Batches.Count), "no batch beyond the model's");
            var m = Batches[i++];
            Assert.That((batch.BaseOffset, batch.RecordCount), Is.EqualTo((m.BaseOffset, m.Count)), "batch boundaries");
            long owner = bases.FindLast(b => b <= batch.BaseOffset);
            if (owner != segment)
            {
                Assert.That(owner, Is.EqualTo(batch.BaseOffset), "a segment starts with a batch");
                segment = owner;
                position = 0;
            }

            m.SegmentBase = segment;
            m.Position = position;
            m.Length = batch.Bytes.Length;
            position += m.Length;
        }

        Assert.That(i, Is.EqualTo(Batches.Count), "every model batch was read");
    }

    /// <summary>
    /// At most <paramref name="count"/> of <paramref name="offsets"/>: the start, the end and the segment bases always,
    /// the rest drawn at random.
    /// </summary>
    public SortedSet<long> Sample(SortedSet<long> offsets, IReadOnlyList<long> segmentBases, int count, Random random)
    {
        var must = new SortedSet<long>(offsets.Where(o => o <= StartOffset + 1 || o >= EndOffset - 1 || segmentBases.Contains(o)));
        var rest = offsets.Except(must).ToArray();
        random.Shuffle(rest);
        must.UnionWith(rest.Take(Math.Max(0, count - must.Count)));
        return must;
    }

    /// <summary>
    /// Offsets worth probing: start, end, around every segment base and around every offset the sparse index holds
    /// (a batch that starts at least <see cref="IndexIntervalBytes"/> after the previous entry), clipped to the log.
    /// </summary>
    public SortedSet<long> BoundaryOffsets(IReadOnlyList<long> segmentBases)
    {
        var offsets = new SortedSet<long> { StartOffset, StartOffset + 1, EndOffset - 1, EndOffset };
        foreach (long b in segmentBases)
        {
            offsets.UnionWith([b - 1, b, b + 1]);
        }

        long segment = -1, lastEntry = 0;
        foreach (var batch in Batches)
        {
            if (batch.SegmentBase != segment)
            {
                segment = batch.SegmentBase;
                lastEntry = -IndexIntervalBytes;
            }

            if (batch.Position - lastEntry >= IndexIntervalBytes)
            {
                lastEntry = batch.Position;
                offsets.UnionWith([batch.BaseOffset - 1, batch.BaseOffset, batch.BaseOffset + 1, batch.LastOffset]);
            }
        }

        offsets.RemoveWhere(o => o < StartOffset || o > EndOffset);
        return offsets;
    }

    /// <summary>Checks records read from the log against the model, byte for byte, starting at <paramref name="from"/>.</summary>
    public void AssertRecords(IReadOnlyList<LogRecord> read, long from, bool wholeRest, string context)
    {
        long expectedCount = EndOffset - from;
        if (wholeRest)
        {
            Assert.That(read, Has.Count.EqualTo(expectedCount), $"{context}: records from {from} to the end");
        }

        for (int i = 0; i < read.Count; i++)
        {
            var r = read[i];
            var m = At(from + i);
            if (r.Offset != m.Offset || r.TimestampMs != m.TimestampMs || !r.Value.AsSpan().SequenceEqual(m.Value)
                || !SameKey(r.Key, m.Key) || !SameHeaders(r.Headers, m.Headers))
            {
                Assert.Fail($"{context}: record {i} read from {from} is offset {r.Offset} ts {r.TimestampMs} "
                    + $"({r.Value?.Length} bytes); the model has offset {m.Offset} ts {m.TimestampMs} ({m.Value.Length} bytes)");
            }
        }
    }

    /// <summary>
    /// Checks raw batches against the model: they start with the batch holding <paramref name="from"/>, follow in
    /// order to the end, carry the Kafka v2 header the model expects, a valid CRC-32C, and equal the segment file's
    /// bytes at the model's position.
    /// </summary>
    public void AssertBatches(IReadOnlyList<LogBatch> read, long from, string directory, Dictionary<long, byte[]> files, string context, int limit = int.MaxValue)
    {
        int first = Batches.FindIndex(b => b.LastOffset >= from);
        int expected = Math.Min(limit, first < 0 ? 0 : Batches.Count - first);
        Assert.That(read, Has.Count.EqualTo(expected), $"{context}: batches from {from}");
        for (int i = 0; i < read.Count; i++)
        {
            var m = Batches[first + i];
            var bytes = read[i].Bytes.Span;
            Assert.That(read[i].BaseOffset, Is.EqualTo(m.BaseOffset), $"{context}: batch {i}");
            Assert.That(BinaryPrimitives.ReadInt64BigEndian(bytes), Is.EqualTo(m.BaseOffset), $"{context}: baseOffset field");
            Assert.That(BinaryPrimitives.ReadInt32BigEndian(bytes[8..]), Is.EqualTo(bytes.Length - 12), $"{context}: batchLength field");
            Assert.That(bytes[16], Is.EqualTo(2), $"{context}: magic");
            Assert.That(BinaryPrimitives.ReadInt64BigEndian(bytes[35..]), Is.EqualTo(m.TimestampMs), $"{context}: maxTimestamp field");
            Assert.That(BinaryPrimitives.ReadInt32BigEndian(bytes[57..]), Is.EqualTo(m.Count), $"{context}: records field");
            Assert.That(Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, bytes[21..]), Is.EqualTo(BinaryPrimitives.ReadUInt32BigEndian(bytes[17..])), $"{context}: CRC-32C");
            if (!files.TryGetValue(m.SegmentBase, out byte[]? file))
            {
                file = files[m.SegmentBase] = File.ReadAllBytes(SegmentPath(directory, m.SegmentBase));
            }

            Assert.That(bytes.SequenceEqual(file.AsSpan((int)m.Position, m.Length)), Is.True, $"{context}: batch at {m.BaseOffset} equals the file's bytes");
        }
    }

    private static bool SameKey(byte[]? a, byte[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);

    private static bool SameHeaders(IReadOnlyList<RecordHeader> a, RecordHeader[] b)
    {
        if (a.Count != b.Length)
        {
            return false;
        }

        for (int i = 0; i < b.Length; i++)
        {
            if (a[i].Key != b[i].Key || !a[i].Value.Span.SequenceEqual(b[i].Value.Span))
            {
                return false;
            }
        }

        return true;
    }
}
