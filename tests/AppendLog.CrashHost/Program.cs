using System.Globalization;
using AppendLog;
using AppendLog.CrashHost;

// Usage: AppendLog.CrashHost <directory> <writers> <seed> [hold]
//   Opens the log in <directory> (O_DIRECT preferred) and appends from <writers> concurrent tasks until killed.
//   Writer w's n-th record has the value Value(w, n) below; after each append completes (durable) the writer prints
//   "ack <offset> <writer> <sequence> ." and flushes stdout, so the parent learns of an acknowledgement only after the log
//   gave it. Startup prints "ready <EndOffset>" (sequences continue after a restart: they start at the count of the
//   writer's records already in the log, which the parent passes implicitly by reading them back).
//   With "hold", it opens the log, prints "ready", and waits for stdin to close (for the lock test).
// Usage: AppendLog.CrashHost manager-hold <root> <name> | many-logs <root> <count> <cap|default>: see ManagerModes.
if (args is ["manager-hold", var holdRoot, var holdName])
{
    return await ManagerModes.HoldAsync(holdRoot, holdName);
}

if (args is ["many-logs", var manyRoot, var manyCount, var manyCap])
{
    return await ManagerModes.ManyLogsAsync(manyRoot, int.Parse(manyCount, CultureInfo.InvariantCulture), manyCap);
}

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: AppendLog.CrashHost <directory> <writers> <seed> [hold]");
    return 2;
}

string directory = args[0];
int writers = int.Parse(args[1], CultureInfo.InvariantCulture);
int seed = int.Parse(args[2], CultureInfo.InvariantCulture);
bool hold = args.Length > 3 && args[3] == "hold";

await using var log = await SegmentedLog.OpenAsync(new LogOptions
{
    Directory = directory,
    SegmentSize = 1024 * 1024,
    MaximumBatchSize = 64 * 1024,
    PreallocationMinimumStep = 256 * 1024,
    PreallocationMaximumStep = 1024 * 1024,
});

var output = Console.Out;
var gate = new Lock();
lock (gate)
{
    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ready {log.EndOffset} {log.IsDirectIo}"));
    output.Flush();
}

if (hold)
{
    await Console.In.ReadToEndAsync();
    return 0;
}

// Each writer continues its sequence numbering after a restart from a per-run seed, so identities never repeat:
// sequence = seed * 1,000,000 + n (the parent gives each child run its own seed).
var tasks = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
{
    var random = new Random(seed + w);
    for (long n = 0; ; n++)
    {
        long sequence = (seed * 1_000_000L) + n;
        int length = random.Next(10) == 0 ? random.Next(4000, 60_000) : random.Next(16, 2000);
        long offset = await log.AppendAsync(CrashRecord.Value(w, sequence, length));
        lock (gate)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ack {offset} {w} {sequence} ."));
            output.Flush();
        }
    }
})).ToArray();
await Task.WhenAll(tasks);
return 0;
