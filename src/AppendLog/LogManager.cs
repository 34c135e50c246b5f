using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace AppendLog;

/// <summary>
/// Many named logs (for example <c>orders-0</c>, <c>orders-1</c>) under one root directory, sharing one buffer pool,
/// one batch cache (<see cref="LogManagerOptions.BatchCache"/>), one cap on open read handles
/// (<see cref="LogManagerOptions.MaximumOpenReadFiles"/>: cold segments are closed and reopened on demand),
/// the process's I/O threads and one housekeeping timer: logs idle for <see cref="LogManagerOptions.IdleBufferRelease"/>
/// return their buffers to the pool (an idle log then holds at most 4 KiB of data buffers), and retention runs for
/// every open log. One cap covers the descriptors of all its logs (<see cref="LogManagerOptions.MaximumOpenFiles"/>):
/// idle logs hold none. The manager holds an exclusive lock on its root directory for its lifetime (a second manager
/// on the same root, in this process or another, gets <see cref="LogLockedException"/>); its logs take no lock each,
/// and a log opened on its own (<see cref="SegmentedLog.OpenAsync(LogOptions, CancellationToken)"/>) while a manager
/// holds its parent directory is refused, as the manager refuses a log open on its own elsewhere. Thread-safe.
/// </summary>
public sealed class LogManager : IAsyncDisposable
{
    private readonly LogManagerOptions _options;
    private readonly ConcurrentDictionary<string, Lazy<Task<SegmentedLog>>> _logs = new(StringComparer.Ordinal);
    private readonly ITimer _housekeeping;
    private readonly Segments.DescriptorBudget _descriptors;
    private readonly Segments.ReadFileCache _readFiles;
    private readonly Appender.SharedSync? _sharedSync;
    private readonly Appender.IIoExecutor[] _rings = []; // RingIoLoops (Linux only), one per core
    private readonly string? _ringRefusal;
    private int _nextRing;
    private readonly IDisposable _rootLock;
    private int _housekeepingRunning;
    private int _disposed;

    private LogManager(LogManagerOptions options, int maximumOpenFiles, IDisposable rootLock)
    {
        _options = options;
        _rootLock = rootLock;
        _descriptors = new Segments.DescriptorBudget(maximumOpenFiles, options.MaximumOpenReadFiles);
        _readFiles = _descriptors.ReadFiles;
        if (options.ShareFileSystemSync && Io.DefaultStorage.Instance.OpenFileSystemSync(options.RootDirectory) is { } fileSystem)
        {
            _sharedSync = new Appender.SharedSync(fileSystem, "AppendLog-sync");
        }

        if (options.RingIoLoop && OperatingSystem.IsLinux())
        {
            // One loop per core, each log assigned to one in turn as it opens.
            var rings = new List<Appender.IIoExecutor>();
            for (int i = 0; i < Environment.ProcessorCount && _ringRefusal is null; i++)
            {
                if (Appender.RingIoLoop.TryStart($"AppendLog-ring-{i}", Appender.IoWorkers.Shared, out _ringRefusal) is { } loop)
                {
                    rings.Add(loop);
                }
            }

            _rings = [.. rings];
        }

        var time = options.LogDefaults?.TimeProvider ?? TimeProvider.System;
        _housekeeping = time.CreateTimer(static s => ((LogManager)s!).Housekeep(), this, options.HousekeepingInterval, options.HousekeepingInterval);
    }

    /// <summary>The root directory.</summary>
    public string RootDirectory => _options.RootDirectory;

    /// <summary>Read handles of segment files open now, over all logs (at most <see cref="LogManagerOptions.MaximumOpenReadFiles"/> while no reader holds them).</summary>
    public int OpenReadFileCount => _readFiles.OpenCount;

    /// <summary>The cap on descriptors kept open by the logs (<see cref="LogManagerOptions.MaximumOpenFiles"/>, or the value derived from the process's limit).</summary>
    public int MaximumOpenFiles => _descriptors.Maximum;

    /// <summary>Descriptors the logs keep open now: read handles and active segments' write handles (see <see cref="LogManagerOptions.MaximumOpenFiles"/>).</summary>
    public int OpenFileCount => _descriptors.OpenCount;

    /// <summary>The names of the logs open now.</summary>
    public IReadOnlyCollection<string> OpenLogNames => _logs.Keys.ToArray();

    /// <summary>
    /// Creates a manager over <see cref="LogManagerOptions.RootDirectory"/> (created when missing) and locks the root for
    /// its lifetime. Opens no log yet.
    /// </summary>
    /// <param name="options">The options; validated here.</param>
    /// <returns>The manager.</returns>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="LogManagerOptions.MaximumOpenFiles"/> and its reserve do
    /// not fit in the process's descriptor limit (the message gives both).</exception>
    /// <exception cref="LogLockedException">Another manager (in this process or another) holds the root directory.</exception>
    /// <exception cref="IOException">The root directory cannot be created.</exception>
    public static LogManager Create(LogManagerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var asEachLogGetsThem = (options.LogDefaults ?? new LogOptions()) with { Directory = Path.Combine(options.RootDirectory, "log") };
        asEachLogGetsThem.Validate();
        int maximumOpenFiles = ChooseMaximumOpenFiles(options, OperatingSystem.IsLinux() && Io.Interop.LibC.IsSupported ? Io.Interop.LibC.GetOpenFileLimit() : null);
        var storage = Io.DefaultStorage.Instance;
        storage.CreateDirectory(options.RootDirectory);
        return new LogManager(options, maximumOpenFiles, LockRoot(storage, options.RootDirectory));
    }

    /// <summary>The names of the logs present under the root directory (open or not).</summary>
    /// <returns>The names, sorted.</returns>
    public IReadOnlyList<string> ListLogNames() =>
        System.IO.Directory.GetDirectories(_options.RootDirectory).Select(d => Path.GetFileName(d)!).Where(IsValidName).Order(StringComparer.Ordinal).ToList();

    /// <summary>Returns the open log named <paramref name="name"/>, opening (and recovering) it on first use.</summary>
    /// <param name="name">1 to 200 characters from <c>[A-Za-z0-9._-]</c>, not starting with a dot.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    /// <returns>The log; owned by the manager (close it with <see cref="CloseLogAsync"/>, not by disposing it).</returns>
    /// <exception cref="ArgumentException">The name is not valid.</exception>
    /// <exception cref="ObjectDisposedException">The manager is disposed.</exception>
    /// <exception cref="LogCorruptedException">The log's data is damaged.</exception>
    /// <exception cref="LogLockedException">Another process has the log open.</exception>
    public async ValueTask<SegmentedLog> GetOrOpenAsync(string name, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!IsValidName(name))
        {
            throw new ArgumentException($"'{name}' is not a valid log name: use 1 to 200 characters from [A-Za-z0-9._-], not starting with a dot.", nameof(name));
        }

        var lazy = _logs.GetOrAdd(name, n => new Lazy<Task<SegmentedLog>>(() => OpenLogAsync(n)));
        try
        {
            return await lazy.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch when (lazy.Value.IsFaulted)
        {
            _logs.TryRemove(new KeyValuePair<string, Lazy<Task<SegmentedLog>>>(name, lazy));
            throw;
        }
    }

    /// <summary>
    /// Opens several logs at once, at most <see cref="LogManagerOptions.MaximumConcurrentOpens"/> at a time (a
    /// restart with thousands of partitions). Logs already open are returned as they are. Every name is attempted;
    /// when some fail, the others stay open in the manager and the first failure is thrown once all have finished.
    /// </summary>
    /// <param name="names">The logs' names (as for <see cref="GetOrOpenAsync"/>); duplicates are opened once.</param>
    /// <param name="cancellationToken">Cancels opens not yet finished.</param>
    /// <returns>The logs, in the order of <paramref name="names"/>.</returns>
    /// <exception cref="ArgumentException">A name is not valid (nothing is opened).</exception>
    /// <exception cref="ObjectDisposedException">The manager is disposed.</exception>
    /// <exception cref="LogCorruptedException">A log's data is damaged.</exception>
    /// <exception cref="LogLockedException">Another process has a log open.</exception>
    public async ValueTask<IReadOnlyList<SegmentedLog>> OpenAsync(IEnumerable<string> names, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(names);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        string[] all = names.ToArray();
        foreach (string name in all)
        {
            if (!IsValidName(name))
            {
                throw new ArgumentException($"'{name}' is not a valid log name: use 1 to 200 characters from [A-Za-z0-9._-], not starting with a dot.", nameof(names));
            }
        }

        var logs = new SegmentedLog[all.Length];
        Exception? first = null;
        int next = -1;
        async Task OpenSomeAsync()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < all.Length)
            {
                try
                {
                    logs[i] = await GetOrOpenAsync(all[i], cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref first, e, null);
                }
            }
        }

        var openers = new Task[Math.Min(_options.MaximumConcurrentOpens, Math.Max(all.Length, 1))];
        for (int w = 0; w < openers.Length; w++)
        {
            openers[w] = Task.Run(OpenSomeAsync, CancellationToken.None);
        }

        await Task.WhenAll(openers).ConfigureAwait(false);
        if (first is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
        }

        return logs;
    }

    /// <summary>Opens every log under the root directory (<see cref="ListLogNames"/>), concurrently as <see cref="OpenAsync(IEnumerable{string}, CancellationToken)"/> does.</summary>
    /// <param name="cancellationToken">Cancels opens not yet finished.</param>
    /// <returns>The logs, sorted by name.</returns>
    /// <exception cref="ObjectDisposedException">The manager is disposed.</exception>
    /// <exception cref="LogCorruptedException">A log's data is damaged (the others are open).</exception>
    /// <exception cref="LogLockedException">Another process has a log open.</exception>
    public ValueTask<IReadOnlyList<SegmentedLog>> OpenAllAsync(CancellationToken cancellationToken = default) =>
        OpenAsync(ListLogNames(), cancellationToken);

    /// <summary>Closes one log (flushing it) if it is open.</summary>
    /// <param name="name">The log's name.</param>
    /// <returns>True when the log was open.</returns>
    public async ValueTask<bool> CloseLogAsync(string name)
    {
        if (!_logs.TryRemove(name, out var lazy))
        {
            return false;
        }

        var log = await lazy.Value.ConfigureAwait(false);
        await log.DisposeAsync().ConfigureAwait(false);
        return true;
    }

    /// <summary>Stops housekeeping and closes every open log (each flushes what it accepted).</summary>
    /// <returns>A task that completes when every log is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _housekeeping.DisposeAsync().ConfigureAwait(false);

        // Closing syncs and records each log's clean close: as many at once as opening.
        var options = new ParallelOptions { MaxDegreeOfParallelism = _options.MaximumConcurrentOpens };
        await Parallel.ForEachAsync(_logs.Keys.ToArray(), options, async (name, _) =>
        {
            try
            {
                await CloseLogAsync(name).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // A log that failed to open or is faulted has nothing left to close.
            }
        }).ConfigureAwait(false);

        // Every log is closed: no sync can be submitted any more.
        _sharedSync?.Dispose();
        foreach (var ring in _rings)
        {
            ((IDisposable)ring).Dispose();
        }
        _rootLock.Dispose();
    }

    /// <summary>
    /// The descriptor cap: the option when set (checked against <paramref name="processLimit"/>), else half the limit less
    /// the reserve (4,096 where the limit is unknown).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The cap and its reserve exceed the limit.</exception>
    internal static int ChooseMaximumOpenFiles(LogManagerOptions options, long? processLimit)
    {
        int reserve = Segments.DescriptorBudget.ReserveFor(options.MaximumConcurrentOpens);
        if (processLimit is not { } limit)
        {
            return options.MaximumOpenFiles ?? 4096;
        }

        int cap = options.MaximumOpenFiles ?? (int)Math.Clamp(Math.Min(limit / 2, limit - reserve), 16, 1_000_000);
        if (cap + (long)reserve > limit)
        {
            throw new ArgumentOutOfRangeException(
                nameof(options),
                cap,
                $"LogManagerOptions.MaximumOpenFiles ({cap}) plus {reserve} descriptors kept for files opened briefly exceeds this process's descriptor limit ({limit}, RLIMIT_NOFILE): lower MaximumOpenFiles or MaximumConcurrentOpens, or raise the limit (ulimit -n).");
        }

        return cap;
    }

    /// <summary>
    /// Locks the root directory for the manager's lifetime. A log opened on its own beside the manager checks this lock
    /// by taking and dropping a shared lock, so an attempt that meets such a check is retried for a moment (about 0.2 s)
    /// before the root is declared held.
    /// </summary>
    private static IDisposable LockRoot(Io.IStorage storage, string root)
    {
        var spin = default(SpinWait);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return storage.LockDirectory(root, Io.LinuxStorage.ManagerLockFileName);
            }
            catch (LogLockedException) when (attempt < 200)
            {
                spin.SpinOnce(sleep1Threshold: 10);
            }
        }
    }

    /// <summary>
    /// Rounds of the shared syncs and the syncs of logs they served (<see cref="LogManagerOptions.ShareFileSystemSync"/>;
    /// zeros when off), and how many rounds ran one syncfs. For the load generator and tests.
    /// </summary>
    internal (long Rounds, long FileSystemSyncs, long Syncs) SharedSyncCounts =>
        _sharedSync is { } shared ? (shared.Rounds, shared.FileSystemSyncs, shared.Syncs) : default;

    /// <summary>True when the logs' writes and syncs go through io_uring loops (<see cref="LogManagerOptions.RingIoLoop"/> asked for, and io_uring available).</summary>
    internal bool UsesRingIoLoop => _rings.Length > 0;

    /// <summary>Which executor runs the logs' I/O: "io_uring loop", or "I/O workers" with the reason the loop was not used.</summary>
    internal string IoEngine => UsesRingIoLoop ? "io_uring loop" : _options.RingIoLoop ? $"I/O workers ({_ringRefusal ?? "io_uring is Linux only"})" : "I/O workers";

    /// <summary>The I/O loop's io_uring_enter calls, writes and data syncs submitted, and signals from posters (zeros without a loop).</summary>
    internal (long Enters, long Writes, long DataSyncs, long Signals) RingCounts
    {
        get
        {
            (long Enters, long Writes, long DataSyncs, long Signals) sum = default;
            if (OperatingSystem.IsLinux())
            {
                foreach (Appender.RingIoLoop loop in _rings)
                {
                    sum = (sum.Enters + loop.Enters, sum.Writes + loop.Writes, sum.DataSyncs + loop.DataSyncs, sum.Signals + loop.Signals);
                }
            }

            return sum;
        }
    }

    private static bool IsValidName([NotNullWhen(true)] string? name) =>
        name is { Length: > 0 and <= 200 } && name[0] != '.' && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>The shared syncs for a log, unless its directory already exists on another file system (a mount point).</summary>
    private Appender.SharedSync? SharedSyncFor(string name)
    {
        string directory = Path.Combine(_options.RootDirectory, name);
        return _sharedSync is { } shared && (!System.IO.Directory.Exists(directory) || shared.Covers(directory)) ? shared : null;
    }

    private Task<SegmentedLog> OpenLogAsync(string name)
    {
        var options = (_options.LogDefaults ?? new LogOptions()) with
        {
            Directory = Path.Combine(_options.RootDirectory, name),
            BufferPool = _options.BufferPool ?? _options.LogDefaults?.BufferPool,
            BatchCache = _options.BatchCache ?? _options.LogDefaults?.BatchCache,
            ReadFiles = _readFiles,
            SharedSync = SharedSyncFor(name),
            IoExecutor = _rings.Length == 0 ? null : _rings[(int)((uint)Interlocked.Increment(ref _nextRing) % (uint)_rings.Length)],
            Descriptors = _descriptors,
        };
        // A new log keeps its active segment open (it is about to be written): room for it first.
        _descriptors.MakeRoom(requester: null);
        return SegmentedLog.OpenAsync(options).AsTask();
    }

    /// <summary>Idle buffer release and retention for every open log; one pass at a time.</summary>
    private void Housekeep()
    {
        if (Interlocked.Exchange(ref _housekeepingRunning, 1) != 0)
        {
            return;
        }

        try
        {
            foreach (var lazy in _logs.Values)
            {
                if (!lazy.IsValueCreated || !lazy.Value.IsCompletedSuccessfully || Volatile.Read(ref _disposed) != 0)
                {
                    continue;
                }

                // Completed successfully (checked above): GetAwaiter().GetResult() does not block here.
                var log = lazy.Value.GetAwaiter().GetResult();
                try
                {
                    log.ReleaseIdleBuffers(_options.IdleBufferRelease);
                    log.TrimIdleReservation(_options.IdleReservationRelease);
                    log.ReleaseIdleFile(_options.IdleReservationRelease);
                    log.ApplyRetention();
                }
                catch (Exception e) when (e is ObjectDisposedException or IOException)
                {
                    // The log was closed or faulted meanwhile; its own calls report that.
                }
            }

            // Keep a reserve of free chunks (a quarter of what is lent, at least 8 MiB) so a burst after idleness does
            // not pay for fresh allocations, and give the rest back to the system.
            var pool = _options.BufferPool ?? _options.LogDefaults?.BufferPool ?? LogBufferPool.Shared;
            pool.Trim(Math.Max(8L * 1024 * 1024, pool.RentedBytes / 4));
        }
        finally
        {
            Volatile.Write(ref _housekeepingRunning, 0);
        }
    }
}
