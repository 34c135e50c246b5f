using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Durability;

/// <summary>
/// Seeded model-based runs against the storage simulator (see <see cref="SimulatedRun"/> for what each run checks).
/// The default runs are bounded (about half a minute on 2 cores); the soak (APPENDLOG_SOAK=1) runs many more seeds
/// and prints totals. Each test derives its run seeds from the printed seed (APPENDLOG_SEED) with
/// <see cref="Seeds.Derive"/>; a failure message names the run's own seed, and APPENDLOG_RUN_SEED=&lt;that seed&gt; with
/// the same test name replays that one run alone.
/// </summary>
[TestFixture]
public sealed class CrashRecoveryTests
{
    internal static bool Soak => Environment.GetEnvironmentVariable("APPENDLOG_SOAK") == "1";

    [Test]
    public async Task PowerCutAnywhere_RecoversAGapFreePrefixHoldingEveryAcknowledgedRecord()
    {
        await RunManyAsync(Seeds.Get(), runs: 60, epochs: 3, [EpochEnd.CrashAfterOperations, EpochEnd.CrashAtWrite, EpochEnd.CrashAtSync]);
    }

    [Test]
    public async Task EioOnWriteOrSync_FaultsTheLog_AndReopenKeepsTheAcknowledgedPrefix()
    {
        await RunManyAsync(Seeds.Get(), runs: 60, epochs: 2, [EpochEnd.WriteErrorThenCrash, EpochEnd.SyncErrorThenCrash, EpochEnd.WriteErrorThenReopen]);
    }

    [Test]
    public async Task MixedOperationsAndEndings_KeepTheContract()
    {
        await RunManyAsync(Seeds.Get(), runs: 60, epochs: 3, ends: null);
    }

    [Test]
    [Category("Soak")]
    public async Task Soak_ManySeeds_AllEndings()
    {
        if (!Soak)
        {
            Assert.Ignore("Set APPENDLOG_SOAK=1 to run the soak.");
        }

        int minutes = int.Parse(Environment.GetEnvironmentVariable("APPENDLOG_SOAK_MINUTES") ?? "5", CultureInfo.InvariantCulture);
        await RunManyAsync(Seeds.Get(), runs: int.MaxValue, epochs: 4, ends: null, TimeSpan.FromMinutes(minutes));
    }

    private static async Task RunManyAsync(int seed, int runs, int epochs, EpochEnd[]? ends, TimeSpan? budget = null, [CallerMemberName] string test = "")
    {
        string? only = Environment.GetEnvironmentVariable("APPENDLOG_RUN_SEED");
        var totals = new RunTotals();
        var clock = Stopwatch.StartNew();
        var failures = new List<string>();
        for (int i = 0; i < runs && (budget is null || clock.Elapsed < budget); i++)
        {
            int runSeed = string.IsNullOrEmpty(only) ? Seeds.Derive(seed, i) : int.Parse(only, CultureInfo.InvariantCulture);
            runs = string.IsNullOrEmpty(only) ? runs : 1;
            try
            {
                // A whole run is bounded too: an append that spins on "need space" never reaches the inner bounds.
                await new SimulatedRun(runSeed, totals, epochs, ends).RunAsync().WaitAsync(TimeSpan.FromSeconds(60));
            }
            catch (TimeoutException)
            {
                failures.Add($"run {i}: seed {runSeed} did not finish within 60 s (replay: APPENDLOG_RUN_SEED={runSeed} dotnet test --filter Name={test})");
                break;
            }
            catch (DurabilityViolation e)
            {
                failures.Add($"run {i}: {e.Message} (replay: APPENDLOG_RUN_SEED={runSeed} dotnet test --filter Name={test}){Environment.NewLine}{e.InnerException}");
                if (failures.Count >= 3)
                {
                    break;
                }
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{clock.Elapsed.TotalSeconds:F1} s"));
        Console.WriteLine(totals);
        Assert.That(failures, Is.Empty, string.Join(Environment.NewLine, failures));
        Assert.That(totals.AcknowledgedLost, Is.Zero);
        Assert.That(totals.RecordsVerified, Is.GreaterThan(0), "the runs verified something");
    }
}
