using System.Diagnostics;

namespace AppendLog.LoadGen;

/// <summary>
/// `idle-logs N DIR`: opens N logs under one LogManager, appends one 1 KiB record to each, lets housekeeping
/// release idle buffers, then reports the process's resident memory (VmRSS) and the pool's rented bytes before any
/// log was opened, with all logs active, and once they are idle. The figure a thousand mostly idle logs cost.
/// </summary>
internal static class IdleLogs
{
    public static async Task<int> RunAsync(int count, string directory)
    {
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        using var pool = new LogBufferPool();
        long rssStart = Rss();
        var clock = Stopwatch.StartNew();
        await using var manager = LogManager.Create(new LogManagerOptions
        {
            RootDirectory = directory,
            BufferPool = pool,
            HousekeepingInterval = TimeSpan.FromMilliseconds(200),
            IdleBufferRelease = TimeSpan.FromMilliseconds(500),
        });
        var logs = new List<SegmentedLog>(count);
        for (int i = 0; i < count; i++)
        {
            logs.Add(await manager.GetOrOpenAsync($"topic-{i}"));
        }

        double openSeconds = clock.Elapsed.TotalSeconds;
        await Task.WhenAll(logs.Select(l => l.AppendAsync(new byte[1024]).AsTask()));
        GC.Collect();
        long rssActive = Rss();
        long rentedActive = pool.RentedBytes;
        await Task.Delay(TimeSpan.FromSeconds(2));
        GC.Collect();
        long rssIdle = Rss();
        Console.WriteLine($"{count} logs opened in {openSeconds:F2} s; one 1 KiB record appended to each");
        Console.WriteLine($"RSS before: {rssStart >> 20} MiB; all active: {rssActive >> 20} MiB (pool rented {rentedActive >> 20} MiB); " +
                          $"idle after release: {rssIdle >> 20} MiB (pool rented {pool.RentedBytes >> 10} KiB, pool allocated {pool.AllocatedBytes >> 20} MiB)");
        Console.WriteLine($"per idle log: {(rssIdle - rssStart) / (double)count / 1024:F1} KiB of RSS (includes pool memory kept for reuse: {pool.AllocatedBytes / (double)count / 1024:F1} KiB/log)");
        return 0;
    }

    private static long Rss()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
            }
        }

        return 0;
    }
}
