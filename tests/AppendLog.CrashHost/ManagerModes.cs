using System.Globalization;

namespace AppendLog.CrashHost;

/// <summary>
/// The crash host's <see cref="LogManager"/> modes, for tests that need a second process:
/// <list type="bullet">
/// <item><c>manager-hold &lt;root&gt; &lt;name&gt;</c>: creates a manager on the root, opens the log, prints
/// <c>ready</c> and waits for stdin to close (the cross-process lock tests).</item>
/// <item><c>many-logs &lt;root&gt; &lt;count&gt; &lt;cap|default&gt;</c>: one manager opens <c>count</c> logs, appends one
/// record to each, reads every log back, closes the manager, opens every log again and reads again; prints
/// <c>phase &lt;name&gt; fds &lt;open descriptors&gt; counted &lt;OpenFileCount&gt;</c> after each phase and <c>ok</c>
/// at the end, or <c>refused &lt;exception type&gt;</c> when the manager cannot be created (exit code 3). Meant to run
/// under a low descriptor limit (<c>ulimit -n</c>).</item>
/// </list>
/// </summary>
internal static class ManagerModes
{
    public static async Task<int> HoldAsync(string root, string name)
    {
        await using var manager = LogManager.Create(new LogManagerOptions { RootDirectory = root });
        var log = await manager.GetOrOpenAsync(name);
        Report($"ready {log.EndOffset}");
        await Console.In.ReadToEndAsync();
        return 0;
    }

    public static async Task<int> ManyLogsAsync(string root, int count, string cap)
    {
        // Small chunks and a prompt idle release: ten thousand logs each holding a 64 KiB chunk until housekeeping runs
        // would measure the buffer pool, not the descriptors.
        using var pool = new LogBufferPool(budgetBytes: 256L * 1024 * 1024, chunkSize: 4096);
        var options = new LogManagerOptions
        {
            RootDirectory = root,
            BufferPool = pool,
            MaximumOpenFiles = cap == "default" ? null : int.Parse(cap, CultureInfo.InvariantCulture),
            HousekeepingInterval = TimeSpan.FromMilliseconds(200),
            IdleBufferRelease = TimeSpan.FromMilliseconds(200),
            LogDefaults = new LogOptions
            {
                SegmentSize = 1024 * 1024,
                PreallocationMinimumStep = 64 * 1024,
                PreallocationMaximumStep = 64 * 1024,
            },
        };
        string[] names = Enumerable.Range(0, count).Select(i => string.Create(CultureInfo.InvariantCulture, $"p-{i:D5}")).ToArray();
        LogManager manager;
        try
        {
            manager = LogManager.Create(options);
        }
        catch (ArgumentOutOfRangeException e)
        {
            Report($"refused {e.GetType().FullName} {e.Message.ReplaceLineEndings(" ")}");
            return 3;
        }

        await using (manager)
        {
            Clock.Restart();
            Report($"cap {manager.MaximumOpenFiles}");
            var logs = await manager.OpenAsync(names);
            Phase("opened", manager);
            await ForEachAsync(logs, async (log, i) =>
            {
                long offset = await log.AppendAsync(Value(i));
                Check(offset == 0, $"{log.Directory}: first record at {offset}");
            });
            Phase("appended", manager);
            await ForEachAsync(logs, (log, i) => ReadBackAsync(log, i));
            Phase("read", manager);
        }

        Phase("closed", null);
        await using (manager = LogManager.Create(options))
        {
            var logs = await manager.OpenAllAsync();
            Check(logs.Count == count, $"{logs.Count} logs reopened");
            Phase("reopened", manager);
            await ForEachAsync(logs, (log, _) => ReadBackAsync(log, int.Parse(Path.GetFileName(log.Directory)[2..], CultureInfo.InvariantCulture)));
            Phase("read-again", manager);
        }

        Report("ok");
        return 0;
    }

    private static byte[] Value(int i) => BitConverter.GetBytes(i * 7919L);

    private static async Task ReadBackAsync(SegmentedLog log, int i)
    {
        int n = 0;
        await foreach (var record in log.ReadAsync(0))
        {
            Check(record.Value.AsSpan().SequenceEqual(Value(i)), $"{log.Directory}: record {record.Offset} differs");
            n++;
        }

        Check(n == 1, $"{log.Directory}: {n} records");
    }

    /// <summary>At most 64 logs at a time: many appends in flight, far fewer than the logs.</summary>
    private static Task ForEachAsync(IReadOnlyList<SegmentedLog> logs, Func<SegmentedLog, int, Task> action) =>
        Parallel.ForEachAsync(Enumerable.Range(0, logs.Count), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, _) => await action(logs[i], i));

    private static readonly System.Diagnostics.Stopwatch Clock = System.Diagnostics.Stopwatch.StartNew();

    private static void Phase(string name, LogManager? manager) =>
        Report($"phase {name} fds {Directory.GetFiles("/proc/self/fd").Length} counted {manager?.OpenFileCount ?? 0} at {Clock.Elapsed.TotalSeconds:F1}s");

    private static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new InvalidOperationException(message);
        }
    }

    private static void Report(string line)
    {
        Console.Out.WriteLine(line);
        Console.Out.Flush();
    }
}
