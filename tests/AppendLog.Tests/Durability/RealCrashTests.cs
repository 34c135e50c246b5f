using System.Diagnostics;
using System.Globalization;
using AppendLog.CrashHost;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Durability;

/// <summary>
/// Real crashes: a child process (tests/AppendLog.CrashHost) appends from several tasks with the real backend
/// (O_DIRECT where the file system allows it) and prints every acknowledged record; the test kills it with SIGKILL at
/// a seeded random moment, reopens the directory in this process and checks that every acknowledged record is there
/// byte for byte and the log is a gap-free prefix of what the writers appended. The next round restarts the child on
/// the same directory (so the child's own recovery runs too). What a SIGKILL tests: the process dies with writes and
/// syncs in flight; the kernel keeps what reached the page cache, so this checks the acknowledgement order and
/// recovery of a half-written tail, not power loss (the simulator covers that).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class RealCrashTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>tests/AppendLog.CrashHost/bin/&lt;configuration&gt;/&lt;tfm&gt;/AppendLog.CrashHost.dll, found from this assembly's directory.</summary>
    internal static string HostPath
    {
        get
        {
            // .../tests/AppendLog.Tests/bin/Debug/net10.0 → .../tests/AppendLog.CrashHost/bin/Debug/net10.0
            var tfm = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
            var configuration = tfm.Parent!;
            var tests = configuration.Parent!.Parent!.Parent!;
            string path = Path.Combine(tests.FullName, "AppendLog.CrashHost", "bin", configuration.Name, tfm.Name, "AppendLog.CrashHost.dll");
            Assert.That(File.Exists(path), Is.True, $"the crash host is built next to the tests: {path}");
            return path;
        }
    }

    [Test]
    public async Task SigkillAtRandomMoments_KeepsEveryAcknowledgedRecord_InAGapFreePrefix()
    {
        await RunRoundsAsync(Seeds.Get(), CrashRecoveryTests.Soak ? 0 : 8);
    }

    [Test]
    [Category("Soak")]
    public async Task Soak_SigkillManyRounds()
    {
        if (!CrashRecoveryTests.Soak)
        {
            Assert.Ignore("Set APPENDLOG_SOAK=1 to run the soak.");
        }

        await RunRoundsAsync(Seeds.Get(), int.Parse(Environment.GetEnvironmentVariable("APPENDLOG_SOAK_KILLS") ?? "60", CultureInfo.InvariantCulture));
    }

    [Test]
    public async Task SecondProcess_OpeningTheSameDirectory_GetsLogLockedException_UntilTheFirstExits()
    {
        using var dir = new TempDirectory("appendlog-lock");
        string logDir = Path.Combine(dir.Path, "log");
        using var child = Start(logDir, writers: 0, seed: 1, hold: true);
        string? ready = await child.StandardOutput.ReadLineAsync().WaitAsync(Bound);
        await ExpectReadyAsync(child, ready, "lock holder");
        var ex = Assert.ThrowsAsync<LogLockedException>(async () => await SegmentedLog.OpenAsync(new LogOptions { Directory = logDir }));
        Assert.That(ex!.Directory, Is.EqualTo(logDir));
        child.StandardInput.Close();
        await child.WaitForExitAsync().WaitAsync(Bound);
        Assert.That(child.ExitCode, Is.Zero);
        await using var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = logDir });
        Assert.That(log.EndOffset, Is.Zero);
    }

    private static async Task RunRoundsAsync(int seed, int rounds)
    {
        if (rounds == 0)
        {
            Assert.Ignore("The soak runs the rounds.");
        }

        using var dir = new TempDirectory("appendlog-crash");
        string logDir = Path.Combine(dir.Path, "log");
        var random = new Random(seed);
        var known = new List<(int Writer, long Sequence)>();
        long acknowledged = 0;
        int directIoRounds = 0;
        var clock = Stopwatch.StartNew();
        for (int round = 0; round < rounds; round++)
        {
            int writers = random.Next(1, 9);
            int killAfterMs = random.Next(20, 700);
            using var child = Start(logDir, writers, seed: round + 1, hold: false);
            var acks = new List<(long Offset, int Writer, long Sequence)>();
            string? first = await child.StandardOutput.ReadLineAsync().WaitAsync(Bound);
            await ExpectReadyAsync(child, first, $"round {round}");
            var parts = first!.Split(' ');
            Assert.That(long.Parse(parts[1], CultureInfo.InvariantCulture), Is.EqualTo(known.Count), $"round {round}: the child recovered the log to where the last check left it");
            directIoRounds += parts[2] == "True" ? 1 : 0;
            var reading = ReadAcksAsync(child.StandardOutput, acks);
            await Task.Delay(killAfterMs);
            child.Kill(entireProcessTree: true); // SIGKILL
            await child.WaitForExitAsync().WaitAsync(Bound);
            await reading.WaitAsync(Bound);
            acknowledged += acks.Count;

            await using var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = logDir }).AsTask().WaitAsync(Bound);
            var records = new List<(int Writer, long Sequence)>();
            await foreach (var record in log.ReadAsync(0))
            {
                Assert.That(record.Offset, Is.EqualTo(records.Count), $"round {round}: a gap at offset {records.Count}");
                Assert.That(CrashRecord.TryParse(record.Value, out int w, out long s), Is.True, $"round {round}: offset {record.Offset} does not hold a value the child wrote, byte for byte");
                records.Add((w, s));
            }

            Assert.That(log.EndOffset, Is.EqualTo(records.Count));
            Assert.That(records.Distinct().Count(), Is.EqualTo(records.Count), $"round {round}: a record appears twice");
            for (int i = 0; i < known.Count; i++)
            {
                Assert.That(i < records.Count && records[i] == known[i], Is.True, $"round {round}: offset {i} was recovered before as {known[i]}");
            }

            foreach (var (offset, writer, sequence) in acks)
            {
                Assert.That(offset < records.Count && records[(int)offset] == (writer, sequence), Is.True,
                    $"round {round} (seed {seed}, killed after {killAfterMs} ms): acknowledged offset {offset} (writer {writer}, sequence {sequence}) is {(offset < records.Count ? records[(int)offset].ToString() : "missing")}; recovered {records.Count}");
            }

            foreach (var group in records.Skip(known.Count).GroupBy(r => r.Writer))
            {
                Assert.That(group.Select(r => r.Sequence), Is.Ordered.Ascending.And.Unique, $"round {round}: writer {group.Key} out of order");
            }

            known = records;
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"rounds={rounds} (O_DIRECT in {directIoRounds}) acknowledged={acknowledged} records verified at the end={known.Count} acknowledged lost=0 in {clock.Elapsed.TotalSeconds:F1} s"));
        Assert.That(acknowledged, Is.GreaterThan(0), "the children acknowledged something before being killed");
    }

    /// <summary>Fails with the child's stderr when its first line is not "ready" (stderr is read only then: it ends only when the child exits).</summary>
    private static async Task ExpectReadyAsync(Process child, string? line, string what)
    {
        if (line is null || !line.StartsWith("ready", StringComparison.Ordinal))
        {
            child.Kill(entireProcessTree: true);
            Assert.Fail($"{what}: the crash host did not start: {line} {await child.StandardError.ReadToEndAsync()}");
        }
    }

    private static async Task ReadAcksAsync(StreamReader output, List<(long Offset, int Writer, long Sequence)> acks)
    {
        while (await output.ReadLineAsync() is { } line)
        {
            // "ack <offset> <writer> <sequence> ." — the trailing dot proves the line is whole.
            var parts = line.Split(' ');
            if (parts is ["ack", var o, var w, var s, "."])
            {
                acks.Add((long.Parse(o, CultureInfo.InvariantCulture), int.Parse(w, CultureInfo.InvariantCulture), long.Parse(s, CultureInfo.InvariantCulture)));
            }
        }
    }

    private static Process Start(string logDir, int writers, int seed, bool hold)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(HostPath);
        info.ArgumentList.Add(logDir);
        info.ArgumentList.Add(writers.ToString(CultureInfo.InvariantCulture));
        info.ArgumentList.Add(seed.ToString(CultureInfo.InvariantCulture));
        if (hold)
        {
            info.ArgumentList.Add("hold");
        }

        return Process.Start(info) ?? throw new InvalidOperationException("could not start the crash host");
    }
}
