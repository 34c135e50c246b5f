using AppendLog.Diagnostics;
using AppendLog.Io;
using AppendLog.Io.Interop;
using AppendLog.Testing;
using NUnit.Framework;
using PropertyAttribute = FsCheck.NUnit.PropertyAttribute;

namespace AppendLog.Tests.Io;

/// <summary>The simulator keeps the promises its fault model makes: each row of the table has a test here.</summary>
[TestFixture]
public sealed class SimulatedStorageTests
{
    private const int Block = IoConstants.BlockSize;
    private const int Sector = IoConstants.SectorSize;
    private const string Dir = "/sim/log";
    private const string FilePath = "/sim/log/0.log";
    private const int CrashSeedsCount = 64;

    [Test]
    public void SyncedData_SurvivesEveryCrash()
    {
        int seed = Seeds.Get();
        for (int i = 0; i < CrashSeedsCount; i++)
        {
            var storage = NewStorage(seed);
            using var data = Filled(4 * Block, 0xC3);
            using (IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Required))
            {
                file.Write(data.Span, 0);
                file.SyncData();
            }

            storage.SyncDirectory(Dir);
            SimulatedStorage after = storage.Crash(Seeds.Derive(seed, i));

            Assert.That(after.GetVolatileImage(FilePath), Is.EqualTo(data.Span.ToArray()), $"crash seed index {i}");
        }
    }

    /// <summary>
    /// Property: after a crash, every sector of a file that was written but not synced holds either its durable
    /// (old) content or its newest (volatile) content, never a mix and never anything else.
    /// </summary>
#pragma warning disable NUnit1027 // FsCheck generates the arguments; NUnit.Analyzers does not know that
    [Property(MaxTest = 200)]
    public bool UnsyncedSectors_AfterACrash_AreEachOldOrNew(int crashSeed, (byte Sector, byte Count, byte Fill)[] writes)
#pragma warning restore NUnit1027
    {
        var storage = NewStorage(crashSeed);
        using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
        file.Write(Enumerable.Repeat((byte)0x11, 16 * Sector).ToArray(), 0);
        file.SyncData();
        storage.SyncDirectory(Dir);
        foreach ((byte sector, byte count, byte fill) in writes ?? [])
        {
            // Sector-granular writes at sectors [0, 32), 1..4 sectors each: some inside the synced part, some past it.
            byte[] buffer = Enumerable.Repeat(fill, ((count % 4) + 1) * Sector).ToArray();
            file.Write(buffer, (sector % 32) * (long)Sector);
        }

        byte[] old = storage.GetDurableImage(FilePath);
        byte[] @new = storage.GetVolatileImage(FilePath);
        byte[] after = storage.Crash(crashSeed).GetVolatileImage(FilePath);

        bool lengthOk = after.Length == old.Length || after.Length == @new.Length;
        return lengthOk && Enumerable.Range(0, (after.Length + Sector - 1) / Sector).All(s =>
            SectorEquals(after, old, s) || SectorEquals(after, @new, s));
    }

    [Test]
    public void UnsyncedWrites_AcrossSeeds_AreSometimesKeptSometimesDroppedSometimesTorn()
    {
        // The property above holds trivially if the model always kept or always dropped; check that it does not.
        int seed = Seeds.Get();
        int kept = 0, dropped = 0, torn = 0;
        for (int i = 0; i < CrashSeedsCount; i++)
        {
            var storage = NewStorage(seed);
            using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
            file.Allocate(0, 8 * Sector);
            file.SyncData();
            storage.SyncDirectory(Dir);
            file.Write(Enumerable.Repeat((byte)0xEE, 8 * Sector).ToArray(), 0);

            byte[] after = storage.Crash(Seeds.Derive(seed, i)).GetVolatileImage(FilePath);
            int newSectors = Enumerable.Range(0, 8).Count(s => after[s * Sector] == 0xEE);
            if (newSectors == 8)
            {
                kept++;
            }
            else if (newSectors == 0)
            {
                dropped++;
            }
            else
            {
                torn++;
            }
        }

        Assert.That(kept, Is.Positive);
        Assert.That(dropped, Is.Positive);
        Assert.That(torn, Is.Positive);
    }

    [Test]
    public void SameSeed_GivesTheSamePostCrashImage_AndSeedsDiffer()
    {
        int seed = Seeds.Get();
        byte[] first = CrashAfterScript(seed, crashSeed: seed);
        byte[] second = CrashAfterScript(seed, crashSeed: seed);
        Assert.That(second, Is.EqualTo(first));

        var distinct = Enumerable.Range(0, 16)
            .Select(i => Convert.ToHexString(CrashAfterScript(seed, Seeds.Derive(seed, i))))
            .Distinct().Count();
        Assert.That(distinct, Is.GreaterThan(1), "different crash seeds explore different outcomes");
    }

    [Test]
    public void UnsyncedCreate_MayBeLost_ButADirectorySyncedCreateIsKept()
    {
        int seed = Seeds.Get();
        int lost = 0, kept = 0;
        for (int i = 0; i < CrashSeedsCount; i++)
        {
            var storage = NewStorage(seed);
            storage.Open("/sim/log/synced.log", FileCreation.CreateNew, DirectIoMode.Disabled).Dispose();
            storage.SyncDirectory(Dir);
            using (IDirectFile file = storage.Open("/sim/log/unsynced.log", FileCreation.CreateNew, DirectIoMode.Disabled))
            {
                file.Write(new byte[Sector], 0);
                file.SyncData(); // the data is durable, the directory entry is not
            }

            SimulatedStorage after = storage.Crash(Seeds.Derive(seed, i));

            Assert.That(after.FileExists("/sim/log/synced.log"), Is.True);
            if (after.FileExists("/sim/log/unsynced.log"))
            {
                kept++;
            }
            else
            {
                lost++;
            }
        }

        Assert.That(lost, Is.Positive, "an unsynced create is lost for some seeds");
        Assert.That(kept, Is.Positive, "and survives for others");
    }

    [Test]
    public void UnsyncedRename_AfterACrash_LeavesExactlyOneOfTheTwoNames()
    {
        int seed = Seeds.Get();
        var outcomes = new HashSet<string>();
        for (int i = 0; i < CrashSeedsCount; i++)
        {
            var storage = NewStorage(seed);
            storage.Open("/sim/log/a", FileCreation.CreateNew, DirectIoMode.Disabled).Dispose();
            storage.SyncDirectory(Dir);
            storage.RenameFile("/sim/log/a", "/sim/log/b");

            SimulatedStorage after = storage.Crash(Seeds.Derive(seed, i));

            Assert.That(after.ListFiles(Dir), Has.Count.EqualTo(1));
            _ = outcomes.Add(after.ListFiles(Dir)[0]);
        }

        Assert.That(outcomes, Is.EquivalentTo(new[] { "a", "b" }));
    }

    [Test]
    public void WriteFileAtomic_IsDurableAtOnce()
    {
        int seed = Seeds.Get();
        for (int i = 0; i < CrashSeedsCount; i++)
        {
            var storage = NewStorage(seed);
            storage.WriteFileAtomic("/sim/log/meta", "one"u8);
            storage.WriteFileAtomic("/sim/log/meta", "two!"u8);

            SimulatedStorage after = storage.Crash(Seeds.Derive(seed, i));

            Assert.That(after.ReadSmallFile("/sim/log/meta"), Is.EqualTo("two!"u8.ToArray()));
            Assert.That(after.ListFiles(Dir), Is.EqualTo(new[] { "meta" }));
        }
    }

    [Test]
    public void Truncate_IsDurableAtOnce_AndGrowingAgainExposesZeros()
    {
        var storage = NewStorage(Seeds.Get());
        using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
        storage.SyncDirectory(Dir);
        file.Write(Enumerable.Repeat((byte)0x77, 3 * Sector).ToArray(), 0);
        file.SyncData();

        file.Truncate(Sector + 10);
        file.Allocate(0, 3 * Sector);
        byte[] volatileImage = storage.GetVolatileImage(FilePath);
        SimulatedStorage after = storage.Crash(1);

        Assert.That(volatileImage.Skip(Sector + 10).All(b => b == 0), Is.True);
        Assert.That(volatileImage.Take(Sector + 10).All(b => b == 0x77), Is.True);
        long length = after.GetVolatileImage(FilePath).Length;
        Assert.That(length, Is.EqualTo(Sector + 10).Or.EqualTo(3 * Sector));
    }

    [Test]
    public void EioOnTheNthWrite_FailsThatWriteOnly()
    {
        var storage = NewStorage(Seeds.Get());
        using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
        storage.InjectError(StorageOperation.Write, nth: 3);

        file.Write(new byte[Sector], 0);
        file.Write(new byte[Sector], Sector);
        var ex = Assert.Throws<StorageIOException>(() => file.Write(new byte[Sector], 2 * Sector));
        file.Write(new byte[Sector], 3 * Sector);

        Assert.That(ex!.Errno, Is.EqualTo(Errno.EIO));
        Assert.That(ex.IsDiskFull, Is.False);
        Assert.That(storage.GetOperationCount(StorageOperation.Write), Is.EqualTo(4));
    }

    [Test]
    public void EioOnSync_LosesSomePagesForGood_EvenIfALaterSyncSucceeds()
    {
        // Fsyncgate: after a failed fdatasync, the kernel may mark dirty pages clean without writing them; a
        // retried sync then "succeeds" and the data is still not on disk.
        var storage = NewStorage(Seeds.Get());
        using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
        file.Allocate(0, 64 * Sector);
        file.SyncData();
        storage.SyncDirectory(Dir);
        byte[] data = Enumerable.Repeat((byte)0x9D, 64 * Sector).ToArray();
        file.Write(data, 0);
        storage.InjectError(StorageOperation.SyncData, nth: 1);

        Assert.Throws<StorageIOException>(file.SyncData);
        file.SyncData(); // succeeds
        using var readBack = new AlignedBuffer(64 * Sector);
        _ = file.Read(readBack.Span, 0);
        byte[] after = storage.Crash(2).GetVolatileImage(FilePath);

        Assert.That(readBack.Span.ToArray(), Is.EqualTo(data), "reads still see the lost pages");
        int lostSectors = Enumerable.Range(0, 64).Count(s => after[s * Sector] == 0);
        Assert.That(lostSectors, Is.InRange(1, 63), "some sectors reached the disk and some did not");
        Assert.That(Enumerable.Range(0, 64).All(s => SectorEquals(after, data, s) || after[s * Sector] == 0), Is.True);
    }

    [Test]
    public void EioWithProbability_IsDeterministicForTheSeed()
    {
        int seed = Seeds.Get();

        static string Pattern(int seed)
        {
            var storage = NewStorage(seed);
            using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
            storage.SetErrorProbability(StorageOperation.SyncData, 0.5);
            return string.Concat(Enumerable.Range(0, 64).Select(_ =>
            {
                try
                {
                    file.SyncData();
                    return '.';
                }
                catch (StorageIOException)
                {
                    return 'x';
                }
            }));
        }

        string first = Pattern(seed);
        Assert.That(Pattern(seed), Is.EqualTo(first));
        Assert.That(first, Does.Contain(".").And.Contain("x"));
    }

    [Test]
    public void DiskFull_FailsAllocationWithEnospc_UntilSpaceIsFreed()
    {
        var storage = NewStorage(Seeds.Get());
        using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
        file.Allocate(0, 4 * Block);
        storage.DiskFull = true;

        var ex = Assert.Throws<StorageIOException>(() => file.Allocate(4 * Block, 4 * Block));
        Assert.That(ex!.IsDiskFull, Is.True);
        Assert.That(ex.Operation, Is.EqualTo("fallocate"));
        Assert.That(file.Length, Is.EqualTo(4 * Block), "a failed allocation changes nothing");
        file.Write(new byte[Block], 3 * Block); // inside reserved space: fine
        var write = Assert.Throws<StorageIOException>(() => file.Write(new byte[Block], 4 * Block));
        Assert.That(write!.Errno, Is.EqualTo(Errno.ENOSPC));

        storage.DiskFull = false;
        file.Allocate(4 * Block, 4 * Block);
        Assert.That(file.Length, Is.EqualTo(8 * Block));
    }

    /// <summary>Property: <see cref="SimulatedStorage.FlipBit"/> changes exactly one bit of the durable image.</summary>
#pragma warning disable NUnit1027 // FsCheck generates the arguments; NUnit.Analyzers does not know that
    [Property(MaxTest = 100)]
    public bool FlipBit_ChangesExactlyOneBit(ushort position, byte bit)
#pragma warning restore NUnit1027
    {
        var storage = NewStorage(1);
        using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
        byte[] data = new byte[ushort.MaxValue + 1];
        new Random(position).NextBytes(data);
        file.Write(data, 0);
        file.SyncData();

        storage.FlipBit(FilePath, position, bit % 8);
        byte[] after = storage.GetDurableImage(FilePath);

        int differingBits = data.Zip(after, (a, b) => System.Numerics.BitOperations.PopCount((uint)(a ^ b))).Sum();
        return differingBits == 1 && (after[position] ^ data[position]) == 1 << (bit % 8);
    }

    [Test]
    public void FlipBit_SurvivesACrash_AndIsSeenByReads()
    {
        var storage = NewStorage(Seeds.Get());
        using (IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled))
        {
            file.Write(new byte[Block], 0);
            file.SyncData();
        }

        storage.SyncDirectory(Dir);
        storage.FlipBit(FilePath, 1000, 3);

        Assert.That(storage.GetVolatileImage(FilePath)[1000], Is.EqualTo(8));
        Assert.That(storage.Crash(3).GetVolatileImage(FilePath)[1000], Is.EqualTo(8));
    }

    [Test]
    public void TheCrashedInstance_RefusesEveryLaterCallWithEio()
    {
        var storage = NewStorage(Seeds.Get());
        IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
        _ = storage.Crash(4);

        Assert.That(Assert.Throws<StorageIOException>(() => file.Write(new byte[Sector], 0))!.Errno, Is.EqualTo(Errno.EIO));
        Assert.That(Assert.Throws<StorageIOException>(file.SyncData)!.Errno, Is.EqualTo(Errno.EIO));
        Assert.Throws<StorageIOException>(() => storage.Open("/sim/log/x", FileCreation.CreateNew, DirectIoMode.Disabled));
    }

    [Test]
    public void Open_FollowsTheCreationModeAndTheDirectIoSupport()
    {
        var storage = NewStorage(Seeds.Get());
        var noDirect = new SimulatedStorage(1, supportsDirectIo: false);
        noDirect.CreateDirectory(Dir);

        Assert.Throws<FileNotFoundException>(() => storage.Open(FilePath, FileCreation.OpenExisting, DirectIoMode.Preferred));
        Assert.Throws<FileNotFoundException>(() => storage.Open("/elsewhere/x", FileCreation.CreateNew, DirectIoMode.Preferred));
        using (IDirectFile created = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Preferred))
        {
            Assert.That(created.IsDirect, Is.True);
        }

        Assert.That(Assert.Throws<StorageIOException>(
            () => storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Preferred))!.Errno, Is.EqualTo(Errno.EEXIST));
        Assert.That(Assert.Throws<StorageIOException>(
            () => noDirect.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Required))!.Errno, Is.EqualTo(Errno.EINVAL));
        using IDirectFile fallback = noDirect.Open(FilePath, FileCreation.OpenOrCreate, DirectIoMode.Preferred);
        Assert.That(fallback.IsDirect, Is.False);
    }

    [Test]
    public void GetDirectIoSupport_ReportsTheConfiguredFileSystem()
    {
        var storage = new SimulatedStorage(1, supportsDirectIo: false) { IsTmpfs = true };
        storage.CreateDirectory(Dir);

        DirectIoSupport support = storage.GetDirectIoSupport(Dir);

        Assert.That(support.SupportsDirectIo, Is.False);
        Assert.That(support.IsTmpfs, Is.True);
        Assert.That(support.Reason, Does.Contain("EINVAL"));
        Assert.That(storage.ListFiles(Dir), Is.Empty, "no probe file is left behind");
        Assert.That(NewStorage(1).GetDirectIoSupport(Dir).SupportsDirectIo, Is.True);
    }

    [Test]
    public void MisalignedDirectWrite_IsCaughtByTheSanitizer_AndRefusedByTheSimulatedKernel()
    {
        var storage = NewStorage(Seeds.Get());
        using var file = (SanitizingFile)storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Required);
        using var buffer = new AlignedBuffer(2 * Block);

        Assert.Throws<AppendLogInvariantException>(() => file.Write(buffer.Span[..Sector], 0));
        var ex = Assert.Throws<StorageIOException>(() => file.Inner.Write(buffer.Span[..Block], Sector));
        Assert.That(ex!.Errno, Is.EqualTo(Errno.EINVAL));
        file.Write(buffer.Span[..Block], Block); // aligned: fine
    }

    [Test]
    public void LockDirectory_Twice_ThrowsLogLocked_UntilReleased()
    {
        var storage = NewStorage(Seeds.Get());
        IDisposable held = storage.LockDirectory(Dir, LinuxStorage.LockFileName);

        Assert.Throws<LogLockedException>(() => storage.LockDirectory(Dir, LinuxStorage.LockFileName));
        held.Dispose();
        held.Dispose();
        using IDisposable again = storage.LockDirectory(Dir, LinuxStorage.LockFileName);
    }

    [Test]
    public void ConcurrentWritesAndSyncs_FromSeveralThreads_AllLand()
    {
        const int ThreadsCount = 4;
        const int BlocksPerThread = 64;
        var storage = NewStorage(Seeds.Get());
        using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Required);
        file.Allocate(0, ThreadsCount * BlocksPerThread * (long)Block);
        using var stop = new CancellationTokenSource();
        var syncer = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                file.SyncData();
            }
        });

        Parallel.For(0, ThreadsCount, t =>
        {
            using var buffer = Filled(Block, (byte)(t + 1));
            for (int b = 0; b < BlocksPerThread; b++)
            {
                file.Write(buffer.Span, ((b * ThreadsCount) + t) * (long)Block);
            }
        });
        stop.Cancel();
        syncer.GetAwaiter().GetResult();
        file.SyncData();

        byte[] image = storage.GetDurableImage(FilePath);
        for (int block = 0; block < ThreadsCount * BlocksPerThread; block++)
        {
            byte expected = (byte)((block % ThreadsCount) + 1);
            Assert.That(image.AsSpan(block * Block, Block).IndexOfAnyExcept(expected), Is.EqualTo(-1), $"block {block}");
        }
    }

    [Test]
    public void Sanitizer_ReportsTwoInflightWritesToTheSameBlock()
    {
        var storage = NewStorage(Seeds.Get());
        using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Required);
        using var buffer = new AlignedBuffer(2 * Block);
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        storage.BeforeOperation = (operation, _) =>
        {
            if (operation == StorageOperation.Write && !entered.IsSet)
            {
                entered.Set();
                release.Wait();
            }
        };

        var held = Task.Run(() => file.Write(buffer.Span[..Block], 0)); // held in the hook, still in flight
        entered.Wait();
        try
        {
            Assert.Throws<AppendLogInvariantException>(() => file.Write(buffer.Span[..Block], 0));
            file.Write(buffer.Span[..Block], Block); // a different block may be written meanwhile
        }
        finally
        {
            release.Set();
            held.GetAwaiter().GetResult();
        }

        file.Write(buffer.Span[..Block], 0); // and the first block again once its write completed
    }

    [Test]
    public void Sanitizer_ReportsIoAfterDispose_AndDisposeIsIdempotent()
    {
        var storage = NewStorage(Seeds.Get());
        IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
        file.Dispose();
        file.Dispose();

        Assert.Throws<AppendLogInvariantException>(() => file.Write(new byte[Sector], 0));
        Assert.Throws<AppendLogInvariantException>(file.SyncData);
        Assert.Throws<AppendLogInvariantException>(() => _ = file.Length);
    }

    private static SimulatedStorage NewStorage(int seed)
    {
        var storage = new SimulatedStorage(seed);
        storage.CreateDirectory(Dir);
        return storage;
    }

    private static AlignedBuffer Filled(int length, byte value)
    {
        var buffer = new AlignedBuffer(length);
        buffer.Span.Fill(value);
        return buffer;
    }

    /// <summary>
    /// Whether sector <paramref name="sector"/> of <paramref name="actual"/> equals that of <paramref name="expected"/>,
    /// reading <paramref name="expected"/> as zero past its end (a file grown past its data reads zeros) and
    /// comparing only the bytes <paramref name="actual"/> has.
    /// </summary>
    private static bool SectorEquals(byte[] actual, byte[] expected, int sector)
    {
        int start = sector * Sector;
        int end = Math.Min(actual.Length, start + Sector);
        for (int i = start; i < end; i++)
        {
            byte want = i < expected.Length ? expected[i] : (byte)0;
            if (actual[i] != want)
            {
                return false;
            }
        }

        return true;
    }

    private static byte[] CrashAfterScript(int scriptSeed, int crashSeed)
    {
        var random = new Random(scriptSeed);
        var storage = NewStorage(scriptSeed);
        using IDirectFile file = storage.Open(FilePath, FileCreation.CreateNew, DirectIoMode.Disabled);
        storage.SyncDirectory(Dir);
        for (int i = 0; i < 32; i++)
        {
            byte[] buffer = new byte[Sector * random.Next(1, 4)];
            random.NextBytes(buffer);
            file.Write(buffer, random.Next(0, 64) * (long)Sector);
            if (random.Next(4) == 0)
            {
                file.SyncData();
            }
        }

        return storage.Crash(crashSeed).GetVolatileImage(FilePath);
    }
}
