using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using AppendLog.Io.Uring;

namespace AppendLog.LoadGen.Engines;

/// <summary>How the io_uring floor makes a round durable, and how many rounds it keeps in flight.</summary>
internal enum UringRound
{
    /// <summary>
    /// The minimal loop's shape exactly: one round at a time, its write and linked fdatasync submitted in one
    /// io_uring_enter that also waits for both. Differs from <see cref="MinimalLoopEngine"/> only in the system calls.
    /// </summary>
    None,

    /// <summary>
    /// A round's write+sync pair is submitted as soon as the previous round's write has completed, while up to two
    /// syncs run: a write overlaps the previous sync, as AppendLog's pipeline does (two syncs in flight).
    /// </summary>
    TwoSyncs,

    /// <summary>
    /// One round at a time as <see cref="None"/>, but a single WRITE with RWF_DSYNC instead of a write linked to an
    /// fsync: the kernel syncs the written range when the write completes (a FUA write where the device offers FUA).
    /// </summary>
    DsyncWrite,

    /// <summary>
    /// As <see cref="None"/>, with the write issued on an io-wq worker (IOSQE_ASYNC): the worker that completes the
    /// write runs the linked fsync next, with no round trip through the loop thread between them.
    /// </summary>
    WorkerPair,
}

/// <summary>
/// The minimal group-commit loop of <see cref="MinimalLoopEngine"/> (same staging buffer, same lock, same shared
/// <see cref="TaskCompletionSource"/> per round, same file preparation) with its pwrite + fdatasync replaced by one
/// io_uring submission: a write (WRITE_FIXED from the staging buffer, registered once; a plain WRITE if the memlock
/// limit refuses the registration) linked to an fdatasync. Measures what io_uring buys in the shape AppendLog
/// would use it (issue 14), not a new design.
/// </summary>
/// <remarks>
/// <para>The ring is created by, and only used on, the loop thread (single issuer). When nothing is in flight the
/// loop sleeps on the monitor as the minimal loop does; when something is in flight it sleeps in io_uring_enter
/// until a completion arrives.</para>
/// <para>Overlap (<see cref="UringRound.TwoSyncs"/>): write k+1 is submitted only after write k completed, so two
/// writes never touch the partial block at once, and the staging buffer is compacted only while no write is in
/// flight (the kernel reads it during a write). Sync k+1 starts after write k+1 completed, which is after write k
/// completed: when it succeeds, every round up to k+1 is durable, whatever the order the syncs finish in. When only
/// syncs are in flight and nothing is staged, the loop sleeps in io_uring_enter with an eventfd read armed
/// (<see cref="IoUringWakeup"/>); the next append signals it (one write(2), counted as wakeSignals), so its round
/// starts at once instead of after the next sync.</para>
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed class MinimalUringEngine : IEngine
{
    private const int BlockBytes = MinimalLoopSizes.BlockBytes;
    private const int StagingBytes = MinimalLoopSizes.StagingBytes;
    private const long AllocateStepBytes = MinimalLoopSizes.AllocateStepBytes;
    private const int SyncsInFlightMax = 2;
    private const int RingEntries = 8; // at most 2 pairs in flight: 4 SQEs
    private const ulong WriteTag = 1UL << 62;
    private const ulong SyncTag = 2UL << 62;
    private const ulong WakeTag = 3UL << 62;
    private const ulong SequenceMask = (1UL << 62) - 1;

    private static readonly TimeSpan s_stopWaitMax = TimeSpan.FromSeconds(30);

    private readonly object _gate = new();
    private readonly int _fd;
    private readonly unsafe byte* _staging;
    private readonly FilePreparation _preparation;
    private readonly UringRound _mode;
    private readonly bool _registerBuffer;
    private readonly long _fileBytes;
    private readonly Thread _loop;
    private readonly TaskCompletionSource<IoUringSetupFlags> _ringReady = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Guarded by _gate.
    private int _filled;
    private int _writtenInBuffer; // [0, _writtenInBuffer): the head of the partial block a completed write covered
    private TaskCompletionSource _round = NewCompletion();
    private TaskCompletionSource? _spaceAvailable;
    private bool _loopWaiting;
    private bool _loopInRing; // overlap: asleep in io_uring_enter though it could submit; appenders signal _wakeup
    private bool _closing;
    private Exception? _fault;

    // The loop thread's own.
    private IoUringWakeup? _wakeup; // overlap only: set before the ring is reported ready
    private long _wakeSignals;
    private readonly Queue<PendingRound> _pending = new(); // rounds submitted and not yet durable, oldest first
    private long _nextSequence;
    private long _writingSequence = -1; // the round whose write is in flight, or -1
    private long _blockStart;
    private long _fileEnd;
    private bool _fixedBuffer;
    private long _syncs;
    private long _enters;
    private long _bytesWritten;
    private long _wraps;
    private long _allocations;

    public unsafe MinimalUringEngine(string directory, FilePreparation preparation, UringRound mode,
        bool registerBuffer, long fileBytes)
    {
        if (fileBytes < 2L * StagingBytes || fileBytes % BlockBytes != 0)
        {
            throw new ArgumentOutOfRangeException(
                nameof(fileBytes), fileBytes, $"needs a multiple of {BlockBytes} B of at least {2 * StagingBytes} B");
        }
        IoUringProbeResult probe = IoUringSupport.Probe();
        if (!probe.IsSupported)
        {
            throw new PlatformNotSupportedException($"io_uring unavailable: {probe.Reason}");
        }
        _preparation = preparation;
        _mode = mode;
        _registerBuffer = registerBuffer;
        _fileBytes = fileBytes;
        _fd = MinimalLoopFile.OpenDirect(Path.Combine(directory, "minimal-uring.log"));
        _staging = (byte*)NativeMemory.AlignedAlloc(StagingBytes, BlockBytes);
        NativeMemory.Clear(_staging, StagingBytes);
        try
        {
            Prepare();
        }
        catch (Exception e) when (e is IOException or PlatformNotSupportedException)
        {
            Release();
            throw;
        }
        _loop = new Thread(Loop) { IsBackground = true, Name = "minimal-uring" };
        _loop.Start();
        try
        {
            // The ring is created on the loop thread (its single issuer); a setup failure surfaces here, at open.
            SetupFlags = _ringReady.Task.GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            _ = _loop.Join(s_stopWaitMax);
            Release();
            throw;
        }
    }

    /// <summary>What the kernel accepted at setup, for the report.</summary>
    public IoUringSetupFlags SetupFlags { get; }

    private unsafe void Prepare()
    {
        _fileEnd = _fileBytes;
        if (_preparation == FilePreparation.Fallocated)
        {
            MinimalLoopFile.Allocate(_fd, 0, _fileBytes);
        }
        else
        {
            for (long position = 0; position < _fileBytes; position += StagingBytes)
            {
                MinimalLoopFile.WriteExactly(_fd, _staging, (int)Math.Min(StagingBytes, _fileBytes - position), position);
            }
        }
        MinimalLoopFile.DataSync(_fd);
    }

    public long? SyncCalls => Interlocked.Read(ref _syncs);

    public IReadOnlyDictionary<string, long> Counters => new Dictionary<string, long>
    {
        ["bytesWritten"] = Interlocked.Read(ref _bytesWritten),
        ["ringEnters"] = Interlocked.Read(ref _enters),
        ["wraps"] = Interlocked.Read(ref _wraps),
        ["fallocates"] = Interlocked.Read(ref _allocations),
        ["wakeSignals"] = Interlocked.Read(ref _wakeSignals),
        ["writeFixed"] = _fixedBuffer ? 1 : 0,
        ["setupFlags"] = (long)SetupFlags,
    };

    public unsafe ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
    {
        if (payload.Length > StagingBytes - BlockBytes)
        {
            throw new ArgumentOutOfRangeException(
                nameof(payload), payload.Length, $"larger than the staging limit of {StagingBytes - BlockBytes} B");
        }
        Task round;
        bool signal;
        lock (_gate)
        {
            if (_fault is not null)
            {
                return ValueTask.FromException(_fault);
            }
            ObjectDisposedException.ThrowIf(_closing, this);
            if (payload.Length > StagingBytes - _filled)
            {
                _spaceAvailable ??= NewCompletion();
                return AppendAfterSpaceAsync(_spaceAvailable.Task, payload);
            }
            payload.Span.CopyTo(new Span<byte>(_staging + _filled, payload.Length));
            _filled += payload.Length;
            if (_loopWaiting)
            {
                _loopWaiting = false;
                Monitor.Pulse(_gate);
            }
            round = _round.Task;
            signal = _loopInRing;
            _loopInRing = false;
        }
        if (signal)
        {
            Interlocked.Increment(ref _wakeSignals);
            try
            {
                _wakeup!.Signal(); // outside the lock: one write(2) ends the loop's io_uring_enter
            }
            catch (ObjectDisposedException)
            {
                // The loop has stopped, which it does only once everything staged (this record too) is durable.
            }
        }
        return new ValueTask(round);
    }

    private async ValueTask AppendAfterSpaceAsync(Task spaceAvailable, ReadOnlyMemory<byte> payload)
    {
        await spaceAvailable;
        await AppendAsync(payload);
    }

    private unsafe void Loop()
    {
        IoUring ring;
        try
        {
            ring = new IoUring(RingEntries);
        }
        catch (IOException e)
        {
            _ringReady.TrySetException(e);
            return;
        }
        try
        {
            if (_registerBuffer)
            {
                try
                {
                    ring.RegisterBuffers([((nint)_staging, StagingBytes)]);
                    _fixedBuffer = true;
                }
                catch (IOException)
                {
                    // ENOMEM: the memlock limit is below the staging buffer; plain writes then (counter writeFixed 0).
                }
            }
            _wakeup = _mode == UringRound.TwoSyncs ? new IoUringWakeup(WakeTag) : null;
        }
        catch (IOException e)
        {
            ring.Dispose();
            _ringReady.TrySetException(e);
            return;
        }
        _ringReady.TrySetResult(ring.SetupFlags);
        try
        {
            using (ring)
            {
                try
                {
                    Run(ring);
                }
                catch (Exception e) when (e is IOException or InvalidOperationException)
                {
                    Fault(e); // a failed write, sync or fallocate, or a broken invariant, faults the engine
                }
                _wakeup?.Release(); // the armed read completes, so disposing the ring (which waits for it) ends
            }
            _wakeup?.Dispose();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            Fault(e); // nothing escapes the loop thread: an unhandled exception there would end the process
        }
    }

    private void Run(IoUring ring)
    {
        Span<IoUringCompletion> completions = stackalloc IoUringCompletion[RingEntries];
        while (true)
        {
            bool canSubmit = _writingSequence < 0 && _pending.Count < SyncsInFlightMax;
            int end = 0;
            TaskCompletionSource? round = null;
            lock (_gate)
            {
                bool staged = _filled > _writtenInBuffer;
                if (_pending.Count == 0 && !staged)
                {
                    if (_closing)
                    {
                        return; // everything staged is durable
                    }
                    _loopWaiting = true;
                    Monitor.Wait(_gate);
                    continue;
                }
                if (canSubmit && staged)
                {
                    end = _filled;
                    round = _round;
                    _round = NewCompletion();
                }
                else if (canSubmit && _wakeup is not null)
                {
                    // Only syncs in flight and nothing staged: sleep in the ring, and let the next append wake us.
                    _loopInRing = _wakeup.TryArm(ring);
                }
            }
            if (round is not null)
            {
                SubmitRound(ring, end, round);
            }
            // One enter submits the pair (if any) and sleeps until completions arrive: no overlap, the round's write
            // and sync; overlap, whichever completes first (or a wake-up), after which the loop decides again.
            int waitFor = _mode == UringRound.TwoSyncs ? 1 : ring.InFlight + ring.Prepared;
            _ = ring.SubmitAndWait(waitFor);
            Interlocked.Increment(ref _enters);
            int count = ring.Reap(completions);
            if (_wakeup is not null)
            {
                lock (_gate)
                {
                    _loopInRing = false; // awake: appenders need not signal until the loop sleeps in the ring again
                }
            }
            for (int i = 0; i < count; i++)
            {
                if (_wakeup?.TryConsume(completions[i]) != true)
                {
                    Complete(completions[i]);
                }
            }
        }
    }

    private unsafe void SubmitRound(IoUring ring, int end, TaskCompletionSource round)
    {
        // Round up to whole blocks: end 5,000 → 8,192 bytes, so the block [4,096, 8,192) goes out padded.
        int writeBytes = (end + BlockBytes - 1) / BlockBytes * BlockBytes;
        long sequence = _nextSequence++;
        ulong writeTag = WriteTag | (ulong)sequence;
        bool prepared = (_mode, _fixedBuffer) switch
        {
            (UringRound.DsyncWrite, true) => ring.TryPrepareWriteFixed(_fd, _staging, writeBytes, _blockStart, 0,
                writeTag, linkNext: false, IoUringNative.RwfDsync),
            (UringRound.DsyncWrite, false) => ring.TryPrepareWrite(_fd, _staging, writeBytes, _blockStart,
                writeTag, linkNext: false, IoUringNative.RwfDsync),
            _ => ring.TryPrepareWriteThenDataSync(_fd, _staging, writeBytes, _blockStart, writeTag,
                SyncTag | (ulong)sequence, _fixedBuffer ? (ushort)0 : null, onWorker: _mode == UringRound.WorkerPair),
        };
        if (!prepared)
        {
            throw new InvalidOperationException("invariant: the ring has room for every pair the loop allows in flight");
        }
        _pending.Enqueue(new PendingRound(sequence, end, writeBytes, round));
        _writingSequence = sequence;
    }

    private void Complete(IoUringCompletion completion)
    {
        long sequence = (long)(completion.UserData & SequenceMask);
        if ((completion.UserData & ~SequenceMask) == WriteTag)
        {
            PendingRound round = default;
            foreach (PendingRound candidate in _pending) // at most two
            {
                if (candidate.Sequence == sequence)
                {
                    round = candidate;
                }
            }
            completion.ThrowIfFailed("io_uring write", $"{round.WriteBytes} bytes at {_blockStart}");
            if (completion.Result != round.WriteBytes || sequence != _writingSequence)
            {
                throw new IOException($"io_uring write: {completion.Result} of {round.WriteBytes} bytes at {_blockStart} (round {sequence})");
            }
            _writingSequence = -1;
            Interlocked.Add(ref _bytesWritten, round.WriteBytes);
            Advance(round.End); // no write in flight now: the buffer may move
            if (_mode == UringRound.DsyncWrite)
            {
                CompleteDurable(sequence); // an RWF_DSYNC write completes once durable
            }
            return;
        }
        completion.ThrowIfFailed("io_uring fdatasync", $"fd {_fd}");
        CompleteDurable(sequence);
    }

    /// <summary>Rounds up to <paramref name="sequence"/> are durable: complete them, oldest first.</summary>
    private void CompleteDurable(long sequence)
    {
        Interlocked.Increment(ref _syncs);
        // Sync k started after write k completed, which was after every earlier write: rounds ≤ k are durable.
        while (_pending.TryPeek(out PendingRound oldest) && oldest.Sequence <= sequence)
        {
            _ = _pending.Dequeue();
            oldest.Round.TrySetResult(); // never under the lock; continuations go to the thread pool
        }
    }

    /// <summary>After a completed write: keep the partial last block at the buffer's front, move the file position.</summary>
    private unsafe void Advance(int end)
    {
        int doneBytes = end / BlockBytes * BlockBytes; // end 5,000 → 4,096: bytes [4,096, 5,000) are the partial block kept
        TaskCompletionSource? spaceAvailable;
        lock (_gate)
        {
            int keep = _filled - doneBytes;
            if (keep < end - doneBytes || end - doneBytes >= BlockBytes)
            {
                throw new InvalidOperationException(
                    $"invariant: staged {_filled} B, round end {end} B, block-aligned part {doneBytes} B");
            }
            Buffer.MemoryCopy(_staging + doneBytes, _staging, StagingBytes, keep);
            NativeMemory.Clear(_staging + keep, (nuint)doneBytes);
            _filled = keep;
            _writtenInBuffer = end - doneBytes;
            spaceAvailable = _spaceAvailable;
            _spaceAvailable = null;
        }
        spaceAvailable?.TrySetResult();
        _blockStart += doneBytes;
        if (_blockStart + StagingBytes <= _fileEnd)
        {
            return;
        }
        if (_preparation == FilePreparation.PreZeroed)
        {
            _blockStart = 0;
            Interlocked.Increment(ref _wraps);
            return;
        }
        MinimalLoopFile.Allocate(_fd, _fileEnd, AllocateStepBytes);
        _fileEnd += AllocateStepBytes;
        Interlocked.Increment(ref _allocations);
    }

    private void Fault(Exception e)
    {
        TaskCompletionSource filling;
        TaskCompletionSource? spaceAvailable;
        lock (_gate)
        {
            _fault = e;
            filling = _round;
            spaceAvailable = _spaceAvailable;
            _spaceAvailable = null;
        }
        while (_pending.TryDequeue(out PendingRound round))
        {
            round.Round.TrySetException(e);
        }
        filling.TrySetException(e);
        spaceAvailable?.TrySetResult();
    }

    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_closing)
            {
                return ValueTask.CompletedTask;
            }
            _closing = true;
            _loopWaiting = false;
            Monitor.Pulse(_gate);
        }
        if (!_loop.Join(s_stopWaitMax))
        {
            throw new TimeoutException($"the io_uring loop did not stop within {s_stopWaitMax}");
        }
        Release();
        return ValueTask.CompletedTask;
    }

    private unsafe void Release()
    {
        MinimalLoopFile.CloseFile(_fd);
        NativeMemory.AlignedFree(_staging);
    }

    private static TaskCompletionSource NewCompletion() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private readonly record struct PendingRound(long Sequence, int End, int WriteBytes, TaskCompletionSource Round);
}

/// <summary>Registers <see cref="MinimalUringEngine"/> with one round mode.</summary>
internal sealed class MinimalUringFactory(string name, UringRound mode, bool registerBuffer) : IEngineFactory
{
    public string Name => name;

    public string Settings =>
        "the minimal loop (pre-zeroed ring file, same staging buffer and lock) with io_uring instead of pwrite + " +
        "fdatasync: each round one " + (registerBuffer ? "WRITE_FIXED (staging buffer registered once)" : "WRITE") +
        (mode == UringRound.DsyncWrite
            ? " with RWF_DSYNC (durable on completion, no separate sync)"
            : " linked (IOSQE_IO_LINK) to an FSYNC(DATASYNC)") +
        (mode == UringRound.WorkerPair ? ", the write issued on an io-wq worker (IOSQE_ASYNC)" : "") +
        " in one io_uring_enter; ring setup flags " +
        IoUringSupport.Probe() switch
        {
            { IsSupported: true } p => p.SetupFlags.ToString(),
            { Reason: var reason } => $"unavailable ({reason})",
        } + "; " +
        (mode != UringRound.TwoSyncs
            ? "one round in flight, the enter that submits it waits for its completions"
            : "the next pair is submitted when the previous write completed, up to 2 syncs in flight; completions reaped in batches");

    public bool IsDurable => true;

    public IEngine Open(string directory, EngineContext context) => OperatingSystem.IsLinux()
        ? new MinimalUringEngine(directory, FilePreparation.PreZeroed, mode, registerBuffer, context.MinimalLoopFileBytes)
        : throw new PlatformNotSupportedException("io_uring is a Linux interface");
}
