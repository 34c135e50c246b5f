namespace AppendLog;

/// <summary>Immutable options of a <see cref="LogManager"/>, validated when it opens.</summary>
public sealed record LogManagerOptions
{
    /// <summary>The root directory; each log lives in a subdirectory named after it. Required.</summary>
    public string RootDirectory { get; init; } = "";

    /// <summary>
    /// The options every log is opened with (its <see cref="LogOptions.Directory"/> is replaced by the log's own, and
    /// its <see cref="LogOptions.BufferPool"/> by <see cref="BufferPool"/>). Null for the defaults.
    /// </summary>
    public LogOptions? LogDefaults { get; init; }

    /// <summary>The buffer pool all logs share; <see cref="LogBufferPool.Shared"/> when null.</summary>
    public LogBufferPool? BufferPool { get; init; }

    /// <summary>The batch cache all logs share (one global budget); <see cref="BatchCache.Shared"/> when null.</summary>
    public BatchCache? BatchCache { get; init; }

    /// <summary>
    /// The most read handles of segment files kept open over all logs: when a reader needs another, the least recently
    /// used one no reader holds is closed (it is reopened on demand). From 1 to 1,000,000; 256 by default. Read handles
    /// also count against <see cref="MaximumOpenFiles"/>.
    /// </summary>
    public int MaximumOpenReadFiles { get; init; } = 256;

    /// <summary>
    /// The most file descriptors the manager's logs keep open between operations, over all logs: read handles of
    /// segments and the write handles of active segments. Before one more is opened, idle ones are closed (the least
    /// recently used read handle first, then the active segment of a log with nothing in flight, chosen least recently
    /// used first) and reopened on demand, so ten thousand logs fit in a thousand descriptors. Handles in use (a read in
    /// progress, a write or sync in flight) are never closed: while all are in use, the count passes the cap by those.
    /// The logs take no lock file each: the manager holds one lock on <see cref="RootDirectory"/>.
    /// <para>
    /// Null (the default) takes half of the process's descriptor limit (<c>ulimit -n</c>, RLIMIT_NOFILE) when the
    /// manager is created, less the reserve below; give several managers in one process explicit values that add up
    /// to less than the limit. A value from 16 to 1,000,000 is checked against the limit when the manager is created:
    /// the cap plus a reserve for files opened briefly (64, plus 2 per <see cref="MaximumConcurrentOpens"/>, plus 2 per
    /// I/O thread) must fit, or <see cref="LogManager.Create"/> throws <see cref="ArgumentOutOfRangeException"/>
    /// rather than letting opens fail later in random places.
    /// </para>
    /// </summary>
    public int? MaximumOpenFiles { get; init; }

    /// <summary>How often housekeeping runs (idle buffer release, retention): 10 ms to 1 hour.</summary>
    public TimeSpan HousekeepingInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A log with no append for this long returns its buffers to the pool, keeping at most 4 KiB.</summary>
    public TimeSpan IdleBufferRelease { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A log with no append for this long gives back the disk space reserved ahead of its data (its active segment is
    /// cut to the data's last 4 KiB block; a prepared next segment is deleted). The next append reserves again, small
    /// first. Default 10 seconds.
    /// </summary>
    public TimeSpan IdleReservationRelease { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How many logs <see cref="LogManager.OpenAsync(IEnumerable{string}, CancellationToken)"/> and
    /// <see cref="LogManager.OpenAllAsync"/> open at the same time (each open reads a few small files; more in
    /// parallel than the disk's queue only adds waiting). From 1 to 1,024; default 64.
    /// </summary>
    public int MaximumConcurrentOpens { get; init; } = 64;

    /// <summary>
    /// When true, the logs share their syncs: whenever at least three of them wait for a sync at once, one syncfs(2) of
    /// the root directory's file system makes all their data durable instead of one fdatasync per log (fewer waiting
    /// run their own fdatasyncs). For many logs appending at once (a thousand partitions) this serves every log with
    /// data waiting for about the price of two fdatasyncs; an acknowledgement still means durable. False by default,
    /// because syncfs also writes back every other program's cached writes on that file system: a process writing
    /// gigabytes through the page cache there would delay the logs' acknowledgements. Use it when the manager's logs
    /// are the file system's main writers. Linux only (elsewhere each log syncs its own files); a log whose directory
    /// is on another file system (a mount point under the root) keeps its own fdatasyncs.
    /// </summary>
    public bool ShareFileSystemSync { get; init; }

    /// <summary>
    /// Internal, for side-by-side measurement (issue 14's I/O loop): the manager's logs hand their writes and
    /// single-segment syncs to io_uring loops (one per core, each log assigned to one) instead of the process's I/O workers. Ignored where io_uring is
    /// unavailable (<c>LogManager.IoEngine</c> says which ran).
    /// </summary>
    internal bool RingIoLoop { get; init; }

    /// <summary>Checks every option; <c>OpenAsync</c>/<c>Create</c> call this, and hosts can call it at startup.</summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it and its rule.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(RootDirectory))
        {
            throw new ArgumentException("LogManagerOptions.RootDirectory is required.", nameof(RootDirectory));
        }

        if (HousekeepingInterval < TimeSpan.FromMilliseconds(10) || HousekeepingInterval > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(nameof(HousekeepingInterval), HousekeepingInterval, "LogManagerOptions.HousekeepingInterval must be from 10 ms to 1 hour.");
        }

        if (MaximumOpenReadFiles < 1 || MaximumOpenReadFiles > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(MaximumOpenReadFiles), MaximumOpenReadFiles, "LogManagerOptions.MaximumOpenReadFiles must be from 1 to 1,000,000.");
        }

        if (MaximumOpenFiles is < 16 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(MaximumOpenFiles), MaximumOpenFiles, "LogManagerOptions.MaximumOpenFiles must be null or from 16 to 1,000,000.");
        }

        if (IdleReservationRelease < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(IdleReservationRelease), IdleReservationRelease, "LogManagerOptions.IdleReservationRelease must not be negative.");
        }

        if (MaximumConcurrentOpens < 1 || MaximumConcurrentOpens > 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaximumConcurrentOpens), MaximumConcurrentOpens, "LogManagerOptions.MaximumConcurrentOpens must be from 1 to 1,024.");
        }

        if (IdleBufferRelease < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(IdleBufferRelease), IdleBufferRelease, "LogManagerOptions.IdleBufferRelease must not be negative.");
        }
    }
}
