using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using AppendLog;
using AppendLog.LoadGen.Measurement;
using AppendLog.ReadBench;
using HdrHistogram;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

ReadBenchOptions options;
try
{
    if (args.Contains("--help") || args.Contains("-h"))
    {
        Console.WriteLine(ReadBenchOptions.Usage);
        return 0;
    }

    options = ReadBenchOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(ReadBenchOptions.Usage);
    return 2;
}

Directory.CreateDirectory(options.Directory);
var machine = MachineInfo.Collect(options.Directory, TimeProvider.System);
var report = new Report();
report.Line($"Machine: {machine.HeaderLine}");
report.Line();
report.Line($"Command: `AppendLog.ReadBench {string.Join(' ', args)}`");
report.Line();
report.Json["machine"] = machine;
report.Json["options"] = options;
string runDirectory = Path.Combine(options.Directory, $"readbench-{options.Mode}-{Guid.NewGuid():N}"[..30]);
try
{
    switch (options.Mode)
    {
        case "seq":
            await SequentialAsync();
            break;
        case "lookup":
            await LookupAsync();
            break;
        case "tail":
            await TailAsync();
            break;
        case "scan-tail":
            await ScanTailAsync();
            break;
        default:
            await PageCacheAsync();
            break;
    }
}
finally
{
    if (!options.KeepData && Directory.Exists(runDirectory))
    {
        Directory.Delete(runDirectory, recursive: true);
    }
}

report.Line($"loadavg at end: {File.ReadAllText("/proc/loadavg").Trim()}");
report.Save(options.Out);
return 0;

async Task<string> WriteAsync()
{
    string dir = Path.Combine(runDirectory, "log");
    long bytes = (long)(options.Gib * (1L << 30));
    var (records, seconds) = await Bench.WriteLogAsync(dir, bytes, options.RecordSize);
    long data = Bench.DataBytes(dir);
    report.Line($"Wrote {records:N0} records of {options.RecordSize} B durably ({data / 1e6:N0} MB in {Bench.SegmentFiles(dir).Length} segments) "
        + $"in {seconds:F1} s ({data / 1e6 / seconds:N0} MB/s).");
    report.Line();
    report.Json["written"] = new { records, dataBytes = data, seconds };
    return dir;
}

async Task SequentialAsync()
{
    string dir = await WriteAsync();
    long data = Bench.DataBytes(dir);
    var logOptions = Bench.Options(dir, options.CacheMib, out string cacheNote, options.ReadAheadMib);
    string warmLabel = cacheNote.StartsWith("no batch cache", StringComparison.Ordinal) ? "second pass (no cache: from disk again)" : "second pass (" + cacheNote + ")";
    report.Line($"Sequential read of the whole log, {options.Rounds} rounds, engines alternated (first engine rotates), "
        + $"cold = after sync + drop_caches and a fresh log instance; {cacheNote}. MB/s = segment-file bytes ÷ read time.");
    report.Line();
    string[] engines = ["appendlog-views", "appendlog-records", "appendlog-batches", "filestream"];
    var results = engines.ToDictionary(e => e, _ => (Cold: new List<double>(), Warm: new List<double>(), Open: new List<double>()));
    for (int round = 0; round < options.Rounds; round++)
    {
        for (int k = 0; k < engines.Length; k++)
        {
            string engine = engines[(round + k) % engines.Length];
            Bench.DropCaches();
            if (engine == "filestream")
            {
                results[engine].Cold.Add(Time(() => Task.FromResult(Bench.ReadWithFileStream(dir))));
                results[engine].Warm.Add(Time(() => Task.FromResult(Bench.ReadWithFileStream(dir))));
                continue;
            }

            var open = Stopwatch.StartNew();
            await using var log = await SegmentedLog.OpenAsync(logOptions);
            results[engine].Open.Add(open.Elapsed.TotalMilliseconds);
            Func<Task<long>> read = engine switch
            {
                "appendlog-views" => () => Bench.ReadViewsAsync(log),
                "appendlog-records" => () => Bench.ReadRecordsAsync(log),
                _ => () => Bench.ReadBatchesAsync(log),
            };
            results[engine].Cold.Add(Time(read));
            results[engine].Warm.Add(Time(read));
        }

        Console.WriteLine($"# round {round + 1}: " + string.Join(", ", engines.Select(e => $"{e} {results[e].Cold[^1]:N0}/{results[e].Warm[^1]:N0} MB/s")));
    }

    double refCold = Bench.Median(results["filestream"].Cold), refWarm = Bench.Median(results["filestream"].Warm);
    report.Table(
        ["engine", "cold MB/s (median)", "cold rounds", "÷ filestream cold", $"{warmLabel} MB/s", "warm rounds", "÷ filestream warm", "open ms"],
        engines.Select(e => new[]
        {
            e,
            Bench.F(Bench.Median(results[e].Cold), 0),
            string.Join(" / ", results[e].Cold.Select(v => Bench.F(v, 0))),
            Bench.F(Bench.Median(results[e].Cold) / refCold, 2) + "×",
            Bench.F(Bench.Median(results[e].Warm), 0),
            string.Join(" / ", results[e].Warm.Select(v => Bench.F(v, 0))),
            Bench.F(Bench.Median(results[e].Warm) / refWarm, 2) + "×",
            results[e].Open.Count == 0 ? "-" : Bench.F(Bench.Median(results[e].Open), 1),
        }));
    report.Json["seq"] = results.ToDictionary(r => r.Key, r => new { cold = r.Value.Cold, warm = r.Value.Warm, openMs = r.Value.Open });
    DiskBaselineTable(dir, results.ToDictionary(r => r.Key, r => Bench.Median(r.Value.Cold)));

    double Time(Func<Task<long>> read)
    {
        var clock = Stopwatch.StartNew();
        long bytes = read().GetAwaiter().GetResult();
        double seconds = clock.Elapsed.TotalSeconds;
        if (bytes <= 0)
        {
            throw new InvalidOperationException("nothing was read");
        }

        return data / 1e6 / seconds;
    }
}

void DiskBaselineTable(string dir, Dictionary<string, double> coldMedians)
{
    string[] files = Bench.SegmentFiles(dir);
    string largest = files.OrderByDescending(f => new FileInfo(f).Length).First();
    var rows = new List<string[]>();
    var json = new Dictionary<string, object?>();
    double bestDirect = 0, bestFio = 0;
    foreach (int size in DiskBaselines.BlockSizes)
    {
        foreach (int depth in DiskBaselines.Depths)
        {
            double direct = DiskBaselines.DirectSequential(files, size, depth);
            double? fio = DiskBaselines.Fio(largest, size, depth);
            bestDirect = Math.Max(bestDirect, direct);
            bestFio = Math.Max(bestFio, fio ?? 0);
            rows.Add([DiskBaselines.Label(size, depth), Bench.F(direct, 0), fio is { } f ? Bench.F(f, 0) : "-"]);
            json[DiskBaselines.Label(size, depth)] = new { direct, fio };
            Console.WriteLine($"# O_DIRECT {DiskBaselines.Label(size, depth)}: {direct:N0} MB/s, fio {(fio is { } g ? g.ToString("N0", CultureInfo.InvariantCulture) : "-")}");
        }
    }

    report.Line("The disk beside it: sequential O_DIRECT reads of the same segment files, block size × requests in flight "
        + "(C#: dedicated threads, RandomAccess.Read; fio: libaio on the largest segment, when fio is installed).");
    report.Line();
    report.Table(["block × depth", "C# O_DIRECT MB/s", "fio MB/s"], rows);
    double best = Math.Max(bestDirect, bestFio);
    report.Table(
        ["engine", "cold MB/s (median)", "÷ best O_DIRECT (C# or fio)", "÷ best fio", "÷ filestream cold"],
        coldMedians.Select(e => new[]
        {
            e.Key,
            Bench.F(e.Value, 0),
            Bench.F(e.Value / best, 2) + "×",
            bestFio > 0 ? Bench.F(e.Value / bestFio, 2) + "×" : "-",
            Bench.F(e.Value / coldMedians["filestream"], 2) + "×",
        }));
    report.Json["disk"] = new { baselines = json, bestDirect, bestFio };
}

async Task ScanTailAsync()
{
    long cacheMib = options.CacheMib ?? 64;
    int rate = options.Rates[0];
    int readerCount = options.Readers[0];
    string coldDir = await WriteAsync();
    report.Line($"Tailing readers beside a cold scan: {readerCount} tail reader(s) of a log appended at {rate:N0} records/s, "
        + $"one batch cache of {cacheMib} MiB shared with a second log of {Bench.DataBytes(coldDir) / 1e6:N0} MB that one reader scans "
        + "over and over (ReadBatchesAsync) during the measured seconds of the second run. The tailed log counts where each batch "
        + "its readers got came from (cache hit; the writer's in-memory tail, a cache miss that read no disk; disk): cache hit "
        + "ratio = cache ÷ all, from memory = (cache + writer) ÷ all; the shared cache's own counters mix in the scan's lookups. "
        + "ack→receive (wake-up) as in the tail mode.");
    report.Line();
    var rows = new List<string[]>();
    var json = new List<object>();
    foreach (bool scan in new[] { false, true })
    {
        var cache = new BatchCache(cacheMib * 1024 * 1024);
        await using var coldLog = await SegmentedLog.OpenAsync(Bench.Options(coldDir, null, out _) with { BatchCache = cache });
        long scanBatches = 0;
        long scanBytes = 0;
        var r = await TailRunAsync(Path.Combine(runDirectory, $"scan-tail-{(scan ? "scan" : "alone")}"), rate, readerCount, cache, scan ? async token =>
        {
            try
            {
                while (true)
                {
                    await foreach (var batch in coldLog.ReadBatchesAsync(coldLog.StartOffset, token))
                    {
                        Interlocked.Increment(ref scanBatches);
                        Interlocked.Add(ref scanBytes, batch.Bytes.Length);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        } : null, () => Interlocked.Read(ref scanBatches));
        var (fromCache, fromWriter, fromDisk) = r.TailSources;
        double tailBatches = fromCache + fromWriter + fromDisk;
        double hitRatio = tailBatches > 0 ? fromCache / tailBatches : double.NaN;
        double memoryRatio = tailBatches > 0 ? (fromCache + fromWriter) / tailBatches : double.NaN;
        rows.Add([scan ? "with cold scan" : "alone", Bench.F(r.Achieved, 0), Bench.F(100 * hitRatio, 1) + "%", Bench.F(100 * memoryRatio, 1) + "%",
            $"{fromCache:N0}/{fromWriter:N0}/{fromDisk:N0}", .. Bench.PercentileCells(r.AckToReceive, 3), Bench.F(scanBytes / 1e6 / Math.Max(options.Duration, 1e-9), 0)]);
        json.Add(new
        {
            scan, achieved = r.Achieved, hitRatio, memoryRatio, fromCache, fromWriter, fromDisk,
            sharedCacheHits = r.Hits, sharedCacheLookups = r.Lookups, scanBatches = r.ScanLookups,
            ackToReceive = Bench.Summary(r.AckToReceive), scanMBps = scanBytes / 1e6 / options.Duration,
        });
    }

    report.Table(["tail readers", "achieved/s", "cache hit ratio", "from memory", "cache/writer/disk batches", "ack→r p50", "p90", "p99", "max", "scan MB/s"], rows);
    report.Json["scanTail"] = json;
}

async Task LookupAsync()
{
    string dir = await WriteAsync();
    var logOptions = Bench.Options(dir, options.CacheMib, out string cacheNote, options.ReadAheadMib);
    Bench.DropCaches();
    var open = Stopwatch.StartNew();
    await using var log = await SegmentedLog.OpenAsync(logOptions);
    double openMs = open.Elapsed.TotalMilliseconds;
    long end = log.DurableEndOffset;
    long firstTs = 0, lastTs = 0;
    await foreach (var r in log.ReadAsync(0))
    {
        firstTs = r.TimestampMs;
        break;
    }

    await foreach (var r in log.ReadAsync(end - 1))
    {
        lastTs = r.TimestampMs;
    }

    report.Line($"{options.Probes:N0} probes per kind and pass over {end:N0} records (timestamps {firstTs}..{lastTs}); log opened in {openMs:F1} ms "
        + $"after drop_caches; {cacheNote}. Offset probe: the first batch of ReadBatchesAsync(random offset). "
        + "Time probe: FindOffsetAsync(random time in the log's range). Cold = first pass after drop_caches, warm = second pass.");
    report.Line();
    var random = new Random(1);
    var rows = new List<string[]>();
    var json = new Dictionary<string, object>();
    foreach (string pass in new[] { "cold", "warm" })
    {
        foreach (string kind in new[] { "offset", "time" })
        {
            var h = Bench.Histogram();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < options.Probes; i++)
            {
                long start = Stopwatch.GetTimestamp();
                if (kind == "offset")
                {
                    await foreach (var b in log.ReadBatchesAsync(random.NextInt64(0, end)))
                    {
                        break;
                    }
                }
                else
                {
                    await log.FindOffsetAsync(DateTimeOffset.FromUnixTimeMilliseconds(random.NextInt64(firstTs, lastTs + 1)));
                }

                h.RecordValue(Math.Max(1, Bench.ElapsedNs(start, Stopwatch.GetTimestamp())));
            }

            rows.Add([kind, pass, .. Bench.PercentileCells(h, 4), Bench.F(options.Probes / clock.Elapsed.TotalSeconds, 0)]);
            json[$"{kind}-{pass}"] = Bench.Summary(h);
        }
    }

    report.Table(["probe", "pass", "p50", "p90", "p99", "p99.9", "max", "probes/s"], rows);
    report.Json["lookup"] = json;
}

async Task TailAsync()
{
    report.Line($"Tail latency: {options.Appenders} appender(s) sharing the rate (open loop, paced on dedicated threads; a late sender "
        + $"catches up in a burst), {options.RecordSize} B records, readers from offset 0; {options.Warmup} s warm-up then {options.Duration} s measured. "
        + "append→receive: Stopwatch at the AppendAsync call (in the payload) to the reader's MoveNext; "
        + "ack→receive (wake-up): the durable ack's continuation to the reader's MoveNext, 0 when the reader was first.");
    report.Line();
    var rows = new List<string[]>();
    var json = new List<object>();
    int run = 0;
    foreach (int rate in options.Rates)
    {
        foreach (int readers in options.Readers)
        {
            var r = await TailRunAsync(Path.Combine(runDirectory, $"tail-{run++}"), rate, readers, null, null, null);
            rows.Add([
                $"{rate:N0}", $"{options.Appenders}", $"{readers}", Bench.F(r.Achieved, 0),
                .. Bench.PercentileCells(r.AppendToReceive, 5),
                .. Bench.PercentileCells(r.AckToReceive, 5),
                $"{100.0 * r.ReaderFirst / Math.Max(1, r.AckToReceive.TotalCount):F1}%",
            ]);
            json.Add(new { rate, appenders = options.Appenders, readers, achieved = r.Achieved, appendToReceive = Bench.Summary(r.AppendToReceive), ackToReceive = Bench.Summary(r.AckToReceive), r.ReaderFirst });
        }
    }

    report.Table(
        ["rate/s", "appenders", "readers", "achieved/s", "a→r p50", "p90", "p99", "p99.9", "p99.99", "max", "ack→r p50", "p90", "p99", "p99.9", "p99.99", "max", "reader first"],
        rows);
    report.Json["tail"] = json;
}

// beside: work run during the measured seconds only (cancelled at their end); besideLookups: its cache lookups so far.
async Task<(double Achieved, LongHistogram AppendToReceive, LongHistogram AckToReceive, long ReaderFirst, long Hits, long Lookups, long ScanLookups, (long Cache, long Writer, long Disk) TailSources)> TailRunAsync(
    string dir, int rate, int readerCount, BatchCache? sharedCache, Func<CancellationToken, Task>? beside, Func<long>? besideLookups)
{
    var logOptions = Bench.Options(dir, options.CacheMib, out _, options.ReadAheadMib);
    if (sharedCache is not null)
    {
        logOptions = logOptions with { BatchCache = sharedCache };
    }

    await using var log = await SegmentedLog.OpenAsync(logOptions);
    double total = options.Warmup + options.Duration;
    long capacity = (long)(rate * total * 1.1) + 10_000;
    var ackTicks = new long[capacity];
    long measureFrom = Stopwatch.GetTimestamp() + (long)(options.Warmup * Stopwatch.Frequency);
    long measureTo = measureFrom + (long)(options.Duration * Stopwatch.Frequency);
    using var stop = new CancellationTokenSource();
    var appendHistograms = new LongHistogram[readerCount];
    var ackHistograms = new LongHistogram[readerCount];
    var readerFirst = new long[readerCount];
    var lastSeen = new long[readerCount];
    var readers = Enumerable.Range(0, readerCount).Select(i => Task.Run(async () =>
    {
        var a = appendHistograms[i] = Bench.Histogram();
        var w = ackHistograms[i] = Bench.Histogram();
        Volatile.Write(ref lastSeen[i], -1);
        try
        {
            await foreach (var r in log.TailAsync(0, stop.Token))
            {
                long now = Stopwatch.GetTimestamp();
                long sent = BinaryPrimitives.ReadInt64LittleEndian(r.Value.AsSpan(8));
                if (sent >= measureFrom && sent < measureTo)
                {
                    a.RecordValue(Math.Max(1, Bench.ElapsedNs(sent, now)));
                    long ack = Volatile.Read(ref ackTicks[r.Offset]);
                    if (ack == 0 || ack > now)
                    {
                        readerFirst[i]++;
                        w.RecordValue(1);
                    }
                    else
                    {
                        w.RecordValue(Math.Max(1, Bench.ElapsedNs(ack, now)));
                    }
                }

                Volatile.Write(ref lastSeen[i], r.Offset);
            }
        }
        catch (OperationCanceledException)
        {
        }
    })).ToArray();

    long pending = 0, acked = 0;
    var payloadSize = options.RecordSize;
    var threads = Enumerable.Range(0, options.Appenders).Select(a => new Thread(() =>
    {
        double interval = options.Appenders * (double)Stopwatch.Frequency / rate;
        long start = Stopwatch.GetTimestamp() + (long)(a * interval / options.Appenders);
        long end = start + (long)(total * Stopwatch.Frequency);
        for (long k = 0; ; k++)
        {
            long due = start + (long)(k * interval);
            if (due >= end)
            {
                break;
            }

            long now;
            while ((now = Stopwatch.GetTimestamp()) < due)
            {
                if (due - now > Stopwatch.Frequency / 500)
                {
                    Thread.Sleep(1);
                }
                else
                {
                    Thread.SpinWait(20);
                }
            }

            Interlocked.Increment(ref pending);
            _ = AckAsync(log.AppendAsync(Bench.Payload(k, payloadSize)));
        }
    }) { IsBackground = true, Name = $"appender-{a}" }).ToArray();

    async Task AckAsync(ValueTask<long> append)
    {
        long offset = await append.ConfigureAwait(false);
        if (offset < ackTicks.Length)
        {
            Volatile.Write(ref ackTicks[offset], Stopwatch.GetTimestamp());
        }

        Interlocked.Increment(ref acked);
    }

    foreach (var t in threads)
    {
        t.Start();
    }

    // Cache counters over the measured seconds, with the work beside running during them only.
    var counted = Task.Run(async () =>
    {
        var cache = logOptions.BatchCache ?? BatchCache.Shared;
        await Task.Delay(TimeSpan.FromTicks(Math.Max(0, (measureFrom - Stopwatch.GetTimestamp()) * TimeSpan.TicksPerSecond / Stopwatch.Frequency)));
        long hits = cache.Hits, lookups = cache.Hits + cache.Misses, scan = besideLookups?.Invoke() ?? 0;
        var sources = log.BatchSources; // this (tailed) log's readers only: where each batch came from
        using var stopBeside = new CancellationTokenSource();
        var besideTask = beside is null ? Task.CompletedTask : Task.Run(() => beside(stopBeside.Token));
        await Task.Delay(TimeSpan.FromTicks(Math.Max(0, (measureTo - Stopwatch.GetTimestamp()) * TimeSpan.TicksPerSecond / Stopwatch.Frequency)));
        long hitsEnd = cache.Hits, lookupsEnd = cache.Hits + cache.Misses, scanEnd = besideLookups?.Invoke() ?? 0;
        var sourcesEnd = log.BatchSources;
        await stopBeside.CancelAsync();
        await besideTask;
        return (Hits: hitsEnd - hits, Lookups: lookupsEnd - lookups, Scan: scanEnd - scan,
            Sources: (Cache: sourcesEnd.Cache - sources.Cache, Writer: sourcesEnd.Writer - sources.Writer, Disk: sourcesEnd.Disk - sources.Disk));
    });

    foreach (var t in threads)
    {
        t.Join();
    }

    var cacheCounts = await counted;

    var drain = Stopwatch.StartNew();
    long last = log.EndOffset - 1;
    while ((Interlocked.Read(ref acked) < Interlocked.Read(ref pending) || lastSeen.Any(s => Volatile.Read(ref s) < last)) && drain.Elapsed < TimeSpan.FromSeconds(30))
    {
        await Task.Delay(10);
    }

    if (lastSeen.Any(s => s < last))
    {
        Console.WriteLine($"# WARNING: a reader did not reach offset {last} within 30 s");
    }

    await stop.CancelAsync();
    await Task.WhenAll(readers);
    var appendAll = Bench.Histogram();
    var ackAll = Bench.Histogram();
    foreach (var h in appendHistograms)
    {
        appendAll.Add(h);
    }

    foreach (var h in ackHistograms)
    {
        ackAll.Add(h);
    }

    double achieved = appendAll.TotalCount / (double)readerCount / options.Duration;
    Console.WriteLine($"# tail rate {rate}, readers {readerCount}: achieved {achieved:N0}/s, a→r p99 {Bench.Duration(appendAll.GetValueAtPercentile(99))}, ack→r p99 {Bench.Duration(ackAll.GetValueAtPercentile(99))}");
    return (achieved, appendAll, ackAll, readerFirst.Sum(), cacheCounts.Hits, cacheCounts.Lookups, cacheCounts.Scan, cacheCounts.Sources);
}

async Task PageCacheAsync()
{
    bool dropped = Bench.DropCaches();
    long before = Bench.PageCacheMib();
    string dir = await WriteAsync();
    long afterWrite = Bench.PageCacheMib();
    await using (var log = await SegmentedLog.OpenAsync(Bench.Options(dir, options.CacheMib, out _)))
    {
        await Bench.ReadBatchesAsync(log);
    }

    long afterAppendLogRead = Bench.PageCacheMib();
    Bench.ReadWithFileStream(dir);
    long afterFileStreamRead = Bench.PageCacheMib();
    long data = Bench.DataBytes(dir) >> 20;
    report.Line($"`Cached:` of /proc/meminfo (MiB) around writing and reading a {data:N0} MiB log{(dropped ? " (page cache dropped first)" : " (page cache NOT dropped: not root)")}; "
        + "other processes on the machine move it too, so read the differences against the log's size.");
    report.Line();
    report.Table(
        ["moment", "Cached MiB", "change"],
        [
            ["before writing", $"{before:N0}", "-"],
            ["after writing with AppendLog", $"{afterWrite:N0}", $"{afterWrite - before:+#,0;-#,0;0}"],
            ["after reading it all with AppendLog (ReadBatchesAsync)", $"{afterAppendLogRead:N0}", $"{afterAppendLogRead - afterWrite:+#,0;-#,0;0}"],
            ["after reading it all with buffered FileStream", $"{afterFileStreamRead:N0}", $"{afterFileStreamRead - afterAppendLogRead:+#,0;-#,0;0}"],
        ]);
    report.Json["pagecache"] = new { dataMib = data, before, afterWrite, afterAppendLogRead, afterFileStreamRead, dropped };
}
