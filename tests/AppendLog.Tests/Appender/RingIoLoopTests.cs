using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.Versioning;
using AppendLog.Appender;
using AppendLog.Io.Uring;
using AppendLog.Testing;
using Microsoft.Win32.SafeHandles;
using NUnit.Framework;

namespace AppendLog.Tests.Appender;

/// <summary>
/// The io_uring I/O loop against a real kernel: posts from many threads all complete once, with their bytes on disk;
/// errors arrive as −errno; works that are not ring operations, and short writes, run on the fallback; a completion
/// handler's next work needs no signal; disposal waits for what is in flight. Then a <see cref="LogManager"/> whose logs
/// write through the loop, read back after a reopen. Skipped (with the probe's reason) where io_uring is unavailable.
/// </summary>
[TestFixture]
[Platform("Linux")]
[SupportedOSPlatform("linux")]
[CancelAfter(60_000)]
public sealed class RingIoLoopTests
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
        _directory = new TempDirectory("appendlog-ring");
    }

    [TearDown]
    public void TearDown() => _directory?.Dispose();

    [Test]
    public async Task WritesPostedFromManyThreads_EachCompleteOnce_OnTheLoopThread_WithTheirBytesOnDisk()
    {
        const int Threads = 8, PerThread = 250, Works = Threads * PerThread;
        using var buffer = new AlignedBuffer(Works * Block);
        for (int i = 0; i < Works; i++)
        {
            buffer.Span.Slice(i * Block, Block).Fill((byte)(i * 31 + 7));
        }

        string path = _directory.File("many.dat");
        using SafeFileHandle file = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite);
        var fallback = new RecordingExecutor();
        var loop = RingIoLoop.TryStart("test-ring", fallback, out string? reason) ?? throw new AssertionException(reason!);
        var works = Enumerable.Range(0, Works).Select(i => new FakeWork(RingOperationKind.Write, file, Address(buffer, i * Block), Block, (long)i * Block)).ToArray();

        // Posters race the loop's sleep: some posts find it asleep (and signal), most find it awake.
        await Task.WhenAll(Enumerable.Range(0, Threads).Select(t => Task.Run(async () =>
        {
            for (int i = 0; i < PerThread; i++)
            {
                loop.Post(works[t * PerThread + i]);
                if (i % 16 == 0)
                {
                    await Task.Yield();
                }
            }
        })));
        await Task.WhenAll(works.Select(w => w.Done.Task)).WaitAsync(TimeSpan.FromSeconds(30));
        var loopThreads = works.Select(w => w.CompletedOn).Distinct().ToArray();
        loop.Dispose();

        Assert.That(works.Select(w => w.Completions), Is.All.EqualTo(1), "every work completes exactly once");
        Assert.That(works.Select(w => w.Result), Is.All.EqualTo(Block));
        Assert.That(loopThreads, Has.Length.EqualTo(1), "completion handlers run on the loop's one thread");
        Assert.That(loopThreads[0], Is.Not.EqualTo(Environment.CurrentManagedThreadId));
        Assert.That(fallback.Posted, Is.Empty, "every write went through the ring");
        Assert.That(loop.Writes, Is.EqualTo(Works), "each write handed to the kernel once");
        Assert.That(loop.Signals, Is.LessThanOrEqualTo(Works));
        byte[] onDisk = File.ReadAllBytes(path);
        Assert.That(onDisk, Is.EqualTo(buffer.Span.ToArray()));
    }

    [Test]
    public async Task AFailedOperation_CompletesWithMinusErrno()
    {
        using var buffer = new AlignedBuffer(Block);
        string path = _directory.File("readonly.dat");
        File.WriteAllBytes(path, new byte[Block]);
        using SafeFileHandle readOnly = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var loop = RingIoLoop.TryStart("test-ring", new RecordingExecutor(), out string? reason) ?? throw new AssertionException(reason!);
        var write = new FakeWork(RingOperationKind.Write, readOnly, Address(buffer, 0), Block, 0);

        loop.Post(write);
        await write.Done.Task.WaitAsync(TimeSpan.FromSeconds(10));
        loop.Dispose();

        Assert.That(write.Result, Is.EqualTo(-9), "EBADF: the descriptor is not open for writing");
    }

    [Test]
    public async Task NonRingWorks_AndShortWrites_RunOnTheFallback()
    {
        using var buffer = new AlignedBuffer(Block);
        using SafeFileHandle file = File.OpenHandle(_directory.File("short.dat"), FileMode.Create, FileAccess.ReadWrite);
        var fallback = new RecordingExecutor();
        var loop = RingIoLoop.TryStart("test-ring", fallback, out string? reason) ?? throw new AssertionException(reason!);
        var plain = new FakeWork(RingOperationKind.None, null, 0, 0, 0);
        var shortWrite = new FakeWork(RingOperationKind.Write, file, Address(buffer, 0), Block, 0) { ReportShortOnce = true };

        loop.Post(plain);
        loop.Post(shortWrite);
        await Task.WhenAll(plain.Done.Task, shortWrite.Done.Task).WaitAsync(TimeSpan.FromSeconds(10));
        loop.Dispose();

        Assert.That(fallback.Posted, Is.EquivalentTo(new IIoWork[] { plain, shortWrite }));
        Assert.That(plain.Executions, Is.EqualTo(1));
        Assert.That(shortWrite.Completions, Is.EqualTo(1), "the ring ran it once");
        Assert.That(shortWrite.Executions, Is.EqualTo(1), "then the fallback wrote it again in full");
    }

    [Test]
    public async Task WorkPostedByACompletionHandler_GoesOutWithTheNextSubmission_WithoutASignal()
    {
        const int Chain = 200;
        using SafeFileHandle file = File.OpenHandle(_directory.File("chain.dat"), FileMode.Create, FileAccess.ReadWrite);
        var loop = RingIoLoop.TryStart("test-ring", new RecordingExecutor(), out string? reason) ?? throw new AssertionException(reason!);
        var syncs = Enumerable.Range(0, Chain).Select(_ => new FakeWork(RingOperationKind.DataSync, file, 0, 0, 0)).ToArray();
        for (int i = 0; i < Chain - 1; i++)
        {
            var next = syncs[i + 1];
            syncs[i].OnCompleted = () => loop.Post(next);
        }

        await Task.Delay(50); // the loop is asleep in the kernel: the first post signals
        loop.Post(syncs[0]);
        await syncs[^1].Done.Task.WaitAsync(TimeSpan.FromSeconds(30));
        long signals = loop.Signals;
        loop.Dispose();

        Assert.That(syncs.Select(s => s.Result), Is.All.EqualTo(0));
        Assert.That(signals, Is.EqualTo(1), "only the first post came from another thread");
    }

    [Test]
    public async Task Dispose_WaitsForOperationsInFlight_AndLaterPostsRunOnTheFallback()
    {
        const int Works = 64;
        using var buffer = new AlignedBuffer(Works * Block);
        using SafeFileHandle file = File.OpenHandle(_directory.File("dispose.dat"), FileMode.Create, FileAccess.ReadWrite);
        var fallback = new RecordingExecutor();
        var loop = RingIoLoop.TryStart("test-ring", fallback, out string? reason) ?? throw new AssertionException(reason!);
        var works = Enumerable.Range(0, Works).Select(i => new FakeWork(RingOperationKind.Write, file, Address(buffer, i * Block), Block, (long)i * Block)).ToArray();

        foreach (var work in works)
        {
            loop.Post(work);
        }
        loop.Dispose();
        Assert.That(works.Select(w => w.Done.Task.IsCompleted), Is.All.True, "Dispose returned after every posted work completed");

        var late = new FakeWork(RingOperationKind.Write, file, Address(buffer, 0), Block, 0);
        loop.Post(late);
        await late.Done.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(fallback.Posted, Is.EqualTo(new IIoWork[] { late }));
    }

    [Test]
    public async Task ALogManagerWithTheLoop_WritesAndSyncsThroughIt_AndEveryAcknowledgedRecordReadsBackAfterReopen()
    {
        const int Logs = 24, PerLog = 300;
        string root = _directory.File("root");
        var options = new LogManagerOptions
        {
            RootDirectory = root,
            RingIoLoop = true,
            LogDefaults = new LogOptions { SegmentSize = 1024 * 1024, PreallocationMinimumStep = 64 * 1024, PreallocationMaximumStep = 64 * 1024 },
        };
        long syncs = 0;
        await using (var manager = LogManager.Create(options))
        {
            Assert.That(manager.UsesRingIoLoop, Is.True, manager.IoEngine);
            var logs = await manager.OpenAsync(Enumerable.Range(0, Logs).Select(i => $"log-{i:D2}"));
            await Task.WhenAll(logs.Select((log, l) => Task.Run(async () =>
            {
                for (int i = 0; i < PerLog; i++)
                {
                    long offset = await log.AppendAsync(Payload(l, i));
                    Assert.That(offset, Is.EqualTo(i));
                }
            })));
            syncs = logs.Sum(l => l.SyncCount);
            var (enters, writes, dataSyncs, _) = manager.RingCounts;
            Assert.That(enters, Is.GreaterThan(0));
            // Each append waited for its write and a sync; the sync right after a roll (two segments, or a directory
            // entry not yet durable) runs on the I/O workers, every other one through the ring.
            Assert.That(writes, Is.GreaterThanOrEqualTo(syncs), "every sync covers at least one write, and writes go through the ring");
            Assert.That(dataSyncs, Is.GreaterThanOrEqualTo(syncs - 4 * Logs), "all syncs but those after a roll went through the ring");
        }

        await using (var reopened = LogManager.Create(options with { RingIoLoop = false }))
        {
            for (int l = 0; l < Logs; l++)
            {
                var log = await reopened.GetOrOpenAsync($"log-{l:D2}");
                int i = 0;
                await foreach (var record in log.ReadAsync(0))
                {
                    Assert.That(record.Offset, Is.EqualTo(i));
                    Assert.That(record.Value, Is.EqualTo(Payload(l, i)), $"log {l} offset {i}");
                    i++;
                }
                Assert.That(i, Is.EqualTo(PerLog), $"log {l}: every acknowledged record");
            }
        }
        Assert.That(syncs, Is.GreaterThan(0));
    }

    private static byte[] Payload(int log, int index)
    {
        var payload = new byte[1000 + (index % 7) * 1000]; // ~1.2 MB a log: each rolls once
        new Random(log * 100_003 + index).NextBytes(payload);
        return payload;
    }

    private static unsafe nint Address(AlignedBuffer buffer, int offset) => (nint)Unsafe.AsPointer(ref buffer.Span[offset]);

    /// <summary>Records what the loop hands on and runs it at once, on the posting thread.</summary>
    private sealed class RecordingExecutor : IIoExecutor
    {
        private readonly ConcurrentQueue<IIoWork> _posted = new();

        public IReadOnlyCollection<IIoWork> Posted => _posted.ToArray();

        public void Post(IIoWork work)
        {
            _posted.Enqueue(work);
            work.Execute();
        }
    }

    private sealed class FakeWork(RingOperationKind kind, SafeFileHandle? handle, nint buffer, int length, long position) : IRingWork
    {
        private int _completions;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool ReportShortOnce { get; init; }

        public Action? OnCompleted { get; set; }

        public int Completions => Volatile.Read(ref _completions);

        public int Executions { get; private set; }

        public int? Result { get; private set; }

        public int CompletedOn { get; private set; }

        public RingOperation BeginRing() => kind == RingOperationKind.None ? RingOperation.None : new RingOperation(kind, handle, buffer, length, position);

        public bool CompleteRing(int result)
        {
            int completions = Interlocked.Increment(ref _completions);
            CompletedOn = Environment.CurrentManagedThreadId;
            if (ReportShortOnce && completions == 1)
            {
                return false;
            }

            Result = result;
            OnCompleted?.Invoke();
            Done.TrySetResult();
            return true;
        }

        public unsafe void Execute()
        {
            Executions++;
            if (handle is not null && length > 0)
            {
                RandomAccess.Write(handle, new ReadOnlySpan<byte>((void*)buffer, length), position);
            }
            Done.TrySetResult();
        }
    }
}
