// QuickStart: open a log, append 1 KiB records from many concurrent tasks (each append completes only when
// durable), read everything back and verify it, then print durable throughput and latency percentiles.
//
//   dotnet run -c Release --project samples/QuickStart [-- --dir PATH --tasks N --records N --size BYTES]
using System.Diagnostics;
using AppendLog;

string dir = Path.GetFullPath("quickstart-data");
int tasks = 64, total = 200_000, size = 1024;
for (int i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--dir": dir = Path.GetFullPath(args[i + 1]); break;
        case "--tasks": tasks = int.Parse(args[i + 1]); break;
        case "--records": total = int.Parse(args[i + 1]); break;
        case "--size": size = int.Parse(args[i + 1]); break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

// A fresh log each run, so the figures describe this run only.
if (Directory.Exists(dir))
{
    Directory.Delete(dir, recursive: true);
}

await using var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = dir });
Console.WriteLine($"AppendLog quickstart: {dir} (O_DIRECT: {(log.IsDirectIo ? "yes" : "no, buffered + fdatasync")})");
Console.WriteLine($"appending {total:N0} records of {size} B from {tasks} concurrent tasks; each append waits for durability");

// Each record's payload is derived from its sequence number so the read-back can verify every byte.
static byte[] Payload(int sequence, int size)
{
    var bytes = new byte[size];
    new Random(sequence).NextBytes(bytes);
    BitConverter.TryWriteBytes(bytes, sequence);
    return bytes;
}

var latencies = new long[total];
var offsets = new long[total];
int next = -1;
var clock = Stopwatch.StartNew();
var workers = Enumerable.Range(0, tasks).Select(async _ =>
{
    while (true)
    {
        int seq = Interlocked.Increment(ref next);
        if (seq >= total)
        {
            return;
        }

        byte[] payload = Payload(seq, size);
        long start = Stopwatch.GetTimestamp();
        offsets[seq] = await log.AppendAsync(payload);
        latencies[seq] = Stopwatch.GetTimestamp() - start;
    }
}).ToArray();
await Task.WhenAll(workers);
double seconds = clock.Elapsed.TotalSeconds;

Array.Sort(latencies);
double Us(double q) => latencies[Math.Min(total - 1, (int)(q * total))] * 1_000_000.0 / Stopwatch.Frequency;
Console.WriteLine($"durable appends: {total / seconds:N0} records/s, {total * (double)size / seconds / 1e6:N1} MB/s over {seconds:N2} s");
Console.WriteLine($"append latency (µs): p50 {Us(0.50):N0}  p99 {Us(0.99):N0}  p99.9 {Us(0.999):N0}  p99.99 {Us(0.9999):N0}  max {latencies[^1] * 1_000_000.0 / Stopwatch.Frequency:N0}");

// Read back: every offset once, each value equal to what its append sent.
var bySequence = new Dictionary<long, int>(total);
for (int i = 0; i < total; i++)
{
    bySequence[offsets[i]] = i;
}

int verified = 0;
clock.Restart();
await foreach (var record in log.ReadAsync(0))
{
    int seq = bySequence[record.Offset];
    if (!record.Value.AsSpan().SequenceEqual(Payload(seq, size)))
    {
        Console.Error.WriteLine($"MISMATCH at offset {record.Offset}");
        return 1;
    }

    verified++;
}

Console.WriteLine($"read back and verified {verified:N0} records in {clock.Elapsed.TotalSeconds:N2} s");
return verified == total ? 0 : 1;
