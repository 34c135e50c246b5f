using System.Diagnostics;
using System.Globalization;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>
/// Three members as three real processes on 127.0.0.1 (samples/RaftCluster in its "processes" mode): the leader is
/// SIGKILLed under load, a new one takes over, the killed one restarts, everyone is SIGKILLed, and every acknowledged
/// write must then be on a majority of the disks at its offset. One run in the default tier (about 6 s);
/// APPENDLOG_SOAK=1 repeats it (APPENDLOG_SOAK_RUNS, default 10).
/// </summary>
[NonParallelizable]
public sealed class MultiProcessTests
{
    /// <summary>The built samples/RaftCluster assembly (the test project builds it first), run as the member processes.</summary>
    internal static string SampleAssembly()
    {
        var here = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        var configuration = here.Parent!.Name; // bin/<configuration>/net10.0
        var root = here;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Log.sln")))
        {
            root = root.Parent;
        }

        Assert.That(root, Is.Not.Null, "the repository root (Log.sln) is above the test directory");
        var path = Path.Combine(root!.FullName, "samples", "RaftCluster", "bin", configuration, here.Name, "RaftCluster.dll");
        Assert.That(File.Exists(path), Is.True, $"the sample is built at {path}");
        return path;
    }

    private static async Task RunOnceAsync(string assembly)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(assembly);
        info.ArgumentList.Add("processes");
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        TestContext.Out.WriteLine(await output);
        Assert.That(process.ExitCode, Is.Zero, $"no acknowledged write lost; stderr: {await error}");
    }

    [Test]
    public async Task ThreeProcesses_LeaderSigkilledUnderLoad_NoAcknowledgedWriteIsLost()
    {
        var assembly = SampleAssembly();
        var runs = Environment.GetEnvironmentVariable("APPENDLOG_SOAK") == "1"
            ? int.Parse(Environment.GetEnvironmentVariable("APPENDLOG_SOAK_RUNS") ?? "10", CultureInfo.InvariantCulture)
            : 1;
        for (var i = 0; i < runs; i++)
        {
            await RunOnceAsync(assembly);
        }
    }
}
