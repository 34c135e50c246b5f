namespace AppendLog.LoadGen.Engines;

/// <summary>
/// The hand-written baseline: what a careful application gets from <see cref="FileStream"/> alone.
/// Appenders copy their payload into the batch being filled and await that batch; one flusher thread
/// takes the filled batch, writes it with one <see cref="FileStream.Write(ReadOnlySpan{byte})"/> and calls
/// <see cref="FileStream.Flush(bool)"/> with <c>flushToDisk: true</c> (fsync(2) on Linux), then
/// completes every appender in the batch at once. While one batch is being written and synced the next
/// one fills, so one sync covers everything that arrived during the previous one (group commit).
/// </summary>
/// <remarks>
/// Two batches exist: the one filling and the one the flusher owns; when the filling batch is full,
/// appenders wait (asynchronously) for the flusher to hand back the other one: memory stays bounded at
/// 2 × <see cref="_batchBytesMax"/>. A failed write or sync faults the instance: the batch and every later
/// append fail with the same exception; nothing is retried (after a failed fsync the page state is
/// unknown). No preallocation: PEERS.md measured writes past the end of file to sync faster than writes
/// into fallocated-but-unwritten space on this machine kind.
/// </remarks>
internal sealed class FileStreamGroupCommitEngine : IEngine
{
    /// <summary>Upper bound of one batch; a larger record is rejected.</summary>
    internal const int BatchBytesDefault = 4 << 20;

    // A plain monitor, not System.Threading.Lock: the flusher sleeps with Monitor.Wait on it.
    private readonly object _gate = new();
    private readonly FileStream _stream;
    private readonly Thread _flusher;
    private readonly int _batchBytesMax;
    private Batch _filling;
    private Batch? _spare;
    private TaskCompletionSource? _spaceAvailable;
    private bool _flusherWaiting;
    private bool _closing;
    private Exception? _fault;
    private long _syncCalls;
    private long _batches;
    private long _bytesWritten;

    public FileStreamGroupCommitEngine(string directory, int recordSizeBytes)
    {
        _batchBytesMax = Math.Max(BatchBytesDefault, recordSizeBytes);
        // bufferSize 0: FileStream keeps no buffer of its own, each Write is one write(2) of the whole batch.
        _stream = new FileStream(
            Path.Combine(directory, "filestream.log"), FileMode.CreateNew, FileAccess.Write, FileShare.Read,
            bufferSize: 0, FileOptions.None);
        _filling = new Batch(_batchBytesMax);
        _spare = new Batch(_batchBytesMax);
        _flusher = new Thread(FlushLoop) { IsBackground = true, Name = "filestream-flusher" };
        _flusher.Start();
    }

    public long? SyncCalls => Interlocked.Read(ref _syncCalls);

    public IReadOnlyDictionary<string, long> Counters => new Dictionary<string, long>
    {
        ["batches"] = Interlocked.Read(ref _batches),
        ["bytesWritten"] = Interlocked.Read(ref _bytesWritten),
    };

    public ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
    {
        if (payload.Length > _batchBytesMax)
        {
            throw new ArgumentOutOfRangeException(
                nameof(payload), payload.Length, $"larger than the batch limit of {_batchBytesMax} bytes");
        }
        Task? wait = null;
        lock (_gate)
        {
            if (_fault is not null)
            {
                return ValueTask.FromException(_fault);
            }
            ObjectDisposedException.ThrowIf(_closing, this);
            if (_filling.TryAdd(payload.Span))
            {
                WakeFlusherUnsynchronized();
                return new ValueTask(_filling.Completion.Task);
            }
            _spaceAvailable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            wait = _spaceAvailable.Task;
        }
        return AppendAfterSpaceAsync(wait, payload);
    }

    private async ValueTask AppendAfterSpaceAsync(Task spaceAvailable, ReadOnlyMemory<byte> payload)
    {
        await spaceAvailable;
        await AppendAsync(payload);
    }

    private void WakeFlusherUnsynchronized()
    {
        if (_flusherWaiting)
        {
            _flusherWaiting = false;
            Monitor.Pulse(_gate);
        }
    }

    private void FlushLoop()
    {
        while (true)
        {
            Batch batch;
            TaskCompletionSource? spaceAvailable;
            lock (_gate)
            {
                while (_filling.Length == 0 && !_closing)
                {
                    _flusherWaiting = true;
                    Monitor.Wait(_gate);
                }
                if (_filling.Length == 0)
                {
                    return; // closing and nothing left to write
                }
                if (_spare is null)
                {
                    throw new InvalidOperationException("invariant: the flusher owns the spare batch between flushes");
                }
                batch = _filling;
                _filling = _spare;
                _spare = null;
                spaceAvailable = _spaceAvailable;
                _spaceAvailable = null;
            }
            spaceAvailable?.TrySetResult(); // never complete a waiter under the lock
            if (!WriteAndSync(batch))
            {
                return;
            }
            lock (_gate)
            {
                batch.Reset();
                _spare = batch;
            }
        }
    }

    private bool WriteAndSync(Batch batch)
    {
        try
        {
            _stream.Write(batch.Written);
            _stream.Flush(flushToDisk: true);
            Interlocked.Increment(ref _syncCalls);
            Interlocked.Increment(ref _batches);
            Interlocked.Add(ref _bytesWritten, batch.Length);
            batch.Completion.TrySetResult();
            return true;
        }
        catch (IOException e)
        {
            Fault(batch, e);
            return false;
        }
        catch (UnauthorizedAccessException e)
        {
            Fault(batch, e);
            return false;
        }
    }

    private void Fault(Batch batch, Exception e)
    {
        TaskCompletionSource? spaceAvailable;
        Batch filling;
        lock (_gate)
        {
            _fault = e;
            spaceAvailable = _spaceAvailable;
            _spaceAvailable = null;
            filling = _filling;
        }
        batch.Completion.TrySetException(e);
        filling.Completion.TrySetException(e);
        spaceAvailable?.TrySetResult(); // waiters retry and see the fault
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
            WakeFlusherUnsynchronized();
        }
        // The flusher writes what is left, then exits; a sync that never returns must not hang the run.
        if (!_flusher.Join(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException("the filestream flusher did not stop within 30 s");
        }
        _stream.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>A buffer of whole records and the completion that every record in it awaits.</summary>
    private sealed class Batch(int capacityBytes)
    {
        private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(capacityBytes, pinned: true);

        public int Length { get; private set; }

        public TaskCompletionSource Completion { get; private set; } = NewCompletion();

        public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, Length);

        public bool TryAdd(ReadOnlySpan<byte> payload)
        {
            if (payload.Length > _buffer.Length - Length)
            {
                return false;
            }
            payload.CopyTo(_buffer.AsSpan(Length));
            Length += payload.Length;
            return true;
        }

        public void Reset()
        {
            Length = 0;
            Completion = NewCompletion();
        }

        // Continuations run on the thread pool, not on the flusher: the next write must not wait for them.
        private static TaskCompletionSource NewCompletion() =>
            new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>Registers <see cref="FileStreamGroupCommitEngine"/>.</summary>
internal sealed class FileStreamGroupCommitFactory : IEngineFactory
{
    public string Name => "filestream";

    public string Settings =>
        "FileStream(bufferSize 0) + one flusher thread: Write(batch) then Flush(flushToDisk: true) = fsync; " +
        $"double-buffered group commit, batch ≤ {FileStreamGroupCommitEngine.BatchBytesDefault >> 20} MiB, " +
        "no preallocation, page cache (no O_DIRECT)";

    public bool IsDurable => true;

    public IEngine Open(string directory, EngineContext context) =>
        new FileStreamGroupCommitEngine(directory, context.RecordSizeBytes);
}
