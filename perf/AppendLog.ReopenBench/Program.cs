// ReopenBench: how long a LogManager takes to reopen thousands of logs, after a clean close and after a SIGKILL, with
// a cold page cache; the first append's latency after the reopen; and the disk an idle log holds beyond its data.
// Usage (README in this folder):
//   dotnet perf/AppendLog.ReopenBench/bin/Release/net10.0/AppendLog.ReopenBench.dll --dir DIR [--logs 1000,10000]
//       [--records 200] [--record-size 1024] [--rounds 3] [--modes clean,crash] [--no-drop-caches] [--out NAME]
//   ... --reopen-only --dir DIR/root   (one reopen of an existing root, for strace -f -c)
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AppendLog;
using AppendLog.LoadGen.Measurement;

var invariant = CultureInfo.InvariantCulture;
var argMap = new Dictionary<string, string>(StringComparer.Ordinal);
for (int i = 0; i < args.Length; i++)
{
    if (args[i].StartsWith("--", StringComparison.Ordinal))
    {
        argMap[args[i][2..]] = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "true";
    }
}

string Arg(string name, string fallback) => argMap.TryGetValue(name, out string? v) ? v : fallback;

if (argMap.ContainsKey("child"))
{
    // The process that gets SIGKILLed: opens every log under the root, appends one batch to each, says READY, waits.
    await using var manager = LogManager.Create(new LogManagerOptions { RootDirectory = Arg("dir", "") });
    // Every log is opened (recovery of all of them is what the parent measures); the first 2,000 are written when the
    // process dies (a written log holds two descriptors).
    var logs = await manager.OpenAllAsync();
    await AppendToAllAsync(logs.Take(2000).ToList(), int.Parse(Arg("records", "50"), invariant), int.Parse(Arg("record-size", "1024"), invariant));
    Console.WriteLine("READY");
    await Task.Delay(Timeout.Infinite);
    return 0;
}

if (argMap.ContainsKey("reopen-only"))
{
    // Exits without closing (closing writes the clean-close records): what strace sees is the reopen alone.
    var sw = Stopwatch.StartNew();
    var manager = LogManager.Create(new LogManagerOptions { RootDirectory = Arg("dir", "") });
    var logs = await manager.OpenAllAsync();
    Console.WriteLine($"reopened {logs.Count} logs in {sw.Elapsed.TotalMilliseconds:F0} ms");
    Environment.Exit(0);
}

string baseDir = Arg("dir", Path.Combine(Path.GetTempPath(), "appendlog-reopenbench"));
int[] counts = Arg("logs", "1000,10000").Split(',').Select(s => int.Parse(s, invariant)).ToArray();
int records = int.Parse(Arg("records", "200"), invariant);
int recordSize = int.Parse(Arg("record-size", "1024"), invariant);
int rounds = int.Parse(Arg("rounds", "3"), invariant);
string[] modes = Arg("modes", "clean,crash").Split(',');
bool dropCaches = !argMap.ContainsKey("no-drop-caches") && CanDropCaches();
string outName = Arg("out", "reopen-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", invariant));

var machine = MachineInfo.Collect(Directory.CreateDirectory(baseDir).FullName, TimeProvider.System);
Console.WriteLine(machine.HeaderLine);
Console.WriteLine($"records per log {records} × {recordSize} B; rounds {rounds}; page cache {(dropCaches ? "dropped before each reopen" : "NOT dropped (needs root)")}");
var rows = new List<Row>();
foreach (int n in counts)
{
    foreach (string mode in modes)
    {
        string root = Path.Combine(baseDir, $"{mode}-{n}");
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        // Populate in batches of 50 records (4 appends of a 200-record log): the data's shape, not its syncs, matters here.
        // 2,000 logs at a time: a log being written holds two descriptors (lock and active segment).
        var populate = Stopwatch.StartNew();
        for (int from = 0; from < n; from += 2000)
        {
            await using var manager = LogManager.Create(new LogManagerOptions { RootDirectory = root });
            var logs = await manager.OpenAsync(Enumerable.Range(from, Math.Min(2000, n - from)).Select(LogName));
            for (int done = 0; done < records; done += 50)
            {
                await AppendToAllAsync(logs, Math.Min(50, records - done), recordSize);
            }
        }

        double populateSeconds = populate.Elapsed.TotalSeconds;
        var afterClose = DiskUsage.Measure(root);
        var samples = new List<Sample>();
        for (int round = 0; round < rounds; round++)
        {
            if (mode == "crash")
            {
                await CrashChildAsync(root, recordSize);
            }

            if (dropCaches)
            {
                DropCaches();
            }

            var sw = Stopwatch.StartNew();
            var manager = LogManager.Create(new LogManagerOptions { RootDirectory = root });
            var logs = await manager.OpenAllAsync();
            double reopenMs = sw.Elapsed.TotalMilliseconds;
            var idleOpen = DiskUsage.Measure(root);

            // First append after the reopen, one log at a time (latency, not queueing), on at most 2,000 logs (a
            // written log holds two descriptors).
            var first = new double[Math.Min(logs.Count, 2000)];
            byte[] value = new byte[recordSize];
            for (int i = 0; i < first.Length; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                await logs[i].AppendAsync(value);
                first[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            }

            sw.Restart();
            await manager.DisposeAsync();
            double closeMs = sw.Elapsed.TotalMilliseconds;
            Array.Sort(first);
            samples.Add(new Sample(reopenMs, Percentile(first, 0.50), Percentile(first, 0.99), first[^1], closeMs, idleOpen));
            Console.WriteLine($"  {mode,-5} {n,6} logs, round {round + 1}: reopen {reopenMs,8:F0} ms, first append p50 {Percentile(first, 0.5):F2} ms p99 {Percentile(first, 0.99):F2} ms max {first[^1]:F2} ms, close {closeMs:F0} ms");
        }

        var median = samples.OrderBy(s => s.ReopenMs).ElementAt(samples.Count / 2);
        rows.Add(new Row(mode, n, populateSeconds, samples, median, afterClose));
    }
}

Console.WriteLine();
Console.WriteLine("| reopen after | logs | reopen (median of " + rounds + ") | per log | first append p50 / p99 / max | disk beyond data per idle log: segment files / all files (after close; open idle) |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|");
foreach (var row in rows)
{
    var m = row.Median;
    Console.WriteLine(string.Create(invariant,
        $"| {(row.Mode == "crash" ? "SIGKILL" : "clean close")} | {row.Logs:N0} | {m.ReopenMs / 1000:F2} s ({string.Join(", ", row.Samples.Select(s => (s.ReopenMs / 1000).ToString("F2", invariant)))}) | {m.ReopenMs * 1000 / row.Logs:F0} µs | {m.FirstP50:F2} / {m.FirstP99:F2} / {m.FirstMax:F2} ms | " +
        $"{row.AfterClose.SegmentOverhead / row.Logs / 1024.0:F1} / {row.AfterClose.TotalOverhead / row.Logs / 1024.0:F1} KiB; {m.IdleOpen.SegmentOverhead / row.Logs / 1024.0:F1} / {m.IdleOpen.TotalOverhead / row.Logs / 1024.0:F1} KiB |"));
}

Console.WriteLine();
Console.WriteLine("disk beyond data: allocated blocks (st_blocks, as du counts them) minus the segments' data bytes; 'all files' adds each log's directory, lock and checkpoint files.");
string json = JsonSerializer.Serialize(new { machine = machine with { DataDirectory = "(bench dir)" }, records, recordSize, rounds, dropCaches, rows }, new JsonSerializerOptions { WriteIndented = true });
await File.WriteAllTextAsync(outName + ".json", json);
Console.WriteLine($"written {outName}.json");
return 0;

static string LogName(int i) => "p-" + i.ToString("D5", CultureInfo.InvariantCulture);

static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

static async Task AppendToAllAsync(IReadOnlyList<SegmentedLog> logs, int count, int size)
{
    var batch = Enumerable.Range(0, count).Select(_ => new AppendRecord(new byte[size])).ToArray();
    await Parallel.ForEachAsync(logs, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (log, ct) => await log.AppendBatchAsync(batch, ct));
}

static bool CanDropCaches()
{
    try
    {
        using var f = new FileStream("/proc/sys/vm/drop_caches", FileMode.Open, FileAccess.Write);
        return true;
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        return false;
    }
}

static void DropCaches()
{
    using (var sync = Process.Start("sync"))
    {
        sync!.WaitForExit();
    }

    File.WriteAllText("/proc/sys/vm/drop_caches", "3");
}

static async Task CrashChildAsync(string root, int recordSize)
{
    var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
    if (!Environment.ProcessPath!.EndsWith("AppendLog.ReopenBench", StringComparison.Ordinal))
    {
        start.ArgumentList.Add(typeof(Row).Assembly.Location);
    }

    foreach (string a in new[] { "--child", "--dir", root, "--records", "1", "--record-size", recordSize.ToString(CultureInfo.InvariantCulture) })
    {
        start.ArgumentList.Add(a);
    }

    using var child = Process.Start(start)!;
    string? line = await child.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(10));
    if (line != "READY")
    {
        throw new InvalidOperationException($"the child said '{line}'");
    }

    child.Kill(); // SIGKILL on Linux
    await child.WaitForExitAsync();
}

internal sealed record Sample(double ReopenMs, double FirstP50, double FirstP99, double FirstMax, double CloseMs, DiskUsage IdleOpen);

internal sealed record Row(string Mode, int Logs, double PopulateSeconds, List<Sample> Samples, Sample Median, DiskUsage AfterClose);

/// <summary>Allocated bytes (st_blocks × 512, as du counts them) against the bytes of data in segment files.</summary>
internal sealed record DiskUsage(long SegmentAllocated, long SegmentData, long AllAllocated)
{
    public long SegmentOverhead => SegmentAllocated - SegmentData;

    public long TotalOverhead => AllAllocated - SegmentData;

    public static DiskUsage Measure(string root)
    {
        long segAlloc = Du(root, "*.log", apparent: false);
        long segData = Directory.GetFiles(root, "*.log", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith('.')).Sum(DataBytes);
        return new DiskUsage(segAlloc, segData, Du(root, null, apparent: false));
    }

    /// <summary>
    /// The bytes of record batches at the start of a segment file, walking the batch lengths (Kafka RecordBatch v2:
    /// base offset i64, length i32, then length bytes; magic 2 at byte 16): a file's length may include reserved
    /// zeros, which are not data.
    /// </summary>
    private static long DataBytes(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.RandomAccess);
        var header = new byte[17];
        long position = 0;
        while (position + header.Length <= f.Length)
        {
            f.Position = position;
            f.ReadExactly(header);
            int length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(8));
            if (length <= 0 || header[16] != 2 || position + 12 + length > f.Length)
            {
                break;
            }

            position += 12 + length;
        }

        return position;
    }

    private static long Du(string root, string? pattern, bool apparent)
    {
        // du over the files themselves (find … -exec du), so directories count only in the 'all files' figure.
        var psi = new ProcessStartInfo("sh") { RedirectStandardOutput = true, UseShellExecute = false };
        string du = apparent ? "du -cb" : "du -cB1";
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(pattern is null
            ? $"du -sB1 '{root}' | tail -1 | cut -f1"
            : $"find '{root}' -name '{pattern}' -type f -print0 | xargs -0 -r {du} | grep total$ | cut -f1");
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();

        // xargs may run du several times: one "total" line each.
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Sum(line => long.Parse(line.Trim(), CultureInfo.InvariantCulture));
    }
}
