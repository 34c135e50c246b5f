using System.Globalization;
using AppendLog;
using DiskProbe;

// DiskProbe DIR [--seconds S] [--size MiB] [--write FILE]   measure DIR's disk, print a recommendation (and save it)
// DiskProbe DIR --check FILE                                 open a log in DIR with FILE's settings and append once
if (args.Length == 0 || args[0].StartsWith('-'))
{
    Console.Error.WriteLine("usage: DiskProbe DIR [--seconds S] [--size MiB] [--write FILE] | DiskProbe DIR --check FILE");
    return 2;
}

if (!OperatingSystem.IsLinux())
{
    Console.Error.WriteLine("DiskProbe measures O_DIRECT, fdatasync and fallocate: Linux only.");
    return 2;
}

string directory = Path.GetFullPath(args[0]);
string? Arg(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
double seconds = double.Parse(Arg("--seconds") ?? "1", CultureInfo.InvariantCulture);
long fileBytes = long.Parse(Arg("--size") ?? "256", CultureInfo.InvariantCulture) * 1024 * 1024;
Directory.CreateDirectory(directory);

if (Arg("--check") is { } check)
{
    var settings = RecommendationLoader.Read(check);
    var options = RecommendationLoader.Apply(settings, new LogOptions { Directory = Path.Combine(directory, "diskprobe-check-log") });
    await using (var log = await SegmentedLog.OpenAsync(options))
    {
        long offset = await log.AppendAsync("probe"u8.ToArray());
        Console.WriteLine($"opened with {options.FlushPolicy}, chunk {options.BufferPool?.ChunkSize ?? LogBufferPool.DefaultChunkSize} B, " +
                          $"steps {options.PreallocationMinimumStep}..{options.PreallocationMaximumStep} B, direct={log.IsDirectIo}; appended offset {offset}");
    }

    Directory.Delete(options.Directory, recursive: true);
    return 0;
}

var device = BlockDevice.Find(directory);
Console.WriteLine($"directory   {directory}");
Console.WriteLine($"mount       {device.MountPoint} ({device.FileSystem}, source {device.Source})");
Console.WriteLine($"device      {device.DeviceName ?? "none"}{(device.Note is null ? "" : $"  [{device.Note}]")}");
foreach (string attribute in BlockDevice.QueueAttributes)
{
    Console.WriteLine($"  queue/{attribute,-20} {device.Get(attribute)}");
}

bool direct = Measurements.SupportsDirect(directory, out string? refused);
Console.WriteLine($"O_DIRECT    {(direct ? "yes" : $"no ({refused}); measuring buffered writes + fdatasync")}");
using var probe = new Measurements(directory, direct, TimeSpan.FromSeconds(seconds), fileBytes);

// fdatasync latency is sampled in three rounds spread over the run (now, after the throughput cells, at the end)
// because on a shared or throttled disk one round can land in someone else's burst; the recommendation uses the
// median of the rounds' p50s, and a spread over 3× is reported as noise.
var syncRounds = new List<(Percentiles Sync, Percentiles Cycle)> { probe.SyncLatency(4096, 700) };

Console.WriteLine();
Console.WriteLine($"write throughput, no sync, {seconds:G} s per cell (MiB/s; threads = writes in flight)");
int[] sizes = [4096, 16384, 65536, 262144, 1048576];
int[] depths = [1, 4, 8];
Console.WriteLine($"  {"block",8} {string.Concat(depths.Select(d => $"{$"QD{d}",10}"))}");
var cells = new List<ThroughputResult>();
foreach (int size in sizes)
{
    var row = depths.Select(d => probe.Throughput(size, d)).ToList();
    cells.AddRange(row);
    Console.WriteLine($"  {size / 1024,5} KiB {string.Concat(row.Select(r => $"{r.MiBPerSecond,10:F0}"))}");
}

syncRounds.Add(probe.SyncLatency(4096, 700));

Console.WriteLine();
Console.WriteLine("write+fdatasync cycles, sequential");
var cycles = new List<CycleResult>();
foreach (int size in new[] { 4096, 65536 })
{
    foreach (bool zeroed in new[] { false, true })
    {
        var c = probe.Cycles(zeroed, size, 4000);
        cycles.Add(c);
        Console.WriteLine($"  {size / 1024,3} KiB into {c.Space,-11} {c.CyclesPerSecond,7:F0}/s   {c.Cycle}");
    }
}

syncRounds.Add(probe.SyncLatency(4096, 700));
Console.WriteLine();
Console.WriteLine("fdatasync after one 4 KiB write (over written space), three rounds: start, after throughput, end");
for (int r = 0; r < syncRounds.Count; r++)
{
    Console.WriteLine($"  round {r + 1} fdatasync       {syncRounds[r].Sync}");
}

var roundP50s = syncRounds.Select(r => r.Sync.P50).Order().ToList();
var sync = syncRounds[syncRounds.FindIndex(r => r.Sync.P50 == roundP50s[1])].Sync;
Console.WriteLine($"  median round: p50 {sync.P50:F0} µs, p99 {sync.P99:F0} µs (used for the recommendation)");
if (roundP50s[^1] > 3 * roundP50s[0])
{
    Console.WriteLine($"  NOISY: round p50s range {roundP50s[0]:F0}…{roundP50s[^1]:F0} µs; the disk is shared or throttled. Rerun with --seconds 3 at a quiet time.");
}

// The zero-fill verdict uses the 64 KiB pair (AppendLog's default chunk; a group commit usually carries more than
// one block): in trial runs on a shared VM its p50s were stable while the 4 KiB pair flipped with other tenants' bursts.
var report = Recommender.Recommend(directory, device, direct, sync, cells, cycles[2], cycles[3]);
Console.WriteLine();
Console.WriteLine("recommendation");
var s = report.AppendLog;
Console.WriteLine($"  FlushPolicy {s.FlushPolicy}{(s.FlushDelayMilliseconds is { } d ? $"({d} ms, {s.FlushPendingBytesMax} B)" : "")}, " +
                  $"LogBufferPool chunkSize {s.ChunkSize}, PreallocationMinimumStep {s.PreallocationMinimumStep}, PreallocationMaximumStep {s.PreallocationMaximumStep}, DirectIo {s.DirectIo}");
foreach (string reason in report.Reasons)
{
    Console.WriteLine($"  - {reason}");
}

Console.WriteLine();
Console.WriteLine("kernel settings (suggestions only: they need root and affect every user of the device)");
foreach (string suggestion in report.KernelSuggestions)
{
    Console.WriteLine($"  - {suggestion}");
}

if (Arg("--write") is { } output)
{
    RecommendationLoader.Write(report, output);
    Console.WriteLine();
    Console.WriteLine($"wrote {output}; load it with RecommendationLoader.Apply (samples/DiskProbe/Recommendation.cs)");
}

return 0;
