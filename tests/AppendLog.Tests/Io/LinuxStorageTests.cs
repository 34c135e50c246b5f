using System.Runtime.Versioning;
using AppendLog.Diagnostics;
using AppendLog.Io;
using AppendLog.Io.Interop;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Io;

/// <summary>Behaviour of the real storage on this machine's disk, in each I/O mode.</summary>
[TestFixture(DirectIoMode.Preferred)]
[TestFixture(DirectIoMode.Required)]
[TestFixture(DirectIoMode.Disabled)]
[Platform("Linux")]
[SupportedOSPlatform("linux")]
public sealed class LinuxStorageTests(DirectIoMode mode)
{
    private const int Block = IoConstants.BlockSize;

    private TempDirectory _dir = null!;
    private LinuxStorage _storage = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory("appendlog-io");
        _storage = new LinuxStorage();
        if (mode == DirectIoMode.Required)
        {
            Assume.That(_storage.GetDirectIoSupport(_dir.Path).SupportsDirectIo,
                "the temp directory's file system does not support O_DIRECT");
        }
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public void Open_ReportsDirectModeExactlyWhenRequestedAndSupported()
    {
        bool supported = _storage.GetDirectIoSupport(_dir.Path).SupportsDirectIo;
        using IDirectFile file = _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, mode);

        bool expected = mode != DirectIoMode.Disabled && supported;
        Assert.That(file.IsDirect, Is.EqualTo(expected));
        Assert.That(file.Alignment, Is.EqualTo(Block));
    }

    [Test]
    public void WriteThenRead_AtAlignedPositions_RoundTrips()
    {
        using var written = new AlignedBuffer(3 * Block);
        using var read = new AlignedBuffer(3 * Block);
        new Random(Seeds.Get()).NextBytes(written.Span);
        using IDirectFile file = _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, mode);

        file.Write(written.Span, 2 * Block);
        file.SyncData();
        int count = file.Read(read.Span, 2 * Block);

        Assert.That(count, Is.EqualTo(3 * Block));
        Assert.That(read.Span.SequenceEqual(written.Span), Is.True);
        Assert.That(file.Length, Is.EqualTo(5 * Block));
    }

    [Test]
    public void ReadScatter_FillsTheBuffersInFileOrder_AndStopsAtTheEnd()
    {
        using var written = new AlignedBuffer(5 * Block);
        new Random(Seeds.Get()).NextBytes(written.Span);
        using IDirectFile file = _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, mode);
        file.Write(written.Span, 0);
        file.SyncData();
        using var pool = new LogBufferPool(16 * Block, 2 * Block);
        var chunks = new List<Buffers.AlignedChunk>();
        for (int i = 0; i < 3; i++)
        {
            Assert.That(pool.TryRentForRead(out var chunk), Is.True);
            chunks.Add(chunk);
        }

        // Three 8 KiB buffers from block 1: blocks 1-2, 3-4, and the end of file (nothing: 5 blocks exist).
        int read = file.ReadScatter(chunks.Select(c => c.Memory).ToArray(), Block);
        Assert.That(read, Is.EqualTo(4 * Block));
        Assert.That(chunks[0].Span.SequenceEqual(written.Span.Slice(Block, 2 * Block)), Is.True);
        Assert.That(chunks[1].Span.SequenceEqual(written.Span.Slice(3 * Block, 2 * Block)), Is.True);
        Assert.That(file.ReadScatter(chunks.Select(c => c.Memory).ToArray(), 0), Is.EqualTo(5 * Block), "a short last buffer");
        Assert.That(chunks[2].Span[..Block].SequenceEqual(written.Span.Slice(4 * Block, Block)), Is.True);
        foreach (var c in chunks)
        {
            pool.Return(c);
        }
    }

    [Test]
    public void Read_PastTheEnd_ReturnsOnlyWhatExists()
    {
        using var buffer = new AlignedBuffer(2 * Block);
        buffer.Span.Fill(0x5A);
        using IDirectFile file = _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, mode);
        file.Write(buffer.Span[..Block], 0);

        int count = file.Read(buffer.Span, 0);

        Assert.That(count, Is.EqualTo(Block));
    }

    [Test]
    public void Allocate_GrowsTheSizeAndReadsBackZeros()
    {
        using IDirectFile file = _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, mode);

        file.Allocate(0, 16 * Block);

        Assert.That(file.Length, Is.EqualTo(16 * Block));
        Assert.That(new FileInfo(_dir.File("a.log")).Length, Is.EqualTo(16 * Block));
        using var buffer = new AlignedBuffer(Block);
        buffer.Span.Fill(0xFF);
        Assert.That(file.Read(buffer.Span, 15 * Block), Is.EqualTo(Block));
        Assert.That(buffer.Span.IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
    }

    [Test]
    public void Allocate_BelowTheCurrentSize_DoesNotShrinkTheFile()
    {
        using IDirectFile file = _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, mode);
        file.Allocate(0, 8 * Block);

        file.Allocate(0, Block);

        Assert.That(file.Length, Is.EqualTo(8 * Block));
    }

    [Test]
    public void Truncate_SetsTheSize()
    {
        using IDirectFile file = _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, mode);
        file.Allocate(0, 8 * Block);

        file.Truncate(3 * Block);

        Assert.That(file.Length, Is.EqualTo(3 * Block));
    }

    [Test]
    public void DataWrittenAndSynced_IsVisibleThroughANewOpen()
    {
        using var buffer = new AlignedBuffer(Block);
        buffer.Span.Fill(0xA7);
        string path = _dir.File("a.log");
        using (IDirectFile file = _storage.Open(path, FileCreation.CreateNew, mode))
        {
            file.Write(buffer.Span, 0);
            file.SyncData();
        }

        _storage.SyncDirectory(_dir.Path);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(buffer.Span.ToArray()));
    }

    [Test]
    public void CreateNew_OnAnExistingFile_FailsWithEexist()
    {
        string path = _dir.File("a.log");
        _storage.Open(path, FileCreation.CreateNew, mode).Dispose();

        var ex = Assert.Throws<StorageIOException>(() => _storage.Open(path, FileCreation.CreateNew, mode));

        Assert.That(ex!.Errno, Is.EqualTo(Errno.EEXIST));
    }

    [Test]
    public void OpenExisting_OnAMissingFile_FailsWithFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(
            () => _storage.Open(_dir.File("missing.log"), FileCreation.OpenExisting, mode));
        Assert.That(File.Exists(_dir.File("missing.log")), Is.False);
    }

    [Test]
    public void OpenOrCreate_KeepsExistingContent()
    {
        string path = _dir.File("a.log");
        File.WriteAllBytes(path, new byte[Block]);

        using IDirectFile file = _storage.Open(path, FileCreation.OpenOrCreate, mode);

        Assert.That(file.Length, Is.EqualTo(Block));
    }
}

/// <summary>Behaviour of the real storage that does not depend on the I/O mode.</summary>
[TestFixture]
[Platform("Linux")]
[SupportedOSPlatform("linux")]
public sealed class LinuxStorageDirectoryTests
{
    private const int Block = IoConstants.BlockSize;

    private TempDirectory _dir = null!;
    private LinuxStorage _storage = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory("appendlog-io");
        _storage = new LinuxStorage();
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public void Probe_AgreesWithTheMountTable()
    {
        DirectIoSupport support = _storage.GetDirectIoSupport(_dir.Path);
        string? fsType = MountTable.FileSystemTypeOf(_dir.Path);
        TestContext.Out.WriteLine($"{_dir.Path}: {fsType}, {support}");

        Assert.That(support.IsTmpfs, Is.EqualTo(fsType == "tmpfs"));
        if (fsType is "ext4" or "xfs")
        {
            Assert.That(support.SupportsDirectIo, Is.True, "ext4 and xfs support O_DIRECT");
            Assert.That(support.Reason, Is.Null);
        }
    }

    [Test]
    public void Probe_OfTmpfs_ReportsTmpfs()
    {
        Assume.That(MountTable.FileSystemTypeOf("/dev/shm"), Is.EqualTo("tmpfs"), "no tmpfs at /dev/shm");

        DirectIoSupport support = _storage.GetDirectIoSupport("/dev/shm");

        Assert.That(support.IsTmpfs, Is.True);
    }

    [Test]
    public void Probe_OfAMissingDirectory_IsInconclusiveAndNotCached()
    {
        string later = Path.Combine(_dir.Path, "later");

        DirectIoSupport missing = _storage.GetDirectIoSupport(later);
        Directory.CreateDirectory(later);
        DirectIoSupport present = _storage.GetDirectIoSupport(later + "/");

        Assert.That(missing.IsConclusive, Is.False);
        Assert.That(missing.SupportsDirectIo, Is.False);
        Assert.That(missing.Reason, Does.Contain("ENOENT"));
        Assert.That(present.IsConclusive, Is.True);
        Assert.That(present, Is.EqualTo(_storage.GetDirectIoSupport(_dir.Path)), "same file system, same answer");
    }

    [Test]
    public void Probe_RunsOncePerFileSystem_NotPerDirectory()
    {
        var answers = new List<DirectIoSupport>();
        for (int i = 0; i < 20; i++)
        {
            answers.Add(_storage.GetDirectIoSupport(Directory.CreateDirectory(_dir.File($"log-{i}")).FullName));
        }

        Assert.That(_storage.ProbeCount, Is.EqualTo(1), "twenty log directories on one file system, one probe");
        Assert.That(answers.Distinct().Count(), Is.EqualTo(1));
        Assert.That(Directory.EnumerateFiles(_dir.Path, "*", SearchOption.AllDirectories), Is.Empty);

        Assume.That(MountTable.FileSystemTypeOf("/dev/shm"), Is.EqualTo("tmpfs"), "no tmpfs at /dev/shm");
        Assume.That(MountTable.FileSystemTypeOf(_dir.Path), Is.Not.EqualTo("tmpfs"));
        DirectIoSupport tmpfs = _storage.GetDirectIoSupport("/dev/shm");
        Assert.That(_storage.ProbeCount, Is.EqualTo(2), "another file system is probed on its own");
        Assert.That(tmpfs.IsTmpfs, Is.True);
    }

    [Test]
    public void Probe_LeavesNoFileBehind()
    {
        _ = _storage.GetDirectIoSupport(_dir.Path);

        Assert.That(Directory.EnumerateFileSystemEntries(_dir.Path), Is.Empty);
    }

    [Test]
    public void Open_Required_IsDirectWhenTheProbeSaysSupported()
    {
        Assume.That(_storage.GetDirectIoSupport(_dir.Path).SupportsDirectIo, "no O_DIRECT here");

        using IDirectFile file = _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, DirectIoMode.Required);

        Assert.That(file.IsDirect, Is.True);
    }

    [Test]
    public void UnalignedWrite_OnADirectFile_IsCaughtByTheSanitizerBeforeTheKernel()
    {
        Assume.That(_storage.GetDirectIoSupport(_dir.Path).SupportsDirectIo, "no O_DIRECT here");
        using IDirectFile file = _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, DirectIoMode.Required);
        using var buffer = new AlignedBuffer(2 * Block);

        Assert.That(file, Is.TypeOf<SanitizingFile>());
        Assert.Throws<AppendLogInvariantException>(() => file.Write(buffer.Span[..Block], 512));
        Assert.Throws<AppendLogInvariantException>(() => file.Write(buffer.Span[..100], 0));
        Assert.Throws<AppendLogInvariantException>(() => file.Write(buffer.Span.Slice(512, Block), 0));
        Assert.That(file.Length, Is.Zero);
    }

    [Test]
    public void UnalignedWrite_OnARawDirectFile_FailsWithEinvalFromTheKernel()
    {
        Assume.That(_storage.GetDirectIoSupport(_dir.Path).SupportsDirectIo, "no O_DIRECT here");
        using var file = (SanitizingFile)_storage.Open(_dir.File("a.log"), FileCreation.CreateNew, DirectIoMode.Required);
        using var buffer = new AlignedBuffer(2 * Block);

        // 100 bytes is below every device's logical block size, so the kernel must refuse it.
        var ex = Assert.Throws<StorageIOException>(() => file.Inner.Write(buffer.Span[..100], 0));

        Assert.That(ex!.Errno, Is.EqualTo(Errno.EINVAL));
        Assert.That(ex.Operation, Is.EqualTo("pwrite"));
    }

    [Test]
    public void DirectRead_OverAnUnalignedEndOfFile_ReturnsTheShortCount()
    {
        Assume.That(_storage.GetDirectIoSupport(_dir.Path).SupportsDirectIo, "no O_DIRECT here");
        string path = _dir.File("a.log");
        byte[] content = new byte[5000];
        new Random(Seeds.Get()).NextBytes(content);
        File.WriteAllBytes(path, content);
        using IDirectFile file = _storage.Open(path, FileCreation.OpenExisting, DirectIoMode.Required);
        using var buffer = new AlignedBuffer(2 * Block);

        // The kernel returns 5000 bytes; asking again at position 5000 would be a misaligned O_DIRECT read.
        int count = file.Read(buffer.Span, 0);

        Assert.That(count, Is.EqualTo(5000));
        Assert.That(buffer.Span[..5000].SequenceEqual(content), Is.True);
    }

    [Test]
    public void WriteToAFullDevice_SurfacesEnospcAsADiskFullStorageException()
    {
        // /dev/full answers every write with ENOSPC: the real kernel path through RandomAccess and our wrapping.
        Assume.That(File.Exists("/dev/full"), "no /dev/full");
        using IDirectFile file = _storage.Open("/dev/full", FileCreation.OpenExisting, DirectIoMode.Disabled);

        var ex = Assert.Throws<StorageIOException>(() => file.Write(new byte[Block], 0));

        Assert.That(ex!.Errno, Is.EqualTo(Errno.ENOSPC));
        Assert.That(ex.IsDiskFull, Is.True);
        Assert.That(ex.Operation, Is.EqualTo("pwrite"));
        Assert.That(ex.InnerException, Is.InstanceOf<IOException>());
    }

    [Test]
    public void LockDirectory_Twice_ThrowsLogLocked_AndReleaseAllowsRelocking()
    {
        var other = new LinuxStorage();
        IDisposable first = _storage.LockDirectory(_dir.Path, LinuxStorage.LockFileName);

        var ex = Assert.Throws<LogLockedException>(() => other.LockDirectory(_dir.Path, LinuxStorage.LockFileName));
        Assert.That(ex!.Directory, Is.EqualTo(_dir.Path));

        first.Dispose();
        using IDisposable again = other.LockDirectory(_dir.Path, LinuxStorage.LockFileName);
        Assert.That(File.Exists(Path.Combine(_dir.Path, LinuxStorage.LockFileName)), Is.True);
    }

    [Test]
    public void IsLockHeld_SeesAHolderInThisProcess_NeverCreatesTheFile_AndLeavesTheLockFree()
    {
        var other = new LinuxStorage();
        Assert.That(_storage.IsLockHeld(_dir.Path, LinuxStorage.ManagerLockFileName), Is.False, "no file: nobody holds it");
        Assert.That(File.Exists(Path.Combine(_dir.Path, LinuxStorage.ManagerLockFileName)), Is.False, "the check creates nothing");
        IDisposable held = _storage.LockDirectory(_dir.Path, LinuxStorage.ManagerLockFileName);
        Assert.That(other.IsLockHeld(_dir.Path, LinuxStorage.ManagerLockFileName), Is.True);
        Assert.That(other.IsLockHeld(_dir.Path, LinuxStorage.LockFileName), Is.False, "another lock file of the same directory");
        held.Dispose();
        Assert.That(other.IsLockHeld(_dir.Path, LinuxStorage.ManagerLockFileName), Is.False);
        using IDisposable again = other.LockDirectory(_dir.Path, LinuxStorage.ManagerLockFileName);
        Assert.That(again, Is.Not.Null, "a check leaves no lock behind");
    }

    [Test]
    public void LockDirectory_IsSeenByAnotherProcess()
    {
        Assume.That(File.Exists("/usr/bin/flock"), "util-linux flock(1) is not installed");
        using IDisposable held = _storage.LockDirectory(_dir.Path, LinuxStorage.LockFileName);

        // flock(1) -n exits with 1 when the lock is held elsewhere, 0 when it got it.
        int whileHeld = RunFlock(Path.Combine(_dir.Path, LinuxStorage.LockFileName));
        held.Dispose();
        int afterRelease = RunFlock(Path.Combine(_dir.Path, LinuxStorage.LockFileName));

        Assert.That(whileHeld, Is.EqualTo(1));
        Assert.That(afterRelease, Is.Zero);
    }

    private static int RunFlock(string lockPath)
    {
        using var process = System.Diagnostics.Process.Start("/usr/bin/flock", ["-n", "-E", "1", lockPath, "true"]);
        process.WaitForExit();
        return process.ExitCode;
    }

    [Test]
    public void WriteFileAtomic_ReplacesTheContentAndLeavesNoTempFile()
    {
        string path = _dir.File("meta");
        _storage.WriteFileAtomic(path, "first"u8);

        _storage.WriteFileAtomic(path, "second, longer"u8);

        Assert.That(_storage.ReadSmallFile(path), Is.EqualTo("second, longer"u8.ToArray()));
        Assert.That(_storage.ListFiles(_dir.Path), Is.EqualTo(new[] { "meta" }));
    }

    [Test]
    public void ReadSmallFile_OfAMissingFile_ReturnsNull()
    {
        Assert.That(_storage.ReadSmallFile(_dir.File("missing")), Is.Null);
        Assert.That(_storage.ReadSmallFile(Path.Combine(_dir.Path, "no-dir", "missing")), Is.Null);
    }

    [Test]
    public void ReadSmallFile_RefusesFilesOverTheLimit()
    {
        string path = _dir.File("big");
        File.WriteAllBytes(path, new byte[LinuxStorage.SmallFileSizeMax + 1]);

        var ex = Assert.Throws<StorageIOException>(() => _storage.ReadSmallFile(path));

        Assert.That(ex!.Errno, Is.EqualTo(Errno.EFBIG));
    }

    [Test]
    public void RenameAndDelete_ChangeTheListing()
    {
        _storage.Open(_dir.File("b.log"), FileCreation.CreateNew, DirectIoMode.Disabled).Dispose();
        _storage.Open(_dir.File("a.log"), FileCreation.CreateNew, DirectIoMode.Disabled).Dispose();
        Directory.CreateDirectory(Path.Combine(_dir.Path, "sub"));

        _storage.RenameFile(_dir.File("b.log"), _dir.File("c.log"));
        _storage.DeleteFile(_dir.File("a.log"));
        _storage.DeleteFile(_dir.File("a.log")); // missing is not an error
        _storage.SyncDirectory(_dir.Path);

        Assert.That(_storage.ListFiles(_dir.Path), Is.EqualTo(new[] { "c.log" }));
        Assert.That(_storage.FileExists(_dir.File("c.log")), Is.True);
        Assert.That(_storage.FileExists(_dir.File("b.log")), Is.False);
    }

    [Test]
    public void CreateDirectory_CreatesParents()
    {
        string nested = Path.Combine(_dir.Path, "x", "y", "z");

        _storage.CreateDirectory(nested);
        _storage.CreateDirectory(nested); // existing is fine

        Assert.That(Directory.Exists(nested), Is.True);
    }

    [Test]
    public void SyncDirectory_OfAMissingDirectory_FailsWithFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => _storage.SyncDirectory(Path.Combine(_dir.Path, "missing")));
    }
}
