namespace AppendLog.Raft.Tests.Paper;

internal static class PaperOptions
{
    public static RaftOptions Create(
        bool preVote = true, bool checkQuorum = true, int batchBytes = 1024 * 1024, int inflight = 64, RaftTestingFaults faults = RaftTestingFaults.None,
        int snapshotChunkBytes = RaftOptions.DefaultSnapshotChunkBytes) => new()
    {
        SnapshotChunkBytes = snapshotChunkBytes,
        TestingFaults = faults,
        TickInterval = TimeSpan.FromMilliseconds(10),
        HeartbeatInterval = TimeSpan.FromMilliseconds(10),
        ElectionTimeoutMinimum = TimeSpan.FromMilliseconds(100),
        ElectionTimeoutMaximum = TimeSpan.FromMilliseconds(200),
        PreVote = preVote,
        CheckQuorum = checkQuorum,
        MaximumBatchBytes = batchBytes,
        MaximumInflightAppends = inflight,
    };
}
