using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Paper;

public sealed class MemoryRaftLogTests
{
    private static MemoryRaftLog NewLog() => new(RaftSnapshot.Bootstrap(new ClusterConfig([new RaftNodeId(1)], [])));

    private static RaftEntry E(long term, long index) => new(term, index, RaftEntryKind.Normal, new byte[] { (byte)term, (byte)index });

    private static List<long> Terms(MemoryRaftLog log) =>
        [.. Enumerable.Range((int)log.FirstIndex, (int)(log.LastIndex - log.FirstIndex + 1)).Select(i => log.EntryAt(i).Term)];

    [Test]
    public void ACrash_LosesEntriesAppendedSinceTheLastSync()
    {
        var log = NewLog();
        log.Append([E(1, 1), E(1, 2)]);
        log.Sync();
        log.Append([E(1, 3)]);
        Assert.That(log.DurableIndex, Is.EqualTo(2));
        log.Crash();
        Assert.That(Terms(log), Is.EqualTo(new long[] { 1, 1 }));
    }

    [Test]
    public void ACrash_BringsBackDurableEntriesThatAnUnsyncedTruncationRemoved()
    {
        var log = NewLog();
        log.Append([E(1, 1), E(1, 2), E(1, 3)]);
        log.Sync();
        log.Append([E(2, 2)]);
        Assert.That(log.DurableIndex, Is.EqualTo(1));
        log.Crash();
        Assert.That(Terms(log), Is.EqualTo(new long[] { 1, 1, 1 }));
    }

    [Test]
    public void RandomOperations_ACrashAlwaysRestoresExactlyTheLastSyncedLog()
    {
        for (var seed = 1; seed <= 200; seed++)
        {
            var random = new Random(seed);
            var log = NewLog();
            var synced = new List<long>();
            for (var op = 0; op < 60; op++)
            {
                var roll = random.Next(10);
                if (roll < 6)
                {
                    var first = random.Next((int)log.FirstIndex, (int)log.LastIndex + 2);
                    var term = random.Next(1, 5);
                    log.Append([.. Enumerable.Range(first, random.Next(1, 4)).Select(i => E(term, i))]);
                }
                else if (roll < 8)
                {
                    log.Sync();
                    synced = Terms(log);
                }
                else
                {
                    log.Crash();
                    Assert.That(Terms(log), Is.EqualTo(synced), $"seed {seed}");
                    Assert.That(log.DurableIndex, Is.EqualTo(log.LastIndex));
                }
            }
        }
    }

    [Test]
    public void Compaction_KeepsTheSnapshotTermForTheBoundary_AndDropsThePrefix()
    {
        var log = NewLog();
        log.Append([E(1, 1), E(2, 2), E(2, 3)]);
        log.Sync();
        log.Compact(new RaftSnapshot(new SnapshotMetadata(2, 2, log.Snapshot.Metadata.Config), new byte[16]));
        Assert.That(log.FirstIndex, Is.EqualTo(3));
        Assert.That(log.TryGetTerm(2, out var t) ? t : -1, Is.EqualTo(2));
        Assert.That(log.TryGetTerm(1, out _), Is.False);
    }
}
