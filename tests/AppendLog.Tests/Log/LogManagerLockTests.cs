using System.Diagnostics;
using AppendLog.Testing;
using AppendLog.Tests.Durability;
using NUnit.Framework;

namespace AppendLog.Tests.Log;

/// <summary>
/// Who may open a manager's log: the manager holds one lock on its root and its logs take none, so a log opened on its
/// own must find the manager's lock, and the manager must find a log opened on its own. Both directions in this process
/// (flock locks belong to the open file description, so two instances in one process conflict as two processes do) and
/// across processes (tests/AppendLog.CrashHost as the other process).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class LogManagerLockTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-manager-lock");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    [CancelAfter(30_000)]
    public async Task ManagersLogs_TakeNoLockFileEach_AndAStandaloneOpenOfOne_IsRefused_UntilTheManagerCloses()
    {
        string root = _dir.File("root");
        await using (var manager = LogManager.Create(new LogManagerOptions { RootDirectory = root }))
        {
            var log = await manager.GetOrOpenAsync("a");
            await log.AppendAsync(new byte[] { 1 });
            Assert.That(File.Exists(Path.Combine(root, "a", ".lock")), Is.False, "a manager's log takes no lock file (no descriptor) of its own");
            var ex = Assert.ThrowsAsync<LogLockedException>(async () => await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(root, "a") }));
            Assert.That(ex!.Directory, Is.EqualTo(Path.Combine(root, "a")));
            Assert.ThrowsAsync<LogLockedException>(async () => await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(root, "not-yet-a-log") }), "the manager owns every directory under its root");
            Assert.Throws<LogLockedException>(() => LogManager.Create(new LogManagerOptions { RootDirectory = root }), "one manager per root");
        }

        await using var alone = await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(root, "a") });
        Assert.That(alone.EndOffset, Is.EqualTo(1), "once the manager is closed, the log opens on its own");
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Manager_RefusesALogOpenOnItsOwn_AndOpensTheOthers()
    {
        string root = _dir.File("root");
        var alone = await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(root, "b") });
        await using (var manager = LogManager.Create(new LogManagerOptions { RootDirectory = root }))
        {
            var ex = Assert.ThrowsAsync<LogLockedException>(async () => await manager.GetOrOpenAsync("b"));
            Assert.That(ex!.Directory, Is.EqualTo(Path.Combine(root, "b")));
            Assert.That((await manager.GetOrOpenAsync("c")).EndOffset, Is.Zero, "the other logs open");
            await alone.DisposeAsync();
            Assert.That((await manager.GetOrOpenAsync("b")).EndOffset, Is.Zero, "b opens once its standalone instance closed");
        }
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task AcrossProcesses_AManagerElsewhere_RefusesStandaloneOpensAndASecondManager()
    {
        string root = _dir.File("root");
        using var child = Start("manager-hold", root, "a");
        await ExpectReadyAsync(child);
        try
        {
            Assert.ThrowsAsync<LogLockedException>(async () => await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(root, "a") }), "the log the other manager opened");
            Assert.ThrowsAsync<LogLockedException>(async () => await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(root, "z") }), "any log under its root");
            Assert.Throws<LogLockedException>(() => LogManager.Create(new LogManagerOptions { RootDirectory = root }));
        }
        finally
        {
            await StopAsync(child);
        }

        await using var manager = LogManager.Create(new LogManagerOptions { RootDirectory = root });
        Assert.That((await manager.GetOrOpenAsync("a")).EndOffset, Is.Zero, "free once the other process exited");
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task AcrossProcesses_AStandaloneLogElsewhere_IsRefusedByTheManager()
    {
        string root = _dir.File("root");
        using var child = Start(Path.Combine(root, "b"), "0", "1", "hold");
        await ExpectReadyAsync(child);
        try
        {
            await using var manager = LogManager.Create(new LogManagerOptions { RootDirectory = root });
            Assert.ThrowsAsync<LogLockedException>(async () => await manager.GetOrOpenAsync("b"));
            Assert.That((await manager.GetOrOpenAsync("c")).EndOffset, Is.Zero);
        }
        finally
        {
            await StopAsync(child);
        }
    }

    private static Process Start(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(RealCrashTests.HostPath);
        foreach (string a in args)
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException("could not start the crash host");
    }

    private static async Task ExpectReadyAsync(Process child)
    {
        string? line = await child.StandardOutput.ReadLineAsync().WaitAsync(Bound);
        if (line is null || !line.StartsWith("ready", StringComparison.Ordinal))
        {
            child.Kill(entireProcessTree: true);
            Assert.Fail($"the crash host did not start: {line} {await child.StandardError.ReadToEndAsync()}");
        }
    }

    private static async Task StopAsync(Process child)
    {
        child.StandardInput.Close();
        await child.WaitForExitAsync().WaitAsync(Bound);
        Assert.That(child.ExitCode, Is.Zero, await child.StandardError.ReadToEndAsync());
    }
}
