using AppendLog.Io;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Io;

/// <summary>
/// The portable fallback <see cref="BufferedFile"/> runs on every OS, so it is tested here directly even though
/// <see cref="LinuxStorage"/> does not choose it on Linux x86_64/arm64.
/// </summary>
[TestFixture]
public sealed class BufferedFileTests
{
    private const int Block = IoConstants.BlockSize;

    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-buffered");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public void WriteSyncRead_RoundTripsAtAnyPosition()
    {
        byte[] data = new byte[3000];
        new Random(Seeds.Get()).NextBytes(data);
        using var file = new BufferedFile(_dir.File("a.log"), FileCreation.CreateNew);

        file.Write(data, 123);
        file.SyncData();
        byte[] read = new byte[4000];
        int count = file.Read(read, 123);

        Assert.That(file.IsDirect, Is.False);
        Assert.That(count, Is.EqualTo(3000));
        Assert.That(read.AsSpan(0, 3000).SequenceEqual(data), Is.True);
        Assert.That(file.Length, Is.EqualTo(3123));
    }

    [Test]
    public void AllocateGrows_AndTruncateShrinks()
    {
        using var file = new BufferedFile(_dir.File("a.log"), FileCreation.CreateNew);

        file.Allocate(0, 4 * Block);
        Assert.That(file.Length, Is.EqualTo(4 * Block));
        file.Allocate(0, Block);
        Assert.That(file.Length, Is.EqualTo(4 * Block));
        file.Truncate(Block);
        Assert.That(file.Length, Is.EqualTo(Block));
    }

    [Test]
    public void CreationModes_FailLikeTheLinuxPath()
    {
        string path = _dir.File("a.log");
        Assert.Throws<FileNotFoundException>(() => _ = new BufferedFile(path, FileCreation.OpenExisting));
        new BufferedFile(path, FileCreation.CreateNew).Dispose();
        Assert.Throws<IOException>(() => _ = new BufferedFile(path, FileCreation.CreateNew));
        using var reopened = new BufferedFile(path, FileCreation.OpenOrCreate);
        Assert.That(reopened.Length, Is.Zero);
    }
}
