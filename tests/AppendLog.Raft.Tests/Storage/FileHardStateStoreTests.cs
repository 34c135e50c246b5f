using AppendLog.Raft.Core;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Storage;

public sealed class FileHardStateStoreTests
{
    [Test]
    public async Task TermAndVote_SurviveReopen()
    {
        using var dir = new TempDirectory();
        var store = new FileHardStateStore(dir.Path);
        Assert.That(store.Load(), Is.EqualTo(default(HardState)));
        store.Save(new HardState(7, new RaftNodeId(3), 42));
        await store.SyncAsync(CancellationToken.None);
        Assert.That(new FileHardStateStore(dir.Path).Load(), Is.EqualTo(new HardState(7, new RaftNodeId(3), 42)));
        Assert.That(File.Exists(Path.Combine(dir.Path, FileHardStateStore.FileName + ".tmp")), Is.False);
    }

    [Test]
    public async Task AVoteOnlyChangeInTheSameTerm_IsWritten_AndSurvivesReopen()
    {
        // Reference: Raft paper Figure 2 (votedFor is persistent state). A node's term often moves without a vote (it
        // hears of a newer term); the vote it casts later in that term changes the vote alone.
        using var dir = new TempDirectory();
        var store = new FileHardStateStore(dir.Path);
        store.Save(new HardState(5, RaftNodeId.None, 3));
        await store.SyncAsync(CancellationToken.None);
        store.Save(new HardState(5, new RaftNodeId(2), 3));
        await store.SyncAsync(CancellationToken.None);
        Assert.That(store.WriteCount, Is.EqualTo(2), "the vote-only change was written");
        Assert.That(new FileHardStateStore(dir.Path).Load(), Is.EqualTo(new HardState(5, new RaftNodeId(2), 3)));
    }

    [Test]
    public async Task ACommitOnlyChange_IsNotWritten_ButTravelsWithTheNextTermChange()
    {
        using var dir = new TempDirectory();
        var store = new FileHardStateStore(dir.Path);
        store.Save(new HardState(1, new RaftNodeId(1), 0));
        await store.SyncAsync(CancellationToken.None);
        store.Save(new HardState(1, new RaftNodeId(1), 10));
        await store.SyncAsync(CancellationToken.None);
        Assert.That(store.WriteCount, Is.EqualTo(1));
        Assert.That(new FileHardStateStore(dir.Path).Load().Commit, Is.EqualTo(0));
        store.Save(new HardState(2, RaftNodeId.None, 11));
        await store.SyncAsync(CancellationToken.None);
        Assert.That(new FileHardStateStore(dir.Path).Load(), Is.EqualTo(new HardState(2, RaftNodeId.None, 11)));
    }

    [Test]
    public async Task ADamagedFile_IsReported_NeverReadAsTermZero()
    {
        using var dir = new TempDirectory();
        var store = new FileHardStateStore(dir.Path);
        store.Save(new HardState(9, new RaftNodeId(2), 5));
        await store.SyncAsync(CancellationToken.None);
        var path = Path.Combine(dir.Path, FileHardStateStore.FileName);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[10] ^= 0x10;
        await File.WriteAllBytesAsync(path, bytes);
        Assert.Throws<InvalidDataException>(() => _ = new FileHardStateStore(dir.Path));
    }
}
