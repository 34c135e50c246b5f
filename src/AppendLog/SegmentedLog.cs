using AppendLog.Appender;
using AppendLog.Io;
using AppendLog.Segments;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AppendLog;

/// <summary>
/// A durable, segmented, append-only log in one directory. Appends are acknowledged only when durable (written and
/// covered by a completed fdatasync); offsets are dense and start at 0; readers see only durable records.
/// Thread-safe: any number of tasks may append and read at once.
/// </summary>
/// <remarks>
/// Watermarks: <see cref="StartOffset"/> ≤ <see cref="DurableEndOffset"/> ≤ <see cref="EndOffset"/>. Offsets in
/// [<see cref="StartOffset"/>, <see cref="DurableEndOffset"/>) are readable; [<see cref="DurableEndOffset"/>,
/// <see cref="EndOffset"/>) are accepted but not yet durable.
/// </remarks>
public sealed partial class SegmentedLog : IAsyncDisposable
{
    private readonly IStorage _storage;
    private readonly LogOptions _options;
    private readonly IDisposable _directoryLock;
    private readonly List<Segment> _segments;
    private readonly LogWriter _writer;
    private readonly PendingAppends _pending;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LogBufferPool _pool;
    private readonly BatchCache _batchCache;

    /// <summary>
    /// Disk reads of hot-tail batches in progress, by (content key, position): a reader that misses a batch another is
    /// reading waits for that read and takes the batch from the cache (<see cref="Cursor"/>).
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(long ContentKey, long Position), TaskCompletionSource> _hotTailReads = new();
    private readonly ReadFileCache _readFiles;
    private int _disposed;

    private SegmentedLog(IStorage storage, LogOptions options, IDisposable directoryLock, List<Segment> segments, LogWriter writer, bool isDirect)
    {
        _storage = storage;
        _options = options;
        _directoryLock = directoryLock;
        _segments = segments;
        _writer = writer;
        _pending = new PendingAppends(writer);
        _time = options.TimeProvider ?? TimeProvider.System;
        _logger = options.LoggerFactory?.CreateLogger<SegmentedLog>() ?? NullLogger<SegmentedLog>.Instance;
        _pool = options.BufferPool ?? LogBufferPool.Shared;
        _batchCache = options.BatchCache ?? BatchCache.Shared;
        _readFiles = options.ReadFiles ?? new ReadFileCache(ReadFileCache.DefaultMaximumOpenFiles);
        writer.SegmentRemoved = _readFiles.Forget;
        writer.JoinDescriptorBudget();
        IsDirectIo = isDirect;
        _writer.SegmentSealed = OnSegmentSealed;
        ReportOpened();
    }

    /// <summary>The log's directory.</summary>
    public string Directory => _options.Directory;

    /// <summary>The options the log was opened with.</summary>
    public LogOptions Options => _options;

    /// <summary>
    /// True when segment files bypass the page cache (O_DIRECT); false when the file system refused it and the log
    /// fell back to buffered writes followed by fdatasync (the durability contract holds either way).
    /// </summary>
    public bool IsDirectIo { get; }

    /// <summary>The first offset still in the log.</summary>
    public long StartOffset
    {
        get
        {
            lock (_writer.SyncRoot)
            {
                return _segments[0].BaseOffset;
            }
        }
    }

    /// <summary>The offset the next append gets (one past the last accepted record).</summary>
    public long EndOffset => _writer.NextOffset;

    /// <summary>One past the last durable record: every offset below it survives a crash.</summary>
    public long DurableEndOffset => _writer.DurableOffset;

    /// <summary>The number of segment files.</summary>
    public int SegmentCount
    {
        get
        {
            lock (_writer.SyncRoot)
            {
                return _segments.Count;
            }
        }
    }

    /// <summary>
    /// Flushes what was accepted, waits for every write and sync to finish, and closes the files. Appends still
    /// pending complete when durable, or fail with <see cref="LogFaultedException"/> if the log is faulted;
    /// none is left waiting. Idempotent.
    /// </summary>
    /// <returns>A task that completes when the log is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            await StopCompactionAsync().ConfigureAwait(false);
            await _writer.CloseAsync().ConfigureAwait(false);
        }
        finally
        {
            Segment[] segments;
            lock (_writer.SyncRoot)
            {
                segments = _segments.ToArray();
            }

            _readFiles.ForgetAll(segments);
            _writer.LeaveDescriptorBudget();

            ReportClosed();
            _directoryLock.Dispose();
        }
    }

    /// <summary>Returns this log's buffers to the pool when it has been idle for <paramref name="idleFor"/> (LogManager housekeeping).</summary>
    internal bool ReleaseIdleBuffers(TimeSpan idleFor) => Volatile.Read(ref _disposed) == 0 && _writer.ReleaseIdleBuffers(idleFor);

    /// <summary>Gives back the space reserved ahead of the data when idle for <paramref name="idleFor"/> (LogManager housekeeping).</summary>
    internal bool TrimIdleReservation(TimeSpan idleFor) => Volatile.Read(ref _disposed) == 0 && _writer.TrimIdleReservation(idleFor);

    /// <summary>Closes the active segment's handle when idle for <paramref name="idleFor"/> (LogManager housekeeping).</summary>
    internal bool ReleaseIdleFile(TimeSpan idleFor) => Volatile.Read(ref _disposed) == 0 && _writer.ReleaseIdleFile(idleFor);

    /// <summary>Completed sync rounds (each one fdatasync per file with unsynced data).</summary>
    internal long SyncCount => _writer.SyncCount;

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
