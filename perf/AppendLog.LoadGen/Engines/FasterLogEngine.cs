using System.Reflection;
using FASTER.core;

namespace AppendLog.LoadGen.Engines;

/// <summary>Who calls FasterLog's commit: the setting PEERS.md says to report with every result.</summary>
internal enum FasterCommitDriver
{
    /// <summary>A dedicated thread loops <c>Commit(spinWait: true)</c> while the tail is ahead of the commit.</summary>
    CommitterThread,

    /// <summary><c>FasterLogSettings.AutoCommit = true</c>: FasterLog commits after each enqueue.</summary>
    AutoCommit,
}

/// <summary>
/// FasterLog (Microsoft.FASTER.Core 2.6.5) configured as PEERS.md found fair: per-append durability through
/// <see cref="FasterLog.EnqueueAndWaitForCommitAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.
/// </summary>
/// <remarks>
/// The committer-thread driver can hang with the last record never flushed (PEERS.md); the watchdog thread
/// calls <c>ReadAsync(long.MaxValue)</c>, which enters and leaves FASTER's epoch and so drains its deferred
/// work, whenever the committed address has not moved for one watchdog period while the tail is ahead.
/// It runs for both drivers; the number of times it had to act is reported as <c>watchdogKicks</c>.
/// </remarks>
internal sealed class FasterLogEngine : IEngine
{
    /// <summary>PEERS.md: "every ~1 ms when the committed address stalls".</summary>
    private static readonly TimeSpan s_watchdogPeriod = TimeSpan.FromMilliseconds(1);

    /// <summary>How long the committer sleeps when it has seen nothing to commit; an append wakes it sooner.</summary>
    private static readonly TimeSpan s_committerIdleWaitMax = TimeSpan.FromMilliseconds(1);

    private static readonly TimeSpan s_threadStopWaitMax = TimeSpan.FromSeconds(30);

    private readonly IDevice _device;
    private readonly FasterLog _log;
    private readonly FasterCommitDriver _driver;
    private readonly Thread? _committer;
    private readonly Thread _watchdog;
    private readonly ManualResetEventSlim _appended = new(initialState: false);
    private volatile bool _stopping;
    private long _commitCalls;
    private long _watchdogKicks;
    private long _watchdogReadsPending;

    public FasterLogEngine(string directory, FasterCommitDriver driver, bool preallocateFile)
    {
        _driver = driver;
        _device = Devices.CreateLogDevice(
            Path.Combine(directory, "faster.log"), preallocateFile: preallocateFile, disableFileBuffering: true);
        _log = new FasterLog(new FasterLogSettings
        {
            LogDevice = _device,
            PageSizeBits = FasterLogFactory.PageSizeBits,
            MemorySizeBits = FasterLogFactory.MemorySizeBits,
            SegmentSizeBits = FasterLogFactory.SegmentSizeBits,
            LogChecksum = LogChecksumType.None,
            AutoCommit = driver == FasterCommitDriver.AutoCommit,
        });
        if (driver == FasterCommitDriver.CommitterThread)
        {
            _committer = new Thread(CommitLoop) { IsBackground = true, Name = "fasterlog-committer" };
            _committer.Start();
        }
        _watchdog = new Thread(WatchdogLoop) { IsBackground = true, Name = "fasterlog-watchdog" };
        _watchdog.Start();
    }

    public long? SyncCalls => null; // FASTER's O_SYNC writes happen inside its device: count them with strace.

    public IReadOnlyDictionary<string, long> Counters => new Dictionary<string, long>
    {
        ["commitCalls"] = Interlocked.Read(ref _commitCalls),
        ["watchdogKicks"] = Interlocked.Read(ref _watchdogKicks),
        ["watchdogReadsPending"] = Interlocked.Read(ref _watchdogReadsPending),
    };

    public ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
    {
        // The synchronous part of this call enqueues (unless the in-memory log is full); only then is there
        // something for the committer to commit, so it is woken after the call returns.
        ValueTask<long> committed = _log.EnqueueAndWaitForCommitAsync(payload);
        if (_driver == FasterCommitDriver.CommitterThread)
        {
            _appended.Set();
        }
        if (committed.IsCompletedSuccessfully)
        {
            _ = committed.Result; // a ValueTask is consumed exactly once, even when already complete
            return ValueTask.CompletedTask;
        }
        return AwaitCommitAsync(committed);
    }

    private static async ValueTask AwaitCommitAsync(ValueTask<long> committed) => await committed;

    private void CommitLoop()
    {
        while (!_stopping)
        {
            // Reset before looking at the addresses: an append that enqueues after the look sets the event
            // again, so the wait below cannot miss it (and the wait is bounded anyway).
            _appended.Reset();
            while (!_stopping && _log.TailAddress > _log.CommittedUntilAddress)
            {
                _log.Commit(spinWait: true);
                Interlocked.Increment(ref _commitCalls);
            }
            _appended.Wait(s_committerIdleWaitMax);
        }
    }

    private void WatchdogLoop()
    {
        long committedBefore = -1;
        while (!_stopping)
        {
            Thread.Sleep(s_watchdogPeriod);
            long committed = _log.CommittedUntilAddress;
            if (committed == committedBefore && _log.TailAddress > committed)
            {
                Kick();
            }
            committedBefore = committed;
        }
    }

    private void Kick()
    {
        Interlocked.Increment(ref _watchdogKicks);
        try
        {
            ValueTask<(byte[], int)> read = _log.ReadAsync(long.MaxValue);
            if (!read.IsCompleted)
            {
                Interlocked.Increment(ref _watchdogReadsPending);
                // Observe whatever it ends with; the epoch side effect is all that is wanted.
                _ = read.AsTask().ContinueWith(
                    t =>
                    {
                        Interlocked.Decrement(ref _watchdogReadsPending);
                        _ = t.Exception;
                    },
                    CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            else if (read.IsFaulted)
            {
                _ = read.AsTask().Exception;
            }
        }
        catch (FasterException)
        {
            // Reading past the tail may be rejected; entering and leaving the epoch already happened.
        }
    }

    public ValueTask DisposeAsync()
    {
        if (_stopping)
        {
            return ValueTask.CompletedTask;
        }
        _stopping = true;
        _appended.Set();
        bool stopped = (_committer?.Join(s_threadStopWaitMax) ?? true) & _watchdog.Join(s_threadStopWaitMax);
        if (!stopped)
        {
            throw new TimeoutException($"FasterLog committer or watchdog did not stop within {s_threadStopWaitMax}");
        }
        _log.Dispose();
        _device.Dispose();
        _appended.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>Registers one FasterLog configuration (driver × device preallocation).</summary>
internal sealed class FasterLogFactory(string name, FasterCommitDriver driver, bool preallocateFile) : IEngineFactory
{
    // PEERS.md's fair settings: 4 MiB pages, 64 MiB in memory, 1 GiB segments.
    internal const int PageSizeBits = 22;
    internal const int MemorySizeBits = 26;
    internal const int SegmentSizeBits = 30;

    public string Name => name;

    public string Settings =>
        $"Microsoft.FASTER.Core {FasterVersion}; driver {DriverText}; CreateLogDevice(preallocateFile: " +
        $"{(preallocateFile ? "on" : "off")}, disableFileBuffering: true); PageSizeBits {PageSizeBits}, " +
        $"MemorySizeBits {MemorySizeBits}, SegmentSizeBits {SegmentSizeBits}; checksum none; " +
        "EnqueueAndWaitForCommitAsync per append; ReadAsync(long.MaxValue) watchdog at 1 ms; " +
        "on Linux: O_SYNC writes through the page cache, no fsync (PEERS.md)";

    public bool IsDurable => true;

    /// <summary>The package version pinned in Directory.Packages.props (the assembly itself says 1.0.0).</summary>
    private static string FasterVersion =>
        typeof(FasterLogFactory).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "FasterPackageVersion")?.Value ?? "unknown";

    private string DriverText => driver switch
    {
        FasterCommitDriver.CommitterThread => "committer thread (Commit(spinWait: true) while Tail > CommittedUntil)",
        FasterCommitDriver.AutoCommit => "AutoCommit = true",
        _ => throw new InvalidOperationException(driver.ToString()),
    };

    public IEngine Open(string directory, EngineContext context) =>
        new FasterLogEngine(directory, driver, preallocateFile);
}
