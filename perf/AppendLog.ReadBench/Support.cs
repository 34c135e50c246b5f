using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using HdrHistogram;

namespace AppendLog.ReadBench;

internal static class Bench
{
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static string F(double v, int digits = 1) => v.ToString("N" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    /// <summary>A latency histogram in nanoseconds, 1 ns to 60 s, 3 significant digits.</summary>
    public static LongHistogram Histogram() => new(1, 60_000_000_000L, 3);

    public static long ElapsedNs(long fromTicks, long toTicks) => (long)((toTicks - fromTicks) * (1e9 / Stopwatch.Frequency));

    public static string Duration(long ns) => ns switch
    {
        < 10_000 => $"{ns / 1000.0:F1} µs",
        < 1_000_000 => $"{ns / 1000.0:F0} µs",
        < 1_000_000_000 => $"{ns / 1e6:F2} ms",
        _ => $"{ns / 1e9:F2} s",
    };

    public static readonly double[] Percentiles = [50, 90, 99, 99.9, 99.99];

    public static Dictionary<string, long> Summary(LongHistogram h)
    {
        var d = new Dictionary<string, long> { ["count"] = h.TotalCount };
        foreach (double p in Percentiles)
        {
            d["p" + p.ToString(CultureInfo.InvariantCulture)] = h.GetValueAtPercentile(p);
        }

        d["max"] = h.GetMaxValue();
        return d;
    }

    public static string[] PercentileCells(LongHistogram h, int count) =>
        [.. Percentiles.Take(count).Select(p => Duration(h.GetValueAtPercentile(p))), Duration(h.GetMaxValue())];

    /// <summary>
    /// Empties the page cache (sync, then <c>echo 1 &gt; /proc/sys/vm/drop_caches</c>); false, with a warning printed
    /// once, when the process may not (not root).
    /// </summary>
    public static bool DropCaches()
    {
        try
        {
            using (var sync = Process.Start(new ProcessStartInfo("sync") { UseShellExecute = false }))
            {
                sync?.WaitForExit();
            }

            File.WriteAllText("/proc/sys/vm/drop_caches", "1");
            return true;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException or System.ComponentModel.Win32Exception)
        {
            if (!s_warned)
            {
                s_warned = true;
                Console.WriteLine($"# WARNING: cannot drop the page cache ({e.Message}); 'cold' rows are not cold");
            }

            return false;
        }
    }

    private static bool s_warned;

    /// <summary>The <c>Cached:</c> line of /proc/meminfo, in MiB.</summary>
    public static long PageCacheMib()
    {
        string line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("Cached:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }

    /// <summary>
    /// Log options for the benchmark. The batch-cache budget is set through <c>LogOptions.BatchCache</c> by reflection,
    /// so this program builds against the library before and after that option exists; null when it does not.
    /// </summary>
    public static LogOptions Options(string directory, long? cacheMib, out string cacheNote, long? readAheadMib = null)
    {
        var options = new LogOptions { Directory = directory };
        if (readAheadMib is { } readAhead)
        {
            options = options with { MaximumReadAhead = readAhead * 1024 * 1024 };
        }

        cacheNote = "no batch cache in this build";
        var property = typeof(LogOptions).GetProperty("BatchCache", BindingFlags.Public | BindingFlags.Instance);
        var type = typeof(LogOptions).Assembly.GetType("AppendLog.BatchCache");
        if (property is not null && type is not null)
        {
            if (cacheMib is { } mib)
            {
                object cache = Activator.CreateInstance(type, mib * 1024 * 1024)!;
                property.SetValue(options, cache);
                cacheNote = $"batch cache {mib} MiB (own instance)";
            }
            else
            {
                cacheNote = "batch cache: library default";
            }
        }
        else if (cacheMib is not null)
        {
            cacheNote = "no batch cache in this build (--cache-mib ignored)";
        }

        return options;
    }

    /// <summary>A record value: sequence number, Stopwatch timestamp at send, then filler.</summary>
    public static byte[] Payload(long sequence, int size)
    {
        var bytes = new byte[size];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, sequence);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8), Stopwatch.GetTimestamp());
        for (int i = 16; i < size; i++)
        {
            bytes[i] = (byte)(sequence + i);
        }

        return bytes;
    }

    /// <summary>
    /// Writes <paramref name="bytes"/> of records durably and fast: batches of about 512 KiB, four in flight. Then reopens
    /// once (recovery trims the active segment to its data) so the files hold only data.
    /// </summary>
    public static async Task<(long Records, double Seconds)> WriteLogAsync(string directory, long bytes, int recordSize)
    {
        int perBatch = Math.Max(1, (512 * 1024) / (recordSize + 16));
        long batches = Math.Max(1, bytes / ((long)perBatch * recordSize));
        var record = new AppendRecord(Payload(0, recordSize));
        var batch = Enumerable.Repeat(record, perBatch).ToArray();
        var clock = Stopwatch.StartNew();
        await using (var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = directory }))
        {
            long next = 0;
            await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
            {
                while (Interlocked.Increment(ref next) <= batches)
                {
                    await log.AppendBatchAsync(batch);
                }
            })));
        }

        double seconds = clock.Elapsed.TotalSeconds;
        await (await SegmentedLog.OpenAsync(new LogOptions { Directory = directory })).DisposeAsync();
        return (batches * perBatch, seconds);
    }

    public static string[] SegmentFiles(string directory) =>
        [.. System.IO.Directory.GetFiles(directory, "*.log").Order(StringComparer.Ordinal)];

    public static long DataBytes(string directory) => SegmentFiles(directory).Sum(f => new FileInfo(f).Length);

    /// <summary>Reads every segment file front to back through a buffered FileStream (the page cache): bytes read.</summary>
    public static long ReadWithFileStream(string directory)
    {
        var buffer = new byte[1024 * 1024];
        long total = 0;
        foreach (string path in SegmentFiles(directory))
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1024 * 1024, FileOptions.SequentialScan);
            int n;
            while ((n = stream.Read(buffer)) > 0)
            {
                total += n;
            }
        }

        return total;
    }

    public static async Task<long> ReadRecordsAsync(SegmentedLog log)
    {
        long bytes = 0;
        await foreach (var r in log.ReadAsync(log.StartOffset))
        {
            bytes += r.Value!.Length;
        }

        return bytes;
    }

    public static async Task<long> ReadViewsAsync(SegmentedLog log)
    {
        long bytes = 0;
        await foreach (var r in log.ReadViewsAsync(log.StartOffset))
        {
            bytes += r.Value.Length;
        }

        return bytes;
    }

    public static async Task<long> ReadBatchesAsync(SegmentedLog log)
    {
        long bytes = 0;
        await foreach (var b in log.ReadBatchesAsync(log.StartOffset))
        {
            bytes += b.Bytes.Length;
        }

        return bytes;
    }
}
