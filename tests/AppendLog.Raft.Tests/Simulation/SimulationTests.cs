using System.Diagnostics;
using System.Globalization;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Simulation;

/// <summary>
/// Seeded cluster simulations. Every failure prints its seed and the command that replays exactly that run.
/// Default tier: 500 seeds of 20,000 events. Soak tier: set APPENDLOG_SOAK=1 (and optionally APPENDLOG_SOAK_SEEDS).
/// </summary>
[TestFixture]
public sealed class SimulationTests
{
    /// <summary>Seeds of the default run (about 10 s here); the teeth tests must catch their fault within the first <see cref="TeethSeeds"/>.</summary>
    private const int DefaultSeeds = 500;

    private const int TeethSeeds = DefaultSeeds;

    /// <summary>
    /// The ignored-EIO breakage needs an EIO, a crash of that member and an election it decides, in that order: about one
    /// seed in a thousand. The election changes of the fail-over work moved the first catch from within 500 seeds to seed
    /// 908 (the runs draw differently, the breakage is as visible), so this one looks further. It stops at the first catch.
    /// </summary>
    private const int EioTeethSeeds = 3 * DefaultSeeds;

    [Test]
    public void ManySeeds_SafetyHoldsAndEveryAcknowledgedEntryIsAppliedEverywhere()
    {
        var fixedSeed = Environment.GetEnvironmentVariable("APPENDLOG_SEED");
        var seeds = string.IsNullOrEmpty(fixedSeed)
            ? Enumerable.Range(1, DefaultSeeds)
            : [int.Parse(fixedSeed, CultureInfo.InvariantCulture)];
        var stats = RunSeeds(seeds, new SimulationOptions(), nameof(ManySeeds_SafetyHoldsAndEveryAcknowledgedEntryIsAppliedEverywhere));
        if (string.IsNullOrEmpty(fixedSeed))
        {
            Assert.That(stats.ReadsServed, Is.GreaterThan(10_000), "linearizable reads were served, and checked");
            Assert.That(stats.ReadsFailed, Is.GreaterThan(0), "some reads met a deposed or crashed leader and failed");
            Assert.That(stats.HistoryOperations, Is.GreaterThan(100_000), "the key-value histories were checked for linearizability");
        }
    }

    /// <summary>
    /// The same chaos with logs that keep only the last few payloads in memory (as the SegmentedLog adapter does): reads
    /// of older entries stop, the host fetches them, and the node retries. Safety and liveness must not change.
    /// </summary>
    [Test]
    public void ManySeeds_WithOnlyRecentPayloadsInMemory_SafetyAndLivenessHold()
    {
        var fixedSeed = Environment.GetEnvironmentVariable("APPENDLOG_SEED");
        var seeds = string.IsNullOrEmpty(fixedSeed) ? Enumerable.Range(1, 150) : [int.Parse(fixedSeed, CultureInfo.InvariantCulture)];
        var stats = RunSeeds(seeds, new SimulationOptions { ResidentEntries = 3 }, nameof(ManySeeds_WithOnlyRecentPayloadsInMemory_SafetyAndLivenessHold));
        Assert.That(stats.Fetches, Is.GreaterThan(100), "lagging followers and restarts read payloads back");
    }

    /// <summary>
    /// Leaders advance their own batches before the sync (the next batch's appends leave while it runs) and count
    /// themselves only when the sync completes; crashes in between lose those writes. Safety and liveness must hold.
    /// </summary>
    [Test]
    public void ManySeeds_WithPipelinedLeaderWrites_SafetyAndLivenessHold()
    {
        var fixedSeed = Environment.GetEnvironmentVariable("APPENDLOG_SEED");
        var seeds = string.IsNullOrEmpty(fixedSeed) ? Enumerable.Range(1, 300) : [int.Parse(fixedSeed, CultureInfo.InvariantCulture)];
        var stats = RunSeeds(seeds, new SimulationOptions { PipelineLeaderWrites = true, ResidentEntries = 4 }, nameof(ManySeeds_WithPipelinedLeaderWrites_SafetyAndLivenessHold));
        Assert.That(stats.Acknowledged, Is.GreaterThan(50_000), "the pipelined leaders committed");
    }

    /// <summary>
    /// Snapshots sent in chunks (four per image here) through the same chaos: chunks and their answers are lost,
    /// duplicated and reordered, followers crash with an image half received, leaders change and compact again mid-transfer.
    /// Every transfer must converge (liveness: every acknowledged entry applied everywhere) and install only whole images
    /// of the right state (the checker compares each restored state with what was applied at that index).
    /// </summary>
    [Test]
    public void ManySeeds_WithSnapshotsSentInChunks_SafetyAndLivenessHold()
    {
        var fixedSeed = Environment.GetEnvironmentVariable("APPENDLOG_SEED");
        var seeds = string.IsNullOrEmpty(fixedSeed) ? Enumerable.Range(1, 40) : [int.Parse(fixedSeed, CultureInfo.InvariantCulture)];
        var stats = RunSeeds(seeds, new SimulationOptions { SnapshotChunkBytes = 4, CompactAfterEntries = 20 }, nameof(ManySeeds_WithSnapshotsSentInChunks_SafetyAndLivenessHold));
        if (string.IsNullOrEmpty(fixedSeed))
        {
            Assert.That(stats.SnapshotChunksAfterFirst, Is.GreaterThan(stats.SnapshotsSent), "images travelled in several chunks");
            Assert.That(stats.SnapshotChunksResent, Is.GreaterThan(0), "transfers resumed at a later chunk after a loss");
        }
    }

    /// <summary>
    /// The faults of production on top of the usual chaos: EIO on syncs (the member stops, and restarts later over
    /// whatever prefix of its unsynced writes reached the disk), torn crashes (a random prefix of the unsynced entries
    /// survives), process pauses of 50-800 ms (a leader half the time; a read may be the first thing it takes when it
    /// resumes) and every clock skewed. Safety, linearizability and liveness must hold. APPENDLOG_FAULT_SEEDS=N runs N
    /// seeds instead of the default 2,000 (about 35 s here; the opt-in soak: APPENDLOG_FAULT_SEEDS=100000).
    /// </summary>
    [Test]
    public void ManySeeds_WithEioTornWritesPausesAndSkewedClocks_SafetyAndLivenessHold()
    {
        var fixedSeed = Environment.GetEnvironmentVariable("APPENDLOG_SEED");
        var count = int.Parse(Environment.GetEnvironmentVariable("APPENDLOG_FAULT_SEEDS") ?? "2000", CultureInfo.InvariantCulture);
        var seeds = string.IsNullOrEmpty(fixedSeed) ? Enumerable.Range(1, count) : [int.Parse(fixedSeed, CultureInfo.InvariantCulture)];
        var faults = SimulationOptions.ProductionFaults;
        var half = count / 2;
        var stats = RunSeeds(seeds.Take(half), faults, nameof(ManySeeds_WithEioTornWritesPausesAndSkewedClocks_SafetyAndLivenessHold));

        // The other half in ReplicatedLog's own setting: pipelined leader writes, few payloads in memory.
        stats.Add(RunSeeds(seeds.Skip(half), faults with { PipelineLeaderWrites = true, ResidentEntries = 4 },
            nameof(ManySeeds_WithEioTornWritesPausesAndSkewedClocks_SafetyAndLivenessHold)));
        TestContext.Out.WriteLine($"fault mix over {count} seeds: {stats}");
        if (string.IsNullOrEmpty(fixedSeed))
        {
            Assert.That(stats.FailStops, Is.GreaterThan(0), "syncs failed and members stopped");
            Assert.That(stats.TornCrashes, Is.GreaterThan(0), "crashes tore unsynced writes");
            Assert.That(stats.Pauses, Is.GreaterThan(0), "processes paused");
            Assert.That(stats.ReadsOnResume, Is.GreaterThan(0), "leaders took a read first thing after a pause");
        }
    }

    /// <summary>
    /// Teeth for EIO: a host that ignores a failed sync (Fsyncgate: its writes never reach the disk although the next sync
    /// succeeds, and its hard state stays unsynced) goes on acknowledging and voting; a later crash loses what it
    /// acknowledged. The checkers catch it.
    /// </summary>
    [Test]
    public void Checkers_CatchAHostThatIgnoresASyncFailure_WithinTheTeethSeeds()
    {
        var (caught, seed, violation, tried) = FindViolation(
            SimulationOptions.ProductionFaults with { SyncFailureProbability = 0.02, HostIgnoresSyncFailure = true }, EioTeethSeeds, checkersOnly: true);
        TestContext.Out.WriteLine($"host ignores EIO: caught={caught} at seed {seed} after {tried} seeds: {violation}");
        Assert.That(caught, Is.True, $"no violation in {tried} seeds with sync failures ignored");
    }

    /// <summary>
    /// Teeth for pauses: a host that judges a read's lease by the ticks its node happened to see (not brought up to the
    /// clock) serves stale reads from a leader resuming after a pause, once the others elected a new leader.
    /// </summary>
    [Test]
    public void Checkers_CatchALeaseReadJudgedWithoutCatchingUpAfterAPause_WithinTheDefaultSeeds()
    {
        var (caught, seed, violation, tried) = FindViolation(
            SimulationOptions.ProductionFaults with { ReadsSkipTickToNow = true, LeaseReadsEverywhere = true }, TeethSeeds, checkersOnly: true);
        TestContext.Out.WriteLine($"lease read after a pause without catching up: caught={caught} at seed {seed} after {tried} seeds: {violation}");
        Assert.That(caught, Is.True, $"no stale read in {tried} seeds");
    }

    /// <summary>
    /// Teeth for torn writes: crashes that keep only a prefix of the unsynced entries (and EIO, pauses, skew) still expose
    /// a host that acknowledges what it has written but not yet synced: a crash loses part of what it acknowledged.
    /// </summary>
    [Test]
    public void Checkers_CatchAHostThatSendsBeforeItSyncs_WhenCrashesTearWrites_WithinTheDefaultSeeds()
    {
        var (caught, seed, violation, tried) = FindViolation(
            SimulationOptions.ProductionFaults with { HostSendsBeforeSync = true }, TeethSeeds, checkersOnly: true);
        TestContext.Out.WriteLine($"host sends before sync, torn crashes: caught={caught} at seed {seed} after {tried} seeds: {violation}");
        Assert.That(caught, Is.True, $"no violation in {tried} seeds");
    }

    [Test]
    public void TheSameSeed_ReplaysTheSameRun()
    {
        var first = new ClusterSimulation(42, new SimulationOptions());
        var second = new ClusterSimulation(42, new SimulationOptions());
        Assert.That(first.Run(), Is.Empty);
        Assert.That(second.Run(), Is.Empty);
        Assert.That(second.Stats.ToString(), Is.EqualTo(first.Stats.ToString()));
        Assert.That(second.NowMs, Is.EqualTo(first.NowMs));
    }

    [Test]
    [Category("Soak")]
    public void Soak_ThousandsOfSeeds()
    {
        if (Environment.GetEnvironmentVariable("APPENDLOG_SOAK") != "1")
        {
            Assert.Ignore("Soak run: set APPENDLOG_SOAK=1 (APPENDLOG_SOAK_SEEDS=N seeds, default 5000, each in four settings: the three of the default tests and the production faults; APPENDLOG_SOAK_STEPS=N events each, default 10000).");
        }

        // Every seed runs in the three settings of the default tests: every payload in memory, only recent ones
        // (fetches), and ReplicatedLog's own (pipelined leader writes, few payloads in memory); then in ReplicatedLog's
        // setting with EIO, torn crashes, pauses and skewed clocks.
        var count = int.Parse(Environment.GetEnvironmentVariable("APPENDLOG_SOAK_SEEDS") ?? "5000", CultureInfo.InvariantCulture);
        var steps = int.Parse(Environment.GetEnvironmentVariable("APPENDLOG_SOAK_STEPS") ?? "10000", CultureInfo.InvariantCulture);
        var fixedSeed = Environment.GetEnvironmentVariable("APPENDLOG_SEED");
        var seeds = string.IsNullOrEmpty(fixedSeed) ? Enumerable.Range(100_000, count).ToList() : [int.Parse(fixedSeed, CultureInfo.InvariantCulture)];
        RunSeeds(seeds, new SimulationOptions { StepsMax = steps }, nameof(Soak_ThousandsOfSeeds));
        RunSeeds(seeds, new SimulationOptions { StepsMax = steps, ResidentEntries = 3 }, nameof(Soak_ThousandsOfSeeds));
        RunSeeds(seeds, new SimulationOptions { StepsMax = steps, PipelineLeaderWrites = true, ResidentEntries = 4 }, nameof(Soak_ThousandsOfSeeds));
    }

    /// <summary>The checkers have teeth: with the vote left out of persisted state, they catch a double vote.</summary>
    [Test]
    public void Checkers_CatchASkippedVotePersistence_WithinTheDefaultSeeds()
    {
        var (caught, seed, violation, tried) = FindViolation(RaftTestingFaults.SkipVotePersistence, TeethSeeds);
        TestContext.Out.WriteLine($"skipped vote persistence: caught={caught} at seed {seed} after {tried} seeds: {violation}");
        Assert.That(caught, Is.True, $"no violation in {tried} seeds with the vote never persisted");
    }

    /// <summary>The checkers have teeth: a host that sends before it syncs lets a crash lose what it acknowledged.</summary>
    [Test]
    public void Checkers_CatchAHostThatSendsBeforeItSyncs_WithinTheDefaultSeeds()
    {
        var (caught, seed, violation, tried) = FindViolation(new SimulationOptions { HostSendsBeforeSync = true }, TeethSeeds, checkersOnly: true);
        TestContext.Out.WriteLine($"host sends before sync: caught={caught} at seed {seed} after {tried} seeds: {violation}");
        Assert.That(caught, Is.True, $"no violation in {tried} seeds with messages sent before the sync");
    }

    /// <summary>
    /// The checkers have teeth for §5.4.2 too: committing an earlier-term entry by counting replicas is caught as a
    /// lost acknowledged entry. Figure 8 needs a rare interleaving, so this searches up to 1,000 seeds (about 10 s).
    /// </summary>
    [Test]
    public void Checkers_CatchCommittingPreviousTermEntriesByCounting_WithinAThousandSeeds()
    {
        // Without reads: their heartbeats change the runs, and the rare interleaving was found in the runs without them.
        var (caught, seed, violation, tried) = FindViolation(
            new SimulationOptions { TestingFaults = RaftTestingFaults.CommitPreviousTermByCounting, Reads = false }, 1000);
        TestContext.Out.WriteLine($"previous-term commit by counting: caught={caught} at seed {seed} after {tried} seeds: {violation}");
        Assert.That(caught, Is.True);
    }

    /// <summary>The read checker has teeth: a leader that serves reads without confirming its leadership is caught serving a stale read.</summary>
    [Test]
    public void Checkers_CatchReadsServedWithoutAQuorumRound_WithinTheDefaultSeeds()
    {
        var (caught, seed, violation, tried) = FindViolation(RaftTestingFaults.ServeReadsWithoutQuorum, TeethSeeds);
        TestContext.Out.WriteLine($"reads without a quorum round: caught={caught} at seed {seed} after {tried} seeds: {violation}");
        Assert.That(caught, Is.True, $"no stale read in {tried} seeds with reads served without a quorum round");
        Assert.That(violation, Does.StartWith("stale read"));
    }

    /// <summary>
    /// The linearizability checker has teeth by itself: with the read-index check off, reads served without a quorum
    /// round make the key-value history non-linearizable.
    /// </summary>
    [Test]
    public void TheLinearizabilityChecker_CatchesReadsServedWithoutAQuorumRound_WithinTheDefaultSeeds()
    {
        var (caught, seed, violation, tried) = FindViolation(
            new SimulationOptions { TestingFaults = RaftTestingFaults.ServeReadsWithoutQuorum, CheckReadIndex = false }, TeethSeeds);
        TestContext.Out.WriteLine($"linearizability, reads without a quorum round: caught={caught} at seed {seed} after {tried} seeds: {violation}");
        Assert.That(caught, Is.True, $"no anomaly in {tried} seeds");
        Assert.That(violation, Does.StartWith("linearizability"));
    }

    internal static (bool Caught, int Seed, string? Violation, int Tried) FindViolation(RaftTestingFaults fault, int seedsMax) =>
        FindViolation(new SimulationOptions { TestingFaults = fault }, seedsMax);

    /// <summary>Runs seeds 1..<paramref name="seedsMax"/> with <paramref name="options"/> until one reports a violation.</summary>
    /// <param name="options">The (deliberately broken) simulation.</param>
    /// <param name="seedsMax">The last seed to try.</param>
    /// <param name="checkersOnly">Skip seeds where a node's own invariant tripped first: the external checkers must find it.</param>
    internal static (bool Caught, int Seed, string? Violation, int Tried) FindViolation(SimulationOptions options, int seedsMax, bool checkersOnly = false)
    {
        for (var seed = 1; seed <= seedsMax; seed++)
        {
            var sim = new ClusterSimulation(seed, options);
            var violations = sim.Run();
            if (violations.Count > 0 && !(checkersOnly && violations[0].Contains("invariant violated", StringComparison.Ordinal)))
            {
                return (true, seed, violations[0], seed);
            }
        }

        return (false, 0, null, seedsMax);
    }

    private static SimulationStats RunSeeds(IEnumerable<int> seeds, SimulationOptions options, string testName)
    {
        var total = new SimulationStats();
        var runs = 0;
        var clock = Stopwatch.StartNew();
        foreach (var seed in seeds)
        {
            var sim = new ClusterSimulation(seed, options);
            IReadOnlyList<string> violations;
            try
            {
                violations = sim.Run();
            }
            catch (Exception ex)
            {
                violations = [$"unexpected exception: {ex}"];
            }

            total.Add(sim.Stats);
            runs++;
            if (violations.Count > 0)
            {
                Assert.Fail($"seed {seed} at {sim.NowMs} ms: {string.Join(Environment.NewLine, violations)}{Environment.NewLine}" +
                            $"replay: {(testName.StartsWith("Soak", StringComparison.Ordinal) ? "APPENDLOG_SOAK=1 " : "")}APPENDLOG_SEED={seed} dotnet test tests/AppendLog.Raft.Tests --filter Name={testName}");
            }
        }

        TestContext.Out.WriteLine($"{runs} seeds, 0 violations, {clock.Elapsed.TotalSeconds:F1} s wall: {total}");
        return total;
    }
}
