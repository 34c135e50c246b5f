using System.Diagnostics;
using System.Globalization;
using AppendLog.Testing;
using AppendLog.Tests.Durability;
using NUnit.Framework;

namespace AppendLog.Tests.Log;

/// <summary>
/// One descriptor cap for all of a manager's logs (<see cref="LogManagerOptions.MaximumOpenFiles"/>): idle active
/// segments and read handles are closed least recently used first and reopened on demand; a cap the process's limit
/// cannot hold is refused when the manager is created. The 10,000-log run happens in a child process under
/// <c>ulimit -n 1024</c> (tests/AppendLog.CrashHost, mode <c>many-logs</c>).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class LogManagerDescriptorTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-descriptors");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    [CancelAfter(60_000)]
    public async Task UnderACap_IdleLogsCloseTheirActiveSegments_AndReopenThemOnTheNextAppend()
    {
        const int Logs = 120, Cap = 16;
        await using var manager = LogManager.Create(new LogManagerOptions
        {
            RootDirectory = _dir.File("root"),
            MaximumOpenFiles = Cap,
            MaximumOpenReadFiles = 8,
            LogDefaults = new LogOptions { PreallocationMinimumStep = 64 * 1024, PreallocationMaximumStep = 64 * 1024 },
        });
        Assert.That(manager.MaximumOpenFiles, Is.EqualTo(Cap));
        int before = Descriptors();
        var logs = new List<SegmentedLog>();
        for (int i = 0; i < Logs; i++)
        {
            var log = await manager.GetOrOpenAsync($"p-{i:D3}");
            logs.Add(log);
            Assert.That(await log.AppendAsync(BitConverter.GetBytes(i)), Is.Zero);
            Assert.That(manager.OpenFileCount, Is.LessThanOrEqualTo(Cap), $"after log {i}: appended and idle, every log but one can give its handle back");
        }

        // Lock files would add one per log; the active segments of idle logs are closed: a few over the cap at most
        // (the runtime's own descriptors move a little meanwhile).
        Assert.That(Descriptors() - before, Is.LessThanOrEqualTo(Cap + 8));

        // Second round: each append reopens its log's file and another idle one is closed for it; reads take handles too.
        for (int i = 0; i < Logs; i++)
        {
            Assert.That(await logs[i].AppendAsync(BitConverter.GetBytes(1000 + i)), Is.EqualTo(1));
            var values = new List<int>();
            await foreach (var r in logs[(i * 7) % Logs].ReadAsync(0))
            {
                values.Add(BitConverter.ToInt32(r.Value));
            }

            Assert.That(values[0], Is.EqualTo((i * 7) % Logs));
            Assert.That(manager.OpenFileCount, Is.LessThanOrEqualTo(Cap));
        }

        Assert.That(Descriptors() - before, Is.LessThanOrEqualTo(Cap + 8));
        for (int i = 0; i < Logs; i++)
        {
            var values = new List<int>();
            await foreach (var r in logs[i].ReadAsync(0))
            {
                values.Add(BitConverter.ToInt32(r.Value));
            }

            Assert.That(values, Is.EqualTo(new[] { i, 1000 + i }), logs[i].Directory);
        }
    }

    [Test]
    public void MaximumOpenFiles_IsCheckedAgainstTheProcessLimit_AndDerivedFromItByDefault()
    {
        var options = new LogManagerOptions { RootDirectory = "r" };
        int reserve = 64 + (2 * 64) + (2 * 64); // process, concurrent opens, I/O workers at their maximum
        Assert.That(LogManager.ChooseMaximumOpenFiles(options, 1024), Is.EqualTo(512), "half the limit");
        Assert.That(LogManager.ChooseMaximumOpenFiles(options, 400), Is.EqualTo(400 - reserve), "the limit less the reserve when that is less than half");
        Assert.That(LogManager.ChooseMaximumOpenFiles(options, 1L << 40), Is.EqualTo(1_000_000));
        Assert.That(LogManager.ChooseMaximumOpenFiles(options, null), Is.EqualTo(4096), "where the limit is unknown");
        Assert.That(LogManager.ChooseMaximumOpenFiles(options with { MaximumOpenFiles = 1024 - reserve }, 1024), Is.EqualTo(1024 - reserve), "exactly fits");
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => LogManager.ChooseMaximumOpenFiles(options with { MaximumOpenFiles = 1024 - reserve + 1 }, 1024));
        Assert.That(ex!.Message, Does.Contain("MaximumOpenFiles").And.Contain("1024"));
        Assert.Throws<ArgumentOutOfRangeException>(() => LogManager.ChooseMaximumOpenFiles(options, 100), "a limit too low for the reserve");
        Assert.Throws<ArgumentOutOfRangeException>(() => (options with { MaximumOpenFiles = 15 }).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => (options with { MaximumOpenFiles = 1_000_001 }).Validate());
        Assert.DoesNotThrow(() => (options with { MaximumOpenFiles = 16 }).Validate());
    }

    /// <summary>
    /// 10,000 logs in one manager in a process limited to 1,024 descriptors: open, append to all, read all, close, reopen,
    /// read again. Without the cap (one lock file per log, or every active segment kept open) this fails with EMFILE.
    /// About 30-45 s on 2 busy cores; <c>APPENDLOG_MANY_LOGS</c> changes the count.
    /// </summary>
    [Test]
    [CancelAfter(240_000)]
    public async Task TenThousandLogs_InOneManager_UnderA1024DescriptorLimit_OpenAppendReadCloseReopen(CancellationToken cancellationToken)
    {
        int count = int.Parse(Environment.GetEnvironmentVariable("APPENDLOG_MANY_LOGS") ?? "10000", CultureInfo.InvariantCulture);
        var (exit, lines, error) = await RunUnderLimitAsync(_dir.File("root"), count, "default", cancellationToken);
        Assert.That(exit, Is.Zero, $"{string.Join('\n', lines)}\n{error}");
        Assert.That(lines, Does.Contain("ok"));
        Assert.That(lines[0], Is.EqualTo("cap 512"), "half of 1,024");
        foreach (string phase in lines.Where(l => l.StartsWith("phase", StringComparison.Ordinal)))
        {
            string[] f = phase.Split(' ');
            int counted = int.Parse(f[5], CultureInfo.InvariantCulture);
            Assert.That(counted, Is.LessThanOrEqualTo(512 + 64), $"{phase}: at most the cap plus the handles in use (64 logs at a time)");
        }

        TestContext.Out.WriteLine(string.Join('\n', lines));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task ACapTheDescriptorLimitCannotHold_IsRefusedWhenTheManagerIsCreated(CancellationToken cancellationToken)
    {
        string root = _dir.File("root");
        var (exit, lines, error) = await RunUnderLimitAsync(root, 10, "2000", cancellationToken);
        Assert.That(exit, Is.EqualTo(3), $"{string.Join('\n', lines)}\n{error}");
        Assert.That(lines[0], Does.StartWith("refused System.ArgumentOutOfRangeException").And.Contain("MaximumOpenFiles (2000)").And.Contain("(1024, RLIMIT_NOFILE)"));
        Assert.That(Directory.Exists(root), Is.False, "refused before anything was created");
    }

    private static int Descriptors() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>Runs the crash host's many-logs mode through bash with <c>ulimit -n 1024</c> (soft and hard).</summary>
    private static async Task<(int Exit, List<string> Lines, string Error)> RunUnderLimitAsync(string root, int count, string cap, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("ulimit -n 1024 && exec dotnet \"$0\" many-logs \"$1\" \"$2\" \"$3\"");
        info.ArgumentList.Add(RealCrashTests.HostPath);
        info.ArgumentList.Add(root);
        info.ArgumentList.Add(count.ToString(CultureInfo.InvariantCulture));
        info.ArgumentList.Add(cap);
        using var child = Process.Start(info) ?? throw new InvalidOperationException("could not start the crash host");
        try
        {
            var error = child.StandardError.ReadToEndAsync();
            var lines = new List<string>();
            while (await child.StandardOutput.ReadLineAsync(cancellationToken) is { } line)
            {
                lines.Add(line);
            }

            await child.WaitForExitAsync(cancellationToken);
            return (child.ExitCode, lines, await error.WaitAsync(cancellationToken));
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill(entireProcessTree: true);
            }
        }
    }
}
