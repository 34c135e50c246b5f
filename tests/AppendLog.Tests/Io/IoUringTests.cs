using System.Runtime.CompilerServices;
using System.Runtime.Versioning;
using AppendLog.Io;
using AppendLog.Io.Interop;
using AppendLog.Io.Uring;
using AppendLog.Testing;
using NUnit.Framework;
using PropertyAttribute = FsCheck.NUnit.PropertyAttribute;

namespace AppendLog.Tests.Io;

/// <summary>
/// The raw io_uring binding against a real kernel and a real file: linked write + fdatasync, batches, failures as
/// typed exceptions, a full ring, disposal with operations in flight. Skipped (with the probe's reason) where the
/// kernel or the sandbox has no io_uring.
/// </summary>
[TestFixture]
[Platform("Linux")]
[SupportedOSPlatform("linux")]
[CancelAfter(30_000)]
public sealed unsafe class IoUringTests
{
    private const int Block = 4096;

    private TempDirectory _directory = null!;

    [SetUp]
    public void SetUp()
    {
        IoUringProbeResult probe = IoUringSupport.Probe();
        if (!probe.IsSupported)
        {
            Assert.Ignore($"io_uring unavailable: {probe.Reason}");
        }
        _directory = new TempDirectory("appendlog-uring");
    }

    [TearDown]
    public void TearDown() => _directory?.Dispose();

    [Test]
    public void AbiLayouts_MatchTheKernelHeader()
    {
        // include/uapi/linux/io_uring.h: the SQE is 64 bytes, the CQE 16, io_uring_params 120.
        Assert.That(sizeof(IoUringNative.Sqe), Is.EqualTo(64));
        Assert.That(sizeof(IoUringNative.Cqe), Is.EqualTo(16));
        Assert.That(sizeof(IoUringNative.Params), Is.EqualTo(120));
        Assert.That((uint)IoUringSetupFlags.SingleIssuer, Is.EqualTo(IoUringNative.SetupSingleIssuer));
        Assert.That((uint)IoUringSetupFlags.CoopTaskRun, Is.EqualTo(IoUringNative.SetupCoopTaskRun));
        Assert.That((uint)IoUringSetupFlags.SubmitAll, Is.EqualTo(IoUringNative.SetupSubmitAll));
    }

    [Test]
    public void Probe_ReportsTheFlagsARingObtains()
    {
        using var ring = new IoUring(8);

        Assert.That(IoUringSupport.Probe().SetupFlags, Is.EqualTo(ring.SetupFlags));
        Assert.That(ring.SubmissionEntries, Is.EqualTo(8));
        Assert.That(ring.CompletionEntries, Is.GreaterThanOrEqualTo(8));
    }

    [Test]
    public void WriteThenDataSync_WritesTheBytesAndCompletesTheWriteBeforeTheSync()
    {
        using var buffer = new AlignedBuffer(2 * Block);
        Fill(buffer.Span, seed: 7);
        using FileHandle file = FileHandle.Create(_directory.File("linked.dat"));
        using var ring = new IoUring(8);

        bool prepared = ring.TryPrepareWriteThenDataSync(file.Fd, Pointer(buffer), 2 * Block, Block, 1, 2);
        int submitted = ring.SubmitAndWait(2);
        IoUringCompletion[] completions = ReapAll(ring, 2);

        Assert.That(prepared, Is.True);
        Assert.That(submitted, Is.EqualTo(2));
        // Linked: the sync starts only after the write, so it also completes after it.
        Assert.That(completions, Is.EqualTo(new[] { new IoUringCompletion(1, 2 * Block), new IoUringCompletion(2, 0) }));
        Assert.That(ring.InFlight, Is.Zero);
        byte[] onDisk = File.ReadAllBytes(file.Path);
        Assert.That(onDisk, Has.Length.EqualTo(3 * Block));
        Assert.That(onDisk.AsSpan(0, Block).IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "the hole before the write");
        Assert.That(onDisk.AsSpan(Block).SequenceEqual(buffer.Span), Is.True);
    }

    [Test]
    public void WriteThenDataSyncOnAWorker_CompletesInTheSameOrderWithTheSameResults()
    {
        using var buffer = new AlignedBuffer(Block);
        Fill(buffer.Span, seed: 17);
        using FileHandle file = FileHandle.Create(_directory.File("worker.dat"));
        using var ring = new IoUring(8);

        _ = ring.TryPrepareWriteThenDataSync(file.Fd, Pointer(buffer), Block, 0, 1, 2, onWorker: true);
        _ = ring.SubmitAndWait(2);
        IoUringCompletion[] completions = ReapAll(ring, 2);

        Assert.That(completions, Is.EqualTo(new[] { new IoUringCompletion(1, Block), new IoUringCompletion(2, 0) }));
        Assert.That(File.ReadAllBytes(file.Path).AsSpan().SequenceEqual(buffer.Span), Is.True);
    }

    [Test]
    public void DsyncWrite_CompletesWithTheByteCountAndNeedsNoSeparateSync()
    {
        using var buffer = new AlignedBuffer(Block);
        Fill(buffer.Span, seed: 13);
        using FileHandle file = FileHandle.Create(_directory.File("dsync.dat"));
        using var ring = new IoUring(4);

        _ = ring.TryPrepareWrite(file.Fd, Pointer(buffer), Block, 0, 1, linkNext: false, IoUringNative.RwfDsync);
        _ = ring.SubmitAndWait(1);
        IoUringCompletion[] completions = ReapAll(ring, 1);

        Assert.That(completions[0], Is.EqualTo(new IoUringCompletion(1, Block)));
        Assert.That(File.ReadAllBytes(file.Path).AsSpan().SequenceEqual(buffer.Span), Is.True);
    }

    [Test]
    public void ManyWritesInOneSubmission_AllCompleteAndAreReapedInBatches()
    {
        const int writes = 64;
        using var buffer = new AlignedBuffer(writes * Block);
        Fill(buffer.Span, seed: 11);
        using FileHandle file = FileHandle.Create(_directory.File("batch.dat"));
        using var ring = new IoUring(writes);

        for (int i = 0; i < writes; i++)
        {
            Assert.That(ring.TryPrepareWrite(file.Fd, Pointer(buffer) + (i * Block), Block, (long)i * Block,
                (ulong)i, linkNext: false), Is.True);
        }
        Assert.That(ring.FreeEntries, Is.Zero, "64 prepared in a 64-entry submission ring");
        int submitted = ring.SubmitAndWait(writes);
        var seen = new List<IoUringCompletion>();
        Span<IoUringCompletion> batch = stackalloc IoUringCompletion[16];
        int reaps = 0;
        while (seen.Count < writes)
        {
            int count = ring.Reap(batch);
            Assert.That(count, Is.InRange(1, 16), "everything was posted before SubmitAndWait returned");
            seen.AddRange(batch[..count].ToArray());
            reaps++;
        }

        Assert.That(submitted, Is.EqualTo(writes));
        Assert.That(reaps, Is.EqualTo(writes / 16));
        Assert.That(seen.Select(c => c.UserData), Is.EquivalentTo(Enumerable.Range(0, writes).Select(i => (ulong)i)));
        Assert.That(seen.Select(c => c.Result), Is.All.EqualTo(Block));
        Assert.That(File.ReadAllBytes(file.Path).AsSpan().SequenceEqual(buffer.Span), Is.True);
    }

    [Test]
    public void AFailingWrite_CompletesWithItsErrnoAndCancelsTheLinkedSync()
    {
        using var buffer = new AlignedBuffer(Block);
        using var ring = new IoUring(8);
        const int badFd = -1;

        _ = ring.TryPrepareWriteThenDataSync(badFd, Pointer(buffer), Block, 0, 1, 2);
        _ = ring.SubmitAndWait(2);
        IoUringCompletion[] completions = ReapAll(ring, 2);

        Assert.That(completions[0].Errno, Is.EqualTo(Errno.EBADF));
        Assert.That(completions[1].Errno, Is.EqualTo(Errno.ECANCELED), "the sync never ran");
        StorageIOException failure = Assert.Throws<StorageIOException>(
            () => completions[0].ThrowIfFailed("io_uring write", "bad.dat"))!;
        Assert.That(failure.Errno, Is.EqualTo(Errno.EBADF));
        Assert.That(failure.HResult, Is.EqualTo((int)Errno.EBADF));
        Assert.That(failure.Message, Does.Contain("io_uring write").And.Contain("bad.dat"));
        Assert.That(() => new IoUringCompletion(3, 0).ToException("x", "y"), Throws.InvalidOperationException);
    }

    [Test]
    public void AFullRing_RefusesMoreUntilCompletionsAreReaped()
    {
        using var ring = new IoUring(4);
        Assume.That(ring.CompletionEntries, Is.EqualTo(8), "the kernel's default CQ ring is twice the SQ ring");

        for (int i = 0; i < 4; i++)
        {
            Assert.That(ring.TryPrepareNop((ulong)i), Is.True);
        }
        Assert.That(ring.TryPrepareNop(99), Is.False, "submission ring full");
        Assert.That(ring.Submit(), Is.EqualTo(4));
        for (int i = 4; i < 8; i++)
        {
            Assert.That(ring.TryPrepareNop((ulong)i), Is.True);
        }
        // 4 in flight + 4 prepared: every CQ slot is promised, though the submission ring has room again.
        Assert.That(ring.FreeEntries, Is.Zero);
        Assert.That(ring.TryPrepareNop(99), Is.False, "completion ring fully promised");
        Assert.That(ring.TryPrepareWriteThenDataSync(0, null, 0, 0, 98, 99), Is.False);
        _ = ring.SubmitAndWait(8);
        IoUringCompletion[] completions = ReapAll(ring, 8);

        Assert.That(completions.Select(c => c.UserData), Is.EquivalentTo(Enumerable.Range(0, 8).Select(i => (ulong)i)));
        Assert.That(ring.FreeEntries, Is.EqualTo(4));
        Assert.That(() => ring.SubmitAndWait(1), Throws.TypeOf<ArgumentOutOfRangeException>(), "nothing could complete");
    }

    /// <summary>
    /// Property: over any sequence of prepare / submit / wait-and-reap steps, the ring accepts an operation exactly
    /// when a model of its two bounds has room (SQ entries for prepared ones, CQ entries for prepared plus in flight),
    /// and every accepted tag comes back exactly once.
    /// </summary>
#pragma warning disable NUnit1027 // FsCheck generates the arguments; NUnit.Analyzers does not know that
    [Property(MaxTest = 100)]
    public bool RingBounds_FollowAModelAndEveryTagCompletesOnce(byte[] steps)
#pragma warning restore NUnit1027
    {
        using var ring = new IoUring(4);
        int sqEntries = ring.SubmissionEntries, cqEntries = ring.CompletionEntries;
        int prepared = 0, inFlight = 0;
        ulong nextTag = 0;
        var outstanding = new HashSet<ulong>();
        var reaped = new IoUringCompletion[cqEntries];
        bool consistent = true;

        void ReapAtLeastOne()
        {
            int min = Math.Min(1, prepared + inFlight);
            _ = ring.SubmitAndWait(min);
            inFlight += prepared;
            prepared = 0;
            int count = ring.Reap(reaped);
            consistent &= count >= min && count <= inFlight;
            for (int i = 0; i < count; i++)
            {
                consistent &= outstanding.Remove(reaped[i].UserData) && reaped[i].Result == 0;
            }
            inFlight -= count;
        }

        foreach (byte step in steps ?? [])
        {
            switch (step % 3)
            {
                case 0:
                    bool room = prepared < sqEntries && prepared + inFlight < cqEntries;
                    bool accepted = ring.TryPrepareNop(nextTag);
                    consistent &= accepted == room;
                    if (accepted)
                    {
                        _ = outstanding.Add(nextTag++);
                        prepared++;
                    }
                    break;
                case 1:
                    consistent &= ring.Submit() == prepared;
                    inFlight += prepared;
                    prepared = 0;
                    break;
                default:
                    ReapAtLeastOne();
                    break;
            }
            consistent &= ring.Prepared == prepared && ring.InFlight == inFlight;
        }
        while (prepared + inFlight > 0)
        {
            ReapAtLeastOne();
        }
        return consistent && outstanding.Count == 0;
    }

    [Test]
    public void RegisteredBuffer_WriteFixedWritesFromIt()
    {
        using var buffer = new AlignedBuffer(4 * Block);
        Fill(buffer.Span, seed: 3);
        using FileHandle file = FileHandle.Create(_directory.File("fixed.dat"));
        using var ring = new IoUring(8);

        Assert.That(() => ring.TryPrepareWriteFixed(file.Fd, Pointer(buffer), Block, 0, 0, 1, false),
            Throws.InvalidOperationException, "nothing registered yet");
        ring.RegisterBuffers([((nint)Pointer(buffer), 4 * Block)]);
        _ = ring.TryPrepareWriteThenDataSync(file.Fd, Pointer(buffer) + Block, 2 * Block, 0, 1, 2, registeredBufferIndex: 0);
        _ = ring.SubmitAndWait(2);
        IoUringCompletion[] completions = ReapAll(ring, 2);

        Assert.That(ring.HasRegisteredBuffers, Is.True);
        Assert.That(completions, Is.EqualTo(new[] { new IoUringCompletion(1, 2 * Block), new IoUringCompletion(2, 0) }));
        Assert.That(File.ReadAllBytes(file.Path).AsSpan().SequenceEqual(buffer.Span.Slice(Block, 2 * Block)), Is.True);
    }

    [Test]
    public void WriteFixedOutsideTheRegisteredBuffer_FailsWithEfault()
    {
        using var buffer = new AlignedBuffer(2 * Block);
        using FileHandle file = FileHandle.Create(_directory.File("outside.dat"));
        using var ring = new IoUring(8);
        ring.RegisterBuffers([((nint)Pointer(buffer), Block)]);

        _ = ring.TryPrepareWriteFixed(file.Fd, Pointer(buffer) + Block, Block, 0, 0, 1, linkNext: false);
        _ = ring.SubmitAndWait(1);
        IoUringCompletion[] completions = ReapAll(ring, 1);

        Assert.That((int)completions[0].Errno, Is.EqualTo(14), "EFAULT: the range is checked against the registration");
        Assert.That(new FileInfo(file.Path).Length, Is.Zero);
    }

    [Test]
    public void Dispose_WaitsForOperationsInFlightAndThenRefusesUse()
    {
        using var buffer = new AlignedBuffer(Block);
        Fill(buffer.Span, seed: 5);
        using FileHandle file = FileHandle.Create(_directory.File("dispose.dat"));
        var ring = new IoUring(8);

        _ = ring.TryPrepareWriteThenDataSync(file.Fd, Pointer(buffer), Block, 0, 1, 2);
        _ = ring.Submit();
        _ = ring.TryPrepareNop(3); // prepared, never submitted: dropped
        ring.Dispose();
        ring.Dispose();

        Assert.That(ring.InFlight, Is.Zero, "drained before closing: the kernel no longer reads the buffer");
        Assert.That(File.ReadAllBytes(file.Path).AsSpan().SequenceEqual(buffer.Span), Is.True);
        Assert.That(() => ring.TryPrepareNop(4), Throws.TypeOf<ObjectDisposedException>());
    }

    [Test]
    public void AnotherThread_CannotUseTheRing()
    {
        using var ring = new IoUring(4);
        Exception? seen = null;

        var other = new Thread(() => seen = Record(() => ring.TryPrepareNop(1))) { IsBackground = true };
        other.Start();
        Assert.That(other.Join(TimeSpan.FromSeconds(10)), Is.True);

        Assert.That(seen, Is.TypeOf<InvalidOperationException>());
        Assert.That(ring.Prepared, Is.Zero);
    }

    [Test]
    public void SubmittingAHalfPreparedLink_IsRefused()
    {
        using var ring = new IoUring(4);
        using var buffer = new AlignedBuffer(Block);
        using FileHandle file = FileHandle.Create(_directory.File("half.dat"));

        _ = ring.TryPrepareWrite(file.Fd, Pointer(buffer), Block, 0, 1, linkNext: true);

        Assert.That(() => ring.Submit(), Throws.InvalidOperationException);
        _ = ring.TryPrepareDataSync(file.Fd, 2, linkNext: false);
        Assert.That(ring.SubmitAndWait(2), Is.EqualTo(2));
        Assert.That(ReapAll(ring, 2).Select(c => c.Result), Is.EqualTo(new[] { Block, 0 }));
    }

    [Test]
    public void Wakeup_SignalFromAnotherThreadEndsTheOwnersWait()
    {
        using var wakeup = new IoUringWakeup(userData: 42);
        using var waiting = new ManualResetEventSlim();
        IoUringCompletion? seen = null;
        bool consumed = false;
        Exception? failure = null;
        var owner = new Thread(() => failure = Record(() =>
        {
            using var ring = new IoUring(4);
            _ = wakeup.TryArm(ring);
            _ = ring.Submit();
            waiting.Set();
            _ = ring.SubmitAndWait(1); // only the signal can complete anything
            var completions = new IoUringCompletion[4];
            if (ring.Reap(completions) == 1)
            {
                seen = completions[0];
                consumed = wakeup.TryConsume(completions[0]);
            }
        }));
        owner.IsBackground = true; // a wake-up that never comes fails the Join, it does not keep the test host alive
        owner.Start();

        Assert.That(waiting.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Task.Delay(20).GetAwaiter().GetResult(); // most likely asleep in io_uring_enter by now; either way it must wake
        wakeup.Signal();
        Assert.That(owner.Join(TimeSpan.FromSeconds(10)), Is.True, "the signal ended the wait");

        Assert.That(failure, Is.Null);
        Assert.That(seen, Is.EqualTo(new IoUringCompletion(42, sizeof(ulong))));
        Assert.That(consumed, Is.True);
        Assert.That(wakeup.IsArmed, Is.False);
    }

    [Test]
    public void Wakeup_SignalsBeforeTheReadMergeIntoOneCompletion()
    {
        using var wakeup = new IoUringWakeup(userData: 7);
        using (var ring = new IoUring(4))
        {
            wakeup.Signal();
            wakeup.Signal();
            Assert.That(wakeup.TryArm(ring), Is.True);
            Assert.That(wakeup.TryArm(ring), Is.True, "armed once");
            Assert.That(ring.Prepared, Is.EqualTo(1));
            _ = ring.SubmitAndWait(1);
            IoUringCompletion[] first = ReapAll(ring, 1);
            Assert.That(wakeup.TryConsume(first[0]), Is.True);
            Assert.That(wakeup.TryConsume(new IoUringCompletion(8, 0)), Is.False, "another tag");

            _ = wakeup.TryArm(ring);
            _ = ring.Submit();
            Assert.That(ring.Reap(new IoUringCompletion[4]), Is.Zero, "the counter was reset by the first read");
            Assert.That(ring.InFlight, Is.EqualTo(1));
            wakeup.Release(); // completes the armed read, so disposing the ring does not wait forever
        }
        Assert.That(() => wakeup.Signal(), Throws.Nothing);
    }

    [Test]
    public void Wakeup_RefusesToFreeItsBufferWhileArmedInAnOpenRing()
    {
        var wakeup = new IoUringWakeup(userData: 9);
        var ring = new IoUring(4);
        using var other = new IoUring(4);
        _ = wakeup.TryArm(ring);
        _ = ring.Submit();

        Assert.That(() => wakeup.Dispose(), Throws.InvalidOperationException, "the kernel could still write the buffer");
        Assert.That(() => wakeup.TryArm(other), Throws.InvalidOperationException, "armed in the first ring");
        wakeup.Release();
        ring.Dispose(); // waits for the released read

        Assert.That(ring.IsDisposed, Is.True);
        Assert.That(() => ring.Prepared, Throws.TypeOf<ObjectDisposedException>());
        Assert.That(() => wakeup.Dispose(), Throws.Nothing);
        Assert.That(() => wakeup.Signal(), Throws.TypeOf<ObjectDisposedException>(), "never a reused descriptor");
    }

    private static Exception? Record(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private static IoUringCompletion[] ReapAll(IoUring ring, int count)
    {
        var completions = new IoUringCompletion[count];
        int reaped = ring.Reap(completions);
        Assert.That(reaped, Is.EqualTo(count), "SubmitAndWait returned after all were posted");
        return completions;
    }

    private static byte* Pointer(AlignedBuffer buffer) => (byte*)Unsafe.AsPointer(ref buffer.Span[0]);

    private static void Fill(Span<byte> span, int seed) => new Random(seed).NextBytes(span);

    /// <summary>A file opened read-write through open(2), for operations that take a raw descriptor.</summary>
    private sealed class FileHandle : IDisposable
    {
        private FileHandle(string path, int fd)
        {
            Path = path;
            Fd = fd;
        }

        public string Path { get; }

        public int Fd { get; }

        public static FileHandle Create(string path)
        {
            int fd = LibC.Open(path, LibC.O_RDWR | LibC.O_CREAT | LibC.O_CLOEXEC, 0b110_100_100);
            if (fd < 0)
            {
                LibC.ThrowLastError("open", path);
            }
            return new FileHandle(path, fd);
        }

        public void Dispose() => _ = LibC.Close(Fd);
    }
}
