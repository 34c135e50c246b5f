namespace AppendLog.Raft.Tests.Simulation;

/// <summary>
/// The fault model of one simulated run. Every probability is per event; every duration is virtual milliseconds.
/// </summary>
internal sealed record SimulationOptions
{
    /// <summary>Events processed before the final heal-and-converge phase.</summary>
    public int StepsMax { get; init; } = 20_000;

    public double DropProbability { get; init; } = 0.05;

    public double DuplicateProbability { get; init; } = 0.03;

    /// <summary>Message delay is uniform in [1, this]; different delays reorder messages.</summary>
    public int DelayMaxMs { get; init; } = 15;

    /// <summary>Time a host takes to sync a Ready (the debounced fdatasync): uniform in [0, this].</summary>
    public int SyncLatencyMaxMs { get; init; } = 4;

    /// <summary>Mean time between chaos actions (crash, restart, partition, heal, transfer, membership change).</summary>
    public int ChaosIntervalMs { get; init; } = 120;

    /// <summary>Mean time between client proposals.</summary>
    public int ProposalIntervalMs { get; init; } = 8;

    /// <summary>Compact a node's log when this many applied entries sit above its snapshot.</summary>
    public int CompactAfterEntries { get; init; } = 40;

    /// <summary>How long the final, fault-free phase may take for every member to apply every acknowledged entry.</summary>
    public int ConvergeMsMax { get; init; } = 20_000;

    public bool MembershipChanges { get; init; } = true;

    /// <summary>With about one proposal in three, a linearizable read on the same (perhaps deposed) leader, checked when served.
    /// Off, a run draws exactly the random numbers it drew before reads existed.</summary>
    public bool Reads { get; init; } = true;

    /// <summary>Check each served read's index against what was applied anywhere before it began. Off only to show that the
    /// linearizability checker catches stale reads by itself.</summary>
    public bool CheckReadIndex { get; init; } = true;

    /// <summary>Leaders advance their own batches before the sync and count themselves when it completes.</summary>
    public bool PipelineLeaderWrites { get; init; }

    /// <summary>When positive, each log keeps only this many recent payloads in memory and reads older ones back on demand.</summary>
    public int ResidentEntries { get; init; }

    public RaftTestingFaults TestingFaults { get; init; }

    /// <summary>Image bytes per snapshot message. The simulator's images are 16 bytes: at the default they travel in one
    /// chunk (the runs of every seed stay what they were); at 4 bytes in four, which exercises resumption under loss.</summary>
    public int SnapshotChunkBytes { get; init; } = RaftOptions.DefaultSnapshotChunkBytes;

    /// <summary>In lease-read seeds: the spread of the nodes' clock rates (null: 0.9 × the drift leases assume, so every
    /// pair stays within it). Far above the bound (0.98, rates 3:1 apart) runs end in election livelock before a stale
    /// read shows (a fast node without pre-vote keeps raising the term): LeaseReadTests shows the bound's teeth instead.</summary>
    public double? ClockSkew { get; init; }

    /// <summary>Lease reads in every seed with check-quorum, instead of a third of them.</summary>
    public bool LeaseReadsEverywhere { get; init; }

    /// <summary>A broken host that sends a Ready's messages before syncing it (violates the Ready contract); for teeth tests.</summary>
    public bool HostSendsBeforeSync { get; init; }

    /// <summary>Production faults (off: a run draws exactly the random numbers it drew before they existed). EIO on a
    /// sync with this probability per sync (the host stops: fail-stop, and is restarted later over what its disk kept);
    /// torn crashes (a crash keeps a random prefix of the unsynced entries); process pauses; every clock skewed.</summary>
    public double SyncFailureProbability { get; init; }

    /// <summary>A crash keeps all, none, or a random prefix of the unsynced entries (a third each).</summary>
    public bool TornCrashes { get; init; }

    /// <summary>Chaos also pauses a process (leaders more often) for 50-800 ms: no ticks, inputs queue, time runs on.</summary>
    public bool Pauses { get; init; }

    /// <summary>Every node's clock rate is skewed: within the leases' drift bound in lease seeds, by up to ±15 % elsewhere.</summary>
    public bool SkewAllClocks { get; init; }

    /// <summary>A broken host (teeth): on EIO it carries on as if the sync succeeded (Fsyncgate: the writes are lost to the
    /// disk, the hard state stays unsynced) and sends what the batch acknowledges.</summary>
    public bool HostIgnoresSyncFailure { get; init; }

    /// <summary>A broken host (teeth): a read is judged by the ticks the node saw, not brought up to the clock first, so a
    /// leader resuming from a pause trusts a lease that ran out while it was paused.</summary>
    public bool ReadsSkipTickToNow { get; init; }

    /// <summary>Every production fault at once, as the fault-mix tests and the soak run them.</summary>
    public static SimulationOptions ProductionFaults => new()
    {
        SyncFailureProbability = 0.002,
        TornCrashes = true,
        Pauses = true,
        SkewAllClocks = true,
    };
}
