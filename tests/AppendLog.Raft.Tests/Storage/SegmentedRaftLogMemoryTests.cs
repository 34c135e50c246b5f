using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Storage;

/// <summary>The adapter keeps only recent payloads in memory and reads older ones back from the SegmentedLog on demand.</summary>
public sealed class SegmentedRaftLogMemoryTests
{
    private static readonly RaftSnapshot Bootstrap = RaftSnapshot.Bootstrap(new ClusterConfig([new RaftNodeId(1)], []));

    private static RaftEntry App(long term, long index, int payloadBytes) =>
        new(term, index, RaftEntryKind.Normal, EntryBatch.EncodeApplication([Payload(index, payloadBytes)], term, 1000));

    private static byte[] Payload(long index, int bytes)
    {
        var payload = new byte[bytes];
        new Random((int)index).NextBytes(payload);
        return payload;
    }

    [Test]
    public async Task OldPayloads_AreDroppedOnceDurable_AndReadBackOnDemand_WithinTheBudget()
    {
        using var dir = new TempDirectory();
        const int payloadBytes = 1000;
        const long budget = 20 * 1024;
        await using var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(dir.Path, "log") });
        var raft = await SegmentedRaftLog.OpenAsync(log, Bootstrap, dir.Path, TimeProvider.System, CancellationToken.None, budget);
        var config = new RaftEntry(1, 1, RaftEntryKind.ConfigChange, new ConfigChange(ConfigChangeKind.AddLearner, new RaftNodeId(9)).Encode());
        raft.Append([config, .. Enumerable.Range(2, 198).Select(i => App(1, i, payloadBytes))]);
        Assert.That(raft.ResidentBytes, Is.GreaterThan(150 * payloadBytes), "nothing is dropped before it is durable");
        await raft.SyncAsync(CancellationToken.None);
        Assert.That(raft.ResidentBytes, Is.LessThanOrEqualTo(budget), "durable payloads beyond the budget are dropped");

        // Terms and membership changes stay answerable without any read.
        Assert.That(raft.TryGetTerm(2, out var term) && term == 1, Is.True);
        var configs = new List<RaftEntry>();
        raft.ReadConfigChanges(configs);
        Assert.That(configs.Select(c => c.Index), Is.EqualTo(new long[] { 1 }));

        // A read of old entries stops at the first dropped payload and asks for a fetch.
        var entries = new List<RaftEntry>();
        raft.Read(1, 200, long.MaxValue, entries);
        Assert.That(entries.Select(e => e.Index), Is.EqualTo(new long[] { 1 }), "the config entry is resident, entry 2 is not");
        Assert.That(raft.NeedsFetch, Is.True);
        await raft.FetchAsync(CancellationToken.None);
        Assert.That(raft.NeedsFetch, Is.False);

        // Read the whole log by fetching as often as asked; every payload comes back byte for byte.
        var next = 2L;
        var fetches = 0;
        while (next <= 199)
        {
            entries.Clear();
            raft.Read(next, 200, long.MaxValue, entries);
            foreach (var entry in entries)
            {
                Assert.That(EntryBatch.ReadValues(entry.Data)[0].ToArray(), Is.EqualTo(Payload(entry.Index, payloadBytes)), $"entry {entry.Index}");
            }

            next += entries.Count;
            if (raft.NeedsFetch)
            {
                await raft.FetchAsync(CancellationToken.None);
                fetches++;
            }

            Assert.That(raft.ResidentBytes, Is.LessThanOrEqualTo(budget + (budget / 4) + payloadBytes + 100), "fetches stay within the budget plus one run");
        }

        Assert.That(fetches, Is.GreaterThan(5), "a 20 KiB budget cannot hold 200 KB: the reads went to disk");
        entries.Clear();
        raft.Read(2, 3, long.MaxValue, entries);
        Assert.That(entries, Is.Empty, "what an earlier fetch loaded is dropped at the next fetch: read-back buffers die young");
        await raft.FetchAsync(CancellationToken.None);

        // Reopen: every entry's metadata is loaded, no payload.
        await log.DisposeAsync();
        await using var reopened = await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(dir.Path, "log") });
        var again = await SegmentedRaftLog.OpenAsync(reopened, Bootstrap, dir.Path, TimeProvider.System, CancellationToken.None, budget);
        Assert.Multiple(() =>
        {
            Assert.That(again.LastIndex, Is.EqualTo(199));
            Assert.That(again.ResidentBytes, Is.Zero, "the scan at open keeps no payload (they would only age into gen2)");
            Assert.That(again.BaseOffsetOf(199), Is.EqualTo(198));
        });
        entries.Clear();
        again.Read(199, 200, long.MaxValue, entries);
        Assert.That(entries, Is.Empty);
        Assert.That(again.NeedsFetch, Is.True, "a read of a payload not in memory asks for a fetch");
        await again.FetchAsync(CancellationToken.None);
        again.Read(199, 200, long.MaxValue, entries);
        Assert.That(entries, Has.Count.EqualTo(1), "and finds it after the fetch");
        Assert.That(again.ResidentBytes, Is.LessThanOrEqualTo(budget));
    }
}

/// <summary>Installing the leader's snapshot resets the log to the snapshot's end offset, all or nothing.</summary>
public sealed class SegmentedRaftLogInstallTests
{
    private static readonly ClusterConfig Config = new([new RaftNodeId(1), new RaftNodeId(2)], []);

    private static RaftEntry App(long term, long index) =>
        new(term, index, RaftEntryKind.Normal, EntryBatch.EncodeApplication([new byte[] { (byte)index, 1, 2 }], term, 1000));

    private static async Task<(SegmentedLog Log, SegmentedRaftLog Raft)> OpenAsync(string directory)
    {
        var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(directory, "log") });
        return (log, await SegmentedRaftLog.OpenAsync(log, RaftSnapshot.Bootstrap(Config), directory, TimeProvider.System, CancellationToken.None));
    }

    [Test]
    public async Task AnInstalledSnapshot_RestartsTheLogAtItsEndOffset_AndLaterEntriesLandThere()
    {
        using var dir = new TempDirectory();
        var (log, raft) = await OpenAsync(dir.Path);
        raft.Append([.. Enumerable.Range(1, 10).Select(i => App(1, i))]);
        await raft.SyncAsync(CancellationToken.None);

        var snapshot = new RaftSnapshot(new SnapshotMetadata(500, 3, Config), SnapshotPayload.Create(7000, [9, 9]));
        raft.InstallSnapshot(snapshot);
        raft.Append([App(3, 501), App(3, 502)]);
        await raft.SyncAsync(CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(log.StartOffset, Is.EqualTo(7000));
            Assert.That(raft.BaseOffsetOf(501), Is.EqualTo(7000), "the first entry after the snapshot lands at the leader's offset");
            Assert.That(raft.BaseOffsetOf(502), Is.EqualTo(7001));
            Assert.That(raft.DurableIndex, Is.EqualTo(502));
            Assert.That(SnapshotFile.Read(dir.Path)!.Value.Flags, Is.EqualTo(SnapshotFile.Flags.None), "the reset finished, the intent is cleared");
        });
        await log.DisposeAsync();

        (log, raft) = await OpenAsync(dir.Path);
        await using var scope = log;
        Assert.Multiple(() =>
        {
            Assert.That(raft.Snapshot.Index, Is.EqualTo(500));
            Assert.That(raft.LastIndex, Is.EqualTo(502));
            Assert.That(raft.BaseOffsetOf(501), Is.EqualTo(7000));
        });
    }

    [Test]
    public async Task ACrashBeforeTheResetFinished_IsCompletedAtOpen_FromTheSnapshotsRecordedIntent()
    {
        using var dir = new TempDirectory();
        var (log, raft) = await OpenAsync(dir.Path);
        raft.Append([.. Enumerable.Range(1, 10).Select(i => App(1, i))]);
        await raft.SyncAsync(CancellationToken.None);
        await log.DisposeAsync();

        // The state a crash right after the intent was made durable leaves: the old log and a flagged snapshot.
        var snapshot = new RaftSnapshot(new SnapshotMetadata(500, 3, Config), SnapshotPayload.Create(7000, [9, 9]));
        SnapshotFile.Write(dir.Path, snapshot, 7000, SnapshotFile.Flags.ResetPending);

        (log, raft) = await OpenAsync(dir.Path);
        await using var scope = log;
        Assert.Multiple(() =>
        {
            Assert.That(log.StartOffset, Is.EqualTo(7000), "the reset was repeated at open");
            Assert.That(log.EndOffset, Is.EqualTo(7000));
            Assert.That(raft.Snapshot.Index, Is.EqualTo(500));
            Assert.That(raft.LastIndex, Is.EqualTo(500), "none of the old entries survive");
            Assert.That(SnapshotFile.Read(dir.Path)!.Value.Flags, Is.EqualTo(SnapshotFile.Flags.None));
        });
    }
}
