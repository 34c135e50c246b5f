using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Storage;

/// <summary>The SegmentedLog adapter: entries survive reopen with their terms; conflicting suffixes are cut durably.</summary>
public sealed class SegmentedRaftLogTests
{
    /// <summary>Reads entries [from, to), fetching payloads back from the log as the host would (a reopened log keeps none).</summary>
    internal static async Task<List<RaftEntry>> ReadAllAsync(SegmentedRaftLog raft, long from, long to)
    {
        var entries = new List<RaftEntry>();
        while (from + entries.Count < to)
        {
            var before = entries.Count;
            raft.Read(from + entries.Count, to, long.MaxValue, entries);
            if (raft.NeedsFetch)
            {
                await raft.FetchAsync(CancellationToken.None);
            }
            else
            {
                Assert.That(entries.Count, Is.GreaterThan(before), "a read without a fetch pending makes progress");
            }
        }

        return entries;
    }

    private static readonly RaftSnapshot Bootstrap = RaftSnapshot.Bootstrap(new ClusterConfig([new RaftNodeId(1)], []));

    private static async Task<(SegmentedLog Log, SegmentedRaftLog Raft)> OpenAsync(string directory)
    {
        var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = Path.Combine(directory, "log") });
        return (log, await SegmentedRaftLog.OpenAsync(log, Bootstrap, directory, TimeProvider.System, CancellationToken.None));
    }

    private static RaftEntry App(long term, long index, params string[] payloads) =>
        new(term, index, RaftEntryKind.Normal,
            EntryBatch.EncodeApplication(payloads.Select(p => (ReadOnlyMemory<byte>)System.Text.Encoding.UTF8.GetBytes(p)).ToList(), term, 1000));

    private static List<string> Values(RaftEntry entry) =>
        EntryBatch.ReadValues(entry.Data).Select(v => System.Text.Encoding.UTF8.GetString(v.Span)).ToList();

    [Test]
    public async Task AppendedEntries_SurviveReopen_WithTheirTermsKindsAndOffsets()
    {
        using var dir = new TempDirectory();
        var (log, raft) = await OpenAsync(dir.Path);
        raft.Append([
            new RaftEntry(1, 1, RaftEntryKind.Normal, ReadOnlyMemory<byte>.Empty),
            App(1, 2, "a", "b", "c"),
            new RaftEntry(2, 3, RaftEntryKind.ConfigChange, new ConfigChange(ConfigChangeKind.AddLearner, new RaftNodeId(7)).Encode()),
            App(2, 4, "d"),
        ]);
        Assert.That(raft.DurableIndex, Is.EqualTo(0), "nothing is durable before the sync");
        await raft.SyncAsync(CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(raft.DurableIndex, Is.EqualTo(4));
            Assert.That(raft.BaseOffsetOf(2), Is.EqualTo(1), "the no-op takes offset 0");
            Assert.That(raft.BaseOffsetOf(3), Is.EqualTo(4));
            Assert.That(raft.BaseOffsetOf(4), Is.EqualTo(5));
            Assert.That(log.DurableEndOffset, Is.EqualTo(6));
        });
        await log.DisposeAsync();

        (log, raft) = await OpenAsync(dir.Path);
        await using var scope = log;
        var entries = await ReadAllAsync(raft, 1, 5);
        Assert.Multiple(() =>
        {
            Assert.That(raft.LastIndex, Is.EqualTo(4));
            Assert.That(raft.DurableIndex, Is.EqualTo(4));
            Assert.That(entries.Select(e => e.Term), Is.EqualTo(new long[] { 1, 1, 2, 2 }));
            Assert.That(entries[0].Kind, Is.EqualTo(RaftEntryKind.Normal));
            Assert.That(entries[0].Data.IsEmpty, Is.True, "the no-op comes back empty");
            Assert.That(Values(entries[1]), Is.EqualTo(new[] { "a", "b", "c" }));
            Assert.That(entries[2].Kind, Is.EqualTo(RaftEntryKind.ConfigChange));
            Assert.That(ConfigChange.Decode(entries[2].Data.Span), Is.EqualTo(new ConfigChange(ConfigChangeKind.AddLearner, new RaftNodeId(7))));
            Assert.That(Values(entries[3]), Is.EqualTo(new[] { "d" }));
            Assert.That(raft.BaseOffsetOf(4), Is.EqualTo(5));
        });
    }

    [Test]
    public async Task AConflictingSuffix_IsTruncatedDurably_AndReplacedAtTheSameOffsets()
    {
        using var dir = new TempDirectory();
        var (log, raft) = await OpenAsync(dir.Path);
        raft.Append([App(1, 1, "x"), App(1, 2, "old-1", "old-2"), App(1, 3, "old-3")]);
        await raft.SyncAsync(CancellationToken.None);

        // A new leader of term 2 overwrites from index 2.
        raft.Append([App(2, 2, "new-1"), App(2, 3, "new-2", "new-3", "new-4")]);
        Assert.That(raft.DurableIndex, Is.EqualTo(1), "until the sync, a crash could bring the old suffix back");
        await raft.SyncAsync(CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(raft.BaseOffsetOf(2), Is.EqualTo(1));
            Assert.That(raft.BaseOffsetOf(3), Is.EqualTo(2));
            Assert.That(log.DurableEndOffset, Is.EqualTo(5));
        });
        await log.DisposeAsync();

        (log, raft) = await OpenAsync(dir.Path);
        await using var scope = log;
        var entries = await ReadAllAsync(raft, 1, raft.LastIndex + 1);
        Assert.That(entries.Select(e => (e.Term, string.Join(",", Values(e)))), Is.EqualTo(new[]
        {
            (1L, "x"), (2L, "new-1"), (2L, "new-2,new-3,new-4"),
        }));
    }

    [Test]
    public async Task ATruncationToAShorterLog_EndsTheLogAtTheCut()
    {
        using var dir = new TempDirectory();
        var (log, raft) = await OpenAsync(dir.Path);
        await using var scope = log;
        raft.Append([App(1, 1, "a"), App(1, 2, "b"), App(1, 3, "c")]);
        await raft.SyncAsync(CancellationToken.None);
        raft.Append([App(3, 2, "z")]);
        await raft.SyncAsync(CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(raft.LastIndex, Is.EqualTo(2));
            Assert.That(log.EndOffset, Is.EqualTo(2));
            Assert.That(raft.TryGetTerm(2, out var term) && term == 3, Is.True);
            Assert.That(raft.TryGetTerm(3, out _), Is.False);
        });
    }

    [Test]
    public async Task ApplicationBatches_AreStoredVerbatim()
    {
        using var dir = new TempDirectory();
        var (log, raft) = await OpenAsync(dir.Path);
        await using var scope = log;
        var entry = App(5, 1, "payload-1", "payload-2");
        raft.Append([entry]);
        await raft.SyncAsync(CancellationToken.None);
        await foreach (var batch in log.ReadBatchesAsync(0))
        {
            Assert.Multiple(() =>
            {
                Assert.That(batch.LeaderEpoch, Is.EqualTo(5));
                Assert.That(batch.Bytes.Span[8..].SequenceEqual(entry.Data.Span[8..]), Is.True, "every byte after the base offset is the leader's");
            });
        }

        var records = new List<LogRecord>();
        await foreach (var record in log.ReadAsync(0))
        {
            records.Add(record);
        }

        Assert.That(records.Select(r => System.Text.Encoding.UTF8.GetString(r.Value!)), Is.EqualTo(new[] { "payload-1", "payload-2" }),
            "the core decodes the Raft package's batches as ordinary records");
    }

    [Test]
    public async Task ACompaction_IsKeptBesideTheLog_AndReopenStartsAfterIt()
    {
        using var dir = new TempDirectory();
        var (log, raft) = await OpenAsync(dir.Path);
        raft.Append([App(1, 1, "a", "b"), App(1, 2, "c"), App(2, 3, "d", "e", "f"), App(2, 4, "g")]);
        await raft.SyncAsync(CancellationToken.None);
        var config = new ClusterConfig(
            [new RaftNodeId(1), new RaftNodeId(2)], [new RaftNodeId(3)], [new(new RaftNodeId(3), "[::1]:7003"), new(new RaftNodeId(1), "host-1:7001")]);
        raft.Compact(new RaftSnapshot(new SnapshotMetadata(2, 1, config), SnapshotPayload.Create(3, [42, 43])));
        Assert.Multiple(() =>
        {
            Assert.That(raft.FirstIndex, Is.EqualTo(3));
            Assert.That(raft.TryGetTerm(2, out var t) && t == 1, Is.True, "the snapshot's own index keeps its term");
            Assert.That(raft.TryGetTerm(1, out _), Is.False);
            Assert.That(raft.BaseOffsetOf(3), Is.EqualTo(3));
        });
        await log.DisposeAsync();

        (log, raft) = await OpenAsync(dir.Path);
        await using var scope = log;
        Assert.Multiple(() =>
        {
            Assert.That(raft.Snapshot.Index, Is.EqualTo(2));
            Assert.That(raft.Snapshot.Term, Is.EqualTo(1));
            Assert.That(raft.Snapshot.Metadata.Config.Voters, Is.EqualTo(config.Voters));
            Assert.That(raft.Snapshot.Metadata.Config.Learners, Is.EqualTo(config.Learners));
            Assert.That(raft.Snapshot.Metadata.Config.Addresses, Is.EqualTo(config.Addresses), "the members' addresses are kept with the snapshot");
            Assert.That(SnapshotPayload.Image(raft.Snapshot.Data.ToArray()).ToArray(), Is.EqualTo(new byte[] { 42, 43 }));
            Assert.That(raft.FirstIndex, Is.EqualTo(3));
            Assert.That(raft.LastIndex, Is.EqualTo(4));
            Assert.That(raft.BaseOffsetOf(3), Is.EqualTo(3));
            Assert.That(raft.BaseOffsetOf(4), Is.EqualTo(6));
        });
        raft.Append([App(3, 5, "h")]);
        await raft.SyncAsync(CancellationToken.None);
        Assert.That(raft.BaseOffsetOf(5), Is.EqualTo(7));
        Assert.Throws<InvalidDataException>(
            () => raft.InstallSnapshot(new RaftSnapshot(new SnapshotMetadata(9, 3, config), new byte[] { 42, 43 })),
            "an installed snapshot must name the offset after it");
    }
}
