using System.Text;
using AppendLog.Appender;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Compaction;

/// <summary>One appended record as the test remembers it.</summary>
internal sealed record Appended(long Offset, byte[]? Key, byte[]? Value)
{
    public bool IsTombstone => Key is not null && Value is null;

    public string KeyText => Key is null ? "<none>" : Encoding.UTF8.GetString(Key);
}

/// <summary>
/// The reference model of key compaction and the helpers the compaction tests share: a random keyed workload, the
/// records a compaction must leave, and a comparison that names the first difference.
/// </summary>
internal static class CompactionModel
{
    public const string Dir = "/sim/compact";
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    public static readonly IoWorkers Io = new(2, "sim-compact-io");

    public static LogOptions Options(TimeProvider time, CompressionCodec codec = CompressionCodec.None) => new()
    {
        Directory = Dir,
        SegmentSize = 1024 * 1024,
        MaximumBatchSize = 64 * 1024,
        PreallocationMinimumStep = 128 * 1024,
        PreallocationMaximumStep = 256 * 1024,
        TimeProvider = time,
        TombstoneRetention = TimeSpan.FromHours(1),
        Compression = codec,
    };

    public static Task<SegmentedLog> OpenAsync(SimulatedStorage storage, LogOptions options) =>
        SegmentedLog.OpenAsync(options, storage, Io, CancellationToken.None).AsTask().WaitAsync(Bound);

    /// <summary>
    /// Appends <paramref name="count"/> records over <paramref name="keys"/> keys: single records and batches of up to
    /// five, one in ten without a key, one in eight a tombstone, values of 100 to 3,000 bytes.
    /// </summary>
    public static async Task AppendRandomAsync(SegmentedLog log, Random random, int count, int keys, List<Appended> into)
    {
        int written = 0;
        while (written < count)
        {
            int n = random.Next(3) == 0 ? random.Next(2, 6) : 1;
            var batch = new AppendRecord[n];
            var remembered = new (byte[]? Key, byte[]? Value)[n];
            for (int i = 0; i < n; i++)
            {
                byte[]? key = random.Next(10) == 0 ? null : Encoding.UTF8.GetBytes($"key-{random.Next(keys)}");
                bool tombstone = key is not null && random.Next(8) == 0;
                byte[]? value = tombstone ? null : Value(random);
                batch[i] = key is null ? new AppendRecord(value!) : tombstone ? AppendRecord.Tombstone(key) : new AppendRecord(key, value!);
                remembered[i] = (key, value);
            }

            long first = n == 1 ? await log.AppendAsync(batch[0]) : await log.AppendBatchAsync(batch);
            for (int i = 0; i < n; i++)
            {
                into.Add(new Appended(first + i, remembered[i].Key, remembered[i].Value));
            }

            written += n;
        }
    }

    public static byte[] Value(Random random)
    {
        var bytes = new byte[random.Next(100, 3000)];
        random.NextBytes(bytes);
        return bytes;
    }

    public static async Task<List<LogRecord>> ReadAllAsync(SegmentedLog log)
    {
        var records = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(log.StartOffset))
        {
            records.Add(r);
        }

        return records;
    }

    /// <summary>
    /// What a complete compaction leaves: every record at or after <paramref name="activeBase"/> (the active segment is
    /// never rewritten); before it, records without a key and each key's newest record, unless that is a tombstone
    /// timestamped before <paramref name="expiredBeforeOffset"/>'s time (the caller passes the first offset appended after
    /// the tombstone cutoff, or 0 when no tombstone has expired).
    /// </summary>
    public static List<Appended> Expected(IReadOnlyList<Appended> appended, long activeBase, long expiredBeforeOffset)
    {
        var newest = Newest(appended);
        return appended.Where(a =>
            a.Offset >= activeBase
            || a.Key is null
            || (newest[a.KeyText] == a.Offset && !(a.IsTombstone && a.Offset < expiredBeforeOffset))).ToList();
    }

    public static Dictionary<string, long> Newest(IReadOnlyList<Appended> appended)
    {
        var newest = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var a in appended.Where(a => a.Key is not null))
        {
            newest[a.KeyText] = a.Offset;
        }

        return newest;
    }

    /// <summary>Asserts the log holds exactly <paramref name="expected"/>, record by record, at the same offsets.</summary>
    public static void AssertExactly(IReadOnlyList<LogRecord> actual, IReadOnlyList<Appended> expected, string context)
    {
        for (int i = 0; i < Math.Min(actual.Count, expected.Count); i++)
        {
            AssertSame(actual[i], expected[i], $"{context}: record #{i}");
        }

        Assert.That(actual, Has.Count.EqualTo(expected.Count), $"{context}: record count");
    }

    public static void AssertSame(LogRecord actual, Appended expected, string context)
    {
        if (actual.Offset != expected.Offset || !Same(actual.Key, expected.Key) || !Same(actual.Value, expected.Value))
        {
            Assert.Fail($"{context}: got offset {actual.Offset} key {Text(actual.Key)} value {actual.Value?.Length.ToString() ?? "null"}; " +
                        $"expected offset {expected.Offset} key {expected.KeyText} value {expected.Value?.Length.ToString() ?? "null"}");
        }
    }

    public static bool Same(byte[]? a, byte[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);

    /// <summary>The base offset of the last segment file (the active one after a reopen).</summary>
    public static long LastSegmentBase(SimulatedStorage storage) =>
        storage.ListFiles(Dir).Where(n => n.EndsWith(".log", StringComparison.Ordinal)).Select(n => long.Parse(n[..20], System.Globalization.CultureInfo.InvariantCulture)).Max();

    private static string Text(byte[]? key) => key is null ? "<none>" : Encoding.UTF8.GetString(key);
}
