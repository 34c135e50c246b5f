using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace AppendLog.LoadGen.Engines;

/// <summary>How the minimal loop's file is laid out before the run: where its writes land matters (PEERS.md).</summary>
internal enum FilePreparation
{
    /// <summary>
    /// The whole file is written with zeros (O_DIRECT) and synced at open; the loop then writes into blocks that
    /// are already written, and wraps to position 0 when it reaches the end: a ring, so every write of the run
    /// lands in written blocks whatever the run's length. Nothing reads the file, so the overwritten records
    /// are not missed; each is still acknowledged only after its own write and fdatasync.
    /// </summary>
    PreZeroed,

    /// <summary>
    /// The file is fallocated (unwritten extents) at open and extended by further fallocate calls, on the loop
    /// thread, as the write position approaches its end; it never wraps, so every write lands in fresh,
    /// unwritten space and each fdatasync has extents to convert.
    /// </summary>
    Fallocated,
}

/// <summary>
/// The floor of issue 14 and PEERS.md: the least a .NET program needs for group-committed durable appends.
/// Appenders copy their record into one 4 KiB-aligned staging buffer under a lock and await the round's shared
/// <see cref="TaskCompletionSource"/>; one dedicated thread repeatedly takes everything staged, writes it with
/// one O_DIRECT pwrite (the last, partial block padded to 4 KiB and written again, completed, by the next
/// round), calls fdatasync, and completes the round. No segments, no CRC, no pool; a write never overlaps a
/// sync. Continuations run asynchronously, never on the loop thread.
/// </summary>
/// <remarks>
/// Staging buffer layout: bytes [0, _filled) are records whose file position is _blockStart + index;
/// [0, _durableInBuffer) are already durable (the head of the partial block a previous round wrote);
/// [_filled, capacity) are zero, so padding never carries stale bytes. While the loop writes, appenders keep
/// copying behind the taken end: those bytes may go out as padding, unacknowledged, and are written again.
/// A failed pwrite or fdatasync faults the instance (no retry: after a failed sync the page state is unknown).
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed class MinimalLoopEngine : IEngine
{
    private const int BlockBytes = MinimalLoopSizes.BlockBytes;
    private const int StagingBytes = MinimalLoopSizes.StagingBytes;
    private const long AllocateStepBytes = MinimalLoopSizes.AllocateStepBytes;

    private static readonly TimeSpan s_stopWaitMax = TimeSpan.FromSeconds(30);

    private readonly object _gate = new(); // a monitor, not System.Threading.Lock: the loop sleeps on it
    private readonly int _fd;
    private readonly unsafe byte* _staging;
    private readonly FilePreparation _preparation;
    private readonly long _fileBytes;
    private readonly Thread _loop;

    // Guarded by _gate.
    private int _filled;
    private int _durableInBuffer;
    private TaskCompletionSource _round = NewCompletion();
    private TaskCompletionSource? _spaceAvailable;
    private bool _loopWaiting;
    private bool _closing;
    private Exception? _fault;

    // The loop thread's own: the file position of staging byte 0, and the end of the file's prepared space.
    private long _blockStart;
    private long _fileEnd;
    private long _syncs;
    private long _bytesWritten;
    private long _wraps;
    private long _allocations;

    public unsafe MinimalLoopEngine(string directory, FilePreparation preparation, long fileBytes)
    {
        if (fileBytes < 2L * StagingBytes || fileBytes % BlockBytes != 0)
        {
            throw new ArgumentOutOfRangeException(
                nameof(fileBytes), fileBytes, $"needs a multiple of {BlockBytes} B of at least {2 * StagingBytes} B");
        }
        _preparation = preparation;
        _fileBytes = fileBytes;
        _fd = MinimalLoopFile.OpenDirect(Path.Combine(directory, "minimal-loop.log"));
        _staging = (byte*)NativeMemory.AlignedAlloc(StagingBytes, BlockBytes);
        NativeMemory.Clear(_staging, StagingBytes);
        try
        {
            Prepare();
        }
        catch (Exception e) when (e is IOException or PlatformNotSupportedException)
        {
            NativeMemory.AlignedFree(_staging);
            MinimalLoopFile.CloseFile(_fd);
            throw;
        }
        _loop = new Thread(Loop) { IsBackground = true, Name = "minimal-loop" };
        _loop.Start();
    }

    /// <summary>Lays the file out as chosen, durably, before any append: outside the measured window.</summary>
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
                // The staging buffer is all zeros here; _fileBytes is a multiple of 4 KiB, so every write is aligned.
                MinimalLoopFile.WriteExactly(_fd, _staging, (int)Math.Min(StagingBytes, _fileBytes - position), position);
            }
        }
        MinimalLoopFile.DataSync(_fd);
    }

    public long? SyncCalls => Interlocked.Read(ref _syncs);

    public IReadOnlyDictionary<string, long> Counters => new Dictionary<string, long>
    {
        ["bytesWritten"] = Interlocked.Read(ref _bytesWritten),
        ["wraps"] = Interlocked.Read(ref _wraps),
        ["fallocates"] = Interlocked.Read(ref _allocations),
    };

    public unsafe ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
    {
        if (payload.Length > StagingBytes - BlockBytes)
        {
            throw new ArgumentOutOfRangeException(
                nameof(payload), payload.Length, $"larger than the staging limit of {StagingBytes - BlockBytes} B");
        }
        Task spaceAvailable;
        lock (_gate)
        {
            if (_fault is not null)
            {
                return ValueTask.FromException(_fault);
            }
            ObjectDisposedException.ThrowIf(_closing, this);
            if (payload.Length <= StagingBytes - _filled)
            {
                payload.Span.CopyTo(new Span<byte>(_staging + _filled, payload.Length));
                _filled += payload.Length;
                if (_loopWaiting)
                {
                    _loopWaiting = false;
                    Monitor.Pulse(_gate);
                }
                return new ValueTask(_round.Task);
            }
            _spaceAvailable ??= NewCompletion();
            spaceAvailable = _spaceAvailable.Task;
        }
        return AppendAfterSpaceAsync(spaceAvailable, payload);
    }

    private async ValueTask AppendAfterSpaceAsync(Task spaceAvailable, ReadOnlyMemory<byte> payload)
    {
        await spaceAvailable;
        await AppendAsync(payload);
    }

    private unsafe void Loop()
    {
        while (true)
        {
            int end;
            TaskCompletionSource round;
            lock (_gate)
            {
                while (_filled == _durableInBuffer && !_closing)
                {
                    _loopWaiting = true;
                    Monitor.Wait(_gate);
                }
                if (_filled == _durableInBuffer)
                {
                    return; // closing, and everything staged is durable
                }
                end = _filled;
                round = _round;
                _round = NewCompletion();
            }
            // Round up to whole blocks: end 5,000 → 8,192 bytes, so the block [4,096, 8,192) goes out padded.
            int writeBytes = (end + BlockBytes - 1) / BlockBytes * BlockBytes;
            try
            {
                MinimalLoopFile.WriteExactly(_fd, _staging, writeBytes, _blockStart);
                MinimalLoopFile.DataSync(_fd);
            }
            catch (IOException e)
            {
                Fault(round, e);
                return;
            }
            Interlocked.Increment(ref _syncs);
            Interlocked.Add(ref _bytesWritten, writeBytes);
            round.TrySetResult(); // never under the lock; continuations go to the thread pool
            try
            {
                Advance(end);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                Fault(null, e); // a failed fallocate or a broken invariant faults the engine, not the process
                return;
            }
        }
    }

    /// <summary>After a durable round: keep the partial last block at the buffer's front, move the file position.</summary>
    private unsafe void Advance(int end)
    {
        // Round down to whole blocks: end 5,000 → 4,096; bytes [4,096, 5,000) are the partial block kept.
        int doneBytes = end / BlockBytes * BlockBytes;
        TaskCompletionSource? spaceAvailable;
        lock (_gate)
        {
            int keep = _filled - doneBytes;
            // Pair of checks on the buffer's chain: what the round took is still staged, and the kept head lies
            // inside the one partial block.
            if (keep < end - doneBytes || end - doneBytes >= BlockBytes)
            {
                throw new InvalidOperationException(
                    $"invariant: staged {_filled} B, round end {end} B, block-aligned part {doneBytes} B");
            }
            Buffer.MemoryCopy(_staging + doneBytes, _staging, StagingBytes, keep); // overlapping ranges are fine
            NativeMemory.Clear(_staging + keep, (nuint)doneBytes); // restore "zero beyond _filled"
            _filled = keep;
            _durableInBuffer = end - doneBytes;
            spaceAvailable = _spaceAvailable;
            _spaceAvailable = null;
        }
        spaceAvailable?.TrySetResult();
        _blockStart += doneBytes;
        if (_blockStart + StagingBytes <= _fileEnd)
        {
            return; // the next write, whatever it holds, fits below the end
        }
        if (_preparation == FilePreparation.PreZeroed)
        {
            _blockStart = 0; // the kept partial block is written again at the ring's start
            Interlocked.Increment(ref _wraps);
            return;
        }
        MinimalLoopFile.Allocate(_fd, _fileEnd, AllocateStepBytes);
        _fileEnd += AllocateStepBytes;
        Interlocked.Increment(ref _allocations);
    }

    private void Fault(TaskCompletionSource? round, Exception e)
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
        round?.TrySetException(e);
        filling.TrySetException(e);
        spaceAvailable?.TrySetResult(); // waiters retry and see the fault
    }

    public unsafe ValueTask DisposeAsync()
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
        // The loop makes what is staged durable, then exits; a sync that never returns must not hang the run.
        if (!_loop.Join(s_stopWaitMax))
        {
            throw new TimeoutException($"the minimal loop did not stop within {s_stopWaitMax}"); // buffer leaked, not freed under it
        }
        MinimalLoopFile.CloseFile(_fd);
        NativeMemory.AlignedFree(_staging);
        return ValueTask.CompletedTask;
    }

    private static TaskCompletionSource NewCompletion() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>The minimal loop's sizes, apart from the Linux-only engine so the settings line can name them anywhere.</summary>
internal static class MinimalLoopSizes
{
    /// <summary>O_DIRECT granularity assumed for writes: 4 KiB, the page size and ext4's block size here.</summary>
    public const int BlockBytes = 4096;

    /// <summary>Staging capacity; appenders wait (asynchronously) when it is full. A record must fit with a block.</summary>
    public const int StagingBytes = 4 << 20;

    /// <summary>Fallocated file: how far each later fallocate extends the allocation.</summary>
    public const long AllocateStepBytes = 64L << 20;
}

/// <summary>Registers <see cref="MinimalLoopEngine"/> with one file preparation.</summary>
internal sealed class MinimalLoopFactory(string name, FilePreparation preparation) : IEngineFactory
{
    public string Name => name;

    public string Settings =>
        "the floor (issue 14): appenders copy into one 4 KiB-aligned staging buffer " +
        $"({MinimalLoopSizes.StagingBytes >> 20} MiB) under a lock and await the round's TaskCompletionSource " +
        "(continuations asynchronous); one thread: one O_DIRECT pwrite of everything staged (tail padded to 4 KiB, " +
        "rewritten next round), fdatasync, complete; never overlaps a write with a sync; no segments, no CRC; file " +
        (preparation == FilePreparation.PreZeroed
            ? "pre-zeroed at open (--minimal-loop-file-mib, O_DIRECT zeros + fdatasync), written as a ring (wraps counted)"
            : $"fallocated at open (--minimal-loop-file-mib), extended by {MinimalLoopSizes.AllocateStepBytes >> 20} MiB " +
              "fallocate steps on the loop thread, never wraps");

    public bool IsDurable => true;

    public IEngine Open(string directory, EngineContext context) => OperatingSystem.IsLinux()
        ? new MinimalLoopEngine(directory, preparation, context.MinimalLoopFileBytes)
        : throw new PlatformNotSupportedException("the minimal loop uses Linux system calls (O_DIRECT, fdatasync)");
}
