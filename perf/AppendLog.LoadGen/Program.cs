using System.Globalization;
using AppendLog.LoadGen;
using AppendLog.LoadGen.Engines;
using AppendLog.LoadGen.Measurement;
using AppendLog.LoadGen.Reporting;
using AppendLog.LoadGen.Workloads;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

if (args.Length >= 3 && args[0] == "idle-logs")
{
    return await IdleLogs.RunAsync(int.Parse(args[1], CultureInfo.InvariantCulture), Path.GetFullPath(args[2]));
}

LoadGenOptions options;
IReadOnlyList<IEngineFactory> engines;
try
{
    if (args.Contains("--help") || args.Contains("-h"))
    {
        Console.WriteLine(LoadGenOptions.Usage);
        return 0;
    }
    if (args.Contains("--list-engines"))
    {
        foreach (IEngineFactory factory in EngineRegistry.All)
        {
            Console.WriteLine($"{factory.Name,-30} {factory.Settings}");
        }
        return 0;
    }
    options = LoadGenOptions.Parse(args);
    engines = EngineRegistry.Resolve(options.Engines);
    if (engines.FirstOrDefault(e => e.Name == options.Reference) is { IsDurable: false })
    {
        throw new ArgumentException($"--reference {options.Reference}: a non-durable engine cannot be the reference");
    }
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(LoadGenOptions.Usage);
    return 2;
}

// PEERS.md: with the default minimum, FasterLog's commits can stall under a saturating producer. Set once for
// the whole process, so every engine runs with the same thread pool.
ThreadPool.SetMinThreads(32, 32);

Directory.CreateDirectory(options.Directory);
string commandLine = "AppendLog.LoadGen " + string.Join(' ', args);
var machine = MachineInfo.Collect(options.Directory, TimeProvider.System);
IReadOnlyList<Workload> workloads = Workload.From(options);
Console.WriteLine($"# machine: {machine.HeaderLine}");
Console.WriteLine("# ThreadPool.SetMinThreads(32, 32) for all engines");

// Every run is bounded by its drain deadline and close timeout; this is the belt over those braces: if the
// whole invocation overruns its budget (a hang nobody foresaw), say so and exit instead of hanging.
TimeSpan perRunMax = options.Warmup + options.Duration + options.DrainTimeout + TimeSpan.FromMinutes(2);
TimeSpan budget = perRunMax * (workloads.Count * options.Rounds * engines.Count)
    + (options.RunFio ? DiskLimits.WaitMax : TimeSpan.Zero);
using var hardStop = new Timer(
    _ =>
    {
        Console.Error.WriteLine($"LoadGen: exceeded its time budget of {budget}; exiting.");
        Environment.Exit(3);
    },
    null, budget, Timeout.InfiniteTimeSpan);

IReadOnlyList<FioResult> diskLimits = [];
if (options.RunFio)
{
    Console.WriteLine("# running fio in --dir for the disk's limits");
    diskLimits = await DiskLimits.MeasureAsync(options.Directory);
    Console.Write(DiskLimits.ToMarkdown(diskLimits));
}

// Constant, seeded payload: shared read-only by every producer, so no engine sees a cheaper (e.g. zero) page.
byte[] payload = new byte[options.RecordSizeBytes];
new Random(options.Seed).NextBytes(payload);

var runs = new List<RunResult>();
foreach (Workload workload in workloads)
{
    for (int round = 1; round <= options.Rounds; round++)
    {
        // Round-robin with a rotating start, so no engine always runs first (or last) on a drifting machine.
        for (int slot = 0; slot < engines.Count; slot++)
        {
            IEngineFactory engine = engines[(slot + round - 1) % engines.Count];
            RunResult result = await WorkloadRunner.RunAsync(engine, workload, round, options, payload);
            runs.Add(result);
            Console.WriteLine(
                $"{workload.Title} | round {round} | {engine.Name,-28} | {result.AchievedMBps,8:N1} MB/s " +
                $"{result.RecordsPerSecond,10:N0} rec/s | p50 {result.Latency.P50Micros,7} µs " +
                $"p99 {result.Latency.P99Micros,8} µs p99.999 {result.Latency.P99999Micros,9} µs " +
                $"max {result.Latency.MaxMicros,9} µs | CPU {result.CpuSeconds:N2} s, " +
                $"{result.CpuMicrosPerAck ?? 0,6:N1} µs/ack, {result.ContextSwitchesPerAck ?? 0:N2} cs/ack | " +
                $"call max {result.AppendCall?.MaxMicros ?? 0} µs" +
                (result.IsComplete ? "" : $" | INCOMPLETE {result.Error}"));
        }
    }
}

var report = new Report(machine, options, commandLine, engines, workloads, runs, diskLimits);
string markdown = report.ToMarkdown();
Console.WriteLine();
Console.WriteLine(markdown);
if (options.OutPrefix is not null)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.OutPrefix))!);
    await File.WriteAllTextAsync(options.OutPrefix + ".md", markdown);
    await File.WriteAllTextAsync(options.OutPrefix + ".json", report.ToJson());
    Console.WriteLine($"wrote {options.OutPrefix}.md and {options.OutPrefix}.json");
}
return runs.All(r => r.IsComplete) ? 0 : 1;
