using AppendLog.Buffers;
using AppendLog.Diagnostics;

namespace AppendLog;

/// <summary>
/// The pool of aligned I/O buffers shared by every log that uses it, with a global byte budget. A log borrows
/// chunks as it needs them, so the busiest log holds the most; when the budget is spent, appends wait
/// (backpressure) until another log's chunks are written and returned; the pool never allocates past its
/// budget. Memory is allocated lazily, 4 KiB-aligned (O_DIRECT), reused, and freed by <see cref="Dispose"/>.
/// </summary>
public sealed class LogBufferPool : IDisposable
{
    /// <summary>The default chunk size in bytes (64 KiB); see README, "Choosing the defaults".</summary>
    public const int DefaultChunkSize = 64 * 1024;

    /// <summary>The default budget of <see cref="Shared"/> in bytes (256 MiB).</summary>
    public const long DefaultBudgetBytes = 256L * 1024 * 1024;

    private readonly Lock _lock = new();
    private readonly Stack<AlignedChunk> _free = new();
    private readonly LinkedList<RentWaiter> _waiters = new();
    private long _allocatedBytes;
    private long _rentedBytes;
    private long _readOverflowBytes;
    private bool _disposed;

    /// <summary>Creates a pool.</summary>
    /// <param name="budgetBytes">The most memory the pool may hold, in bytes; at least one chunk.</param>
    /// <param name="chunkSize">The size of each buffer in bytes: a multiple of 4096, from 4 KiB to 8 MiB.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range or misaligned.</exception>
    public LogBufferPool(long budgetBytes = DefaultBudgetBytes, int chunkSize = DefaultChunkSize)
    {
        if (chunkSize < Alignment.BlockSize || chunkSize > 8 * 1024 * 1024 || !Alignment.IsAligned(chunkSize))
        {
            throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "The chunk size must be a multiple of 4096 between 4 KiB and 8 MiB.");
        }

        if (budgetBytes < chunkSize)
        {
            throw new ArgumentOutOfRangeException(nameof(budgetBytes), budgetBytes, "The budget must hold at least one chunk.");
        }

        BudgetBytes = budgetBytes;
        ChunkSize = chunkSize;
    }

    /// <summary>The process-wide pool used when <see cref="LogOptions.BufferPool"/> is not set.</summary>
    public static LogBufferPool Shared { get; } = new();

    /// <summary>The budget in bytes.</summary>
    public long BudgetBytes { get; }

    /// <summary>The size of each chunk in bytes.</summary>
    public int ChunkSize { get; }

    /// <summary>Bytes currently lent to logs. Zero when every log using the pool is disposed.</summary>
    public long RentedBytes
    {
        get
        {
            lock (_lock)
            {
                return _rentedBytes;
            }
        }
    }

    /// <summary>Bytes of native memory the pool holds (rented or free).</summary>
    public long AllocatedBytes
    {
        get
        {
            lock (_lock)
            {
                return _allocatedBytes;
            }
        }
    }

    /// <summary>
    /// Bytes of read buffers allocated beyond the budget so far (cumulative): readers never wait for buffers, so when
    /// the budget is spent they allocate short-lived chunks outside it. Steadily growing means the budget is too small.
    /// </summary>
    public long ReadOverflowBytes => Interlocked.Read(ref _readOverflowBytes);

    /// <summary>The number of appenders waiting for a chunk because the budget is spent.</summary>
    public int WaitingRenters
    {
        get
        {
            lock (_lock)
            {
                return _waiters.Count;
            }
        }
    }

    /// <summary>Frees the memory of the chunks not in use; chunks still rented are freed when returned.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            while (_free.TryPop(out var chunk))
            {
                _allocatedBytes -= chunk.Size;
                chunk.Free();
            }
        }
    }

    /// <summary>
    /// Frees free chunks until the pool holds at most <paramref name="retainBytes"/> more than it lends. The log manager
    /// calls this after idle logs have returned their buffers, so that idle memory goes back to the system.
    /// </summary>
    /// <returns>Bytes freed.</returns>
    internal long Trim(long retainBytes)
    {
        long freed = 0;
        lock (_lock)
        {
            while (_allocatedBytes - _rentedBytes > retainBytes && _free.TryPop(out var chunk))
            {
                _allocatedBytes -= chunk.Size;
                freed += chunk.Size;
                chunk.Free();
            }
        }

        if (freed > 0 && OperatingSystem.IsLinux())
        {
            // 64 KiB aligned blocks come from glibc's heap, which keeps freed memory for reuse; trim hands it back.
            try
            {
                Io.Interop.LibC.MallocTrim(0);
            }
            catch (EntryPointNotFoundException)
            {
                // Not glibc (musl): nothing to trim.
            }
        }

        return freed;
    }

    /// <summary>Rents a zeroed chunk without waiting; false when the budget is spent.</summary>
    internal bool TryRent(out AlignedChunk chunk)
    {
        bool taken;
        chunk = null!;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            taken = _waiters.Count == 0 && TryTakeUnsynchronized(out chunk);
        }

        if (taken)
        {
            // Zeroed outside the pool's lock: the lock is shared by every log of the process, the memset is this
            // caller's alone.
            chunk.Clear();
            return true;
        }

        return false;
    }

    /// <summary>
    /// Rents a chunk for a read without waiting and without zeroing it (the read overwrites what the reader uses); false
    /// when the budget is spent or writers are already waiting for buffers (a reader never jumps their queue).
    /// </summary>
    internal bool TryRentForRead(out AlignedChunk chunk)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_waiters.Count == 0 && TryTakeUnsynchronized(out chunk))
            {
                return true;
            }
        }

        chunk = null!;
        return false;
    }

    /// <summary>
    /// A chunk for a read when <see cref="TryRentForRead"/> failed: allocated outside the budget and freed on return.
    /// Readers never wait for buffers (a reader holding part of a window while waiting for the rest, behind writers
    /// whose chunks stay rented, could wait forever); the overflow is short-lived and counted in
    /// <see cref="ReadOverflowBytes"/>.
    /// </summary>
    internal AlignedChunk RentOutsideBudget()
    {
        Interlocked.Add(ref _readOverflowBytes, ChunkSize);
        return new AlignedChunk(this, ChunkSize) { OutsideBudget = true, IsRented = true };
    }

    /// <summary>Rents a zeroed chunk, waiting (first come, first served) while the budget is spent.</summary>
    /// <exception cref="OperationCanceledException">The wait was cancelled; nothing is rented.</exception>
    internal ValueTask<AlignedChunk> RentAsync(CancellationToken cancellationToken)
    {
        if (TryRent(out var chunk))
        {
            return ValueTask.FromResult(chunk);
        }

        return new ValueTask<AlignedChunk>(WaitForChunkAsync(cancellationToken));
    }

    /// <summary>Returns a chunk: it goes to the longest-waiting renter, or back to the free list.</summary>
    internal void Return(AlignedChunk chunk)
    {
        Invariant.Assert(ReferenceEquals(chunk.Owner, this), "a chunk returns to its own pool");
        if (chunk.OutsideBudget)
        {
            Invariant.Assert(chunk.IsRented, "a chunk is returned once");
            chunk.IsRented = false;
            chunk.Free();
            return;
        }

        RentWaiter? handedTo = null;
        lock (_lock)
        {
            Invariant.Assert(chunk.IsRented, "a chunk is returned once");
            chunk.IsRented = false;
            _rentedBytes -= chunk.Size;
            Invariant.Assert(_rentedBytes >= 0, "rented bytes never go negative");
            if (_disposed)
            {
                _allocatedBytes -= chunk.Size;
                chunk.Free();
                return;
            }

            while (_waiters.First is { } first)
            {
                _waiters.RemoveFirst();
                if (first.Value.TryClaim())
                {
                    handedTo = first.Value;
                    chunk.IsRented = true;
                    _rentedBytes += chunk.Size;
                    break;
                }
            }

            if (handedTo is null)
            {
                _free.Push(chunk);
            }
        }

        if (handedTo is not null)
        {
            // Completed outside the lock; the continuation runs asynchronously (TCS option).
            chunk.Clear();
            handedTo.Complete(chunk);
        }
    }

    private bool TryTakeUnsynchronized(out AlignedChunk chunk)
    {
        if (!_free.TryPop(out chunk!))
        {
            if (_allocatedBytes + ChunkSize > BudgetBytes)
            {
                return false;
            }

            chunk = new AlignedChunk(this, ChunkSize);
            _allocatedBytes += ChunkSize;
        }

        Invariant.Assert(!chunk.IsRented, "a free chunk is not rented");
        chunk.IsRented = true;
        _rentedBytes += chunk.Size;
        Invariant.Assert(_rentedBytes <= BudgetBytes, "the pool never lends past its budget");
        return true;
    }

    private async Task<AlignedChunk> WaitForChunkAsync(CancellationToken cancellationToken)
    {
        var waiter = new RentWaiter();
        LinkedListNode<RentWaiter> node;
        AlignedChunk? taken;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_waiters.Count == 0 && TryTakeUnsynchronized(out taken))
            {
                node = null!;
            }
            else
            {
                taken = null;
                node = _waiters.AddLast(waiter);
            }
        }

        if (taken is not null)
        {
            taken.Clear(); // outside the lock, as in TryRent
            return taken;
        }

        await using var registration = cancellationToken.UnsafeRegister(
            static (state, token) =>
            {
                var (pool, n) = ((LogBufferPool, LinkedListNode<RentWaiter>))state!;
                if (n.Value.TryClaim())
                {
                    lock (pool._lock)
                    {
                        if (n.List is not null)
                        {
                            pool._waiters.Remove(n);
                        }
                    }

                    n.Value.Cancel(token);
                }
            },
            (this, node)).ConfigureAwait(false);
        return await waiter.Task.ConfigureAwait(false);
    }

    private sealed class RentWaiter
    {
        private readonly TaskCompletionSource<AlignedChunk> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _claimed;

        public Task<AlignedChunk> Task => _tcs.Task;

        public bool TryClaim() => Interlocked.Exchange(ref _claimed, 1) == 0;

        public void Complete(AlignedChunk chunk) => _tcs.SetResult(chunk);

        public void Cancel(CancellationToken token) => _tcs.SetCanceled(token);
    }
}
