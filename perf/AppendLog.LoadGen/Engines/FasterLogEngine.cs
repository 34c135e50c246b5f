using System.Reflection;
using FASTER.core;

namespace AppendLog.LoadGen.Engines;

/// <summary>
/// How appends reach durability in FasterLog, and who calls its commit: the setting PEERS.md says to report with
/// every result. The two tracker drivers are how FASTER's own samples drive it for throughput; the other two
/// await one commit per record, a driver PEERS.md found to measure itself rather than FasterLog in open loop.
/// </summary>
internal enum FasterCommitDriver
{
    /// <summary>
    /// Per-record await: each append is <c>EnqueueAndWaitForCommitAsync</c>; a dedicated thread loops
    /// <c>Commit(spinWait: true)</c> while the tail is ahead of the commit.
    /// </summary>
    CommitterThread,

    /// <summary>Per-record await with <c>FasterLogSettings.AutoCommit = true</c>: FasterLog commits after each enqueue.</summary>
    AutoCommit,

    /// <summary>
    /// Producers <c>Enqueue</c> (a synchronous copy into its page); one commit tracker thread loops
    /// <c>Commit(spinWait: true)</c> and completes acknowledgements as <c>CommittedUntilAddress</c> passes them.
    /// </summary>
    TrackerSpin,

    /// <summary>As <see cref="TrackerSpin"/>, but the tracker is an async loop awaiting <c>CommitAsync()</c>.</summary>
    TrackerAsync,
}

/// <summary>
/// FasterLog (Microsoft.FASTER.Core 2.6.5) with PEERS.md's fair settings, driven one record, one await: every
/// append is <see cref="FasterLog.EnqueueAndWaitForCommitAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.
/// Kept as a labelled variant (<c>fasterlog-await</c>, <c>fasterlog-autocommit</c>); the fair driver is
/// <see cref="FasterLogTrackerEngine"/>.
/// </summary>
/// <remarks>
/// The committer-thread driver can hang with the last record never flushed (PEERS.md); the watchdog thread
/// calls <c>ReadAsync(long.MaxValue)</c>, which enters and leaves FASTER's epoch and so drains its deferred
/// work, whenever the committed address has not moved for one watchdog period while the tail is ahead.
/// It runs for both drivers; the number of times it had to act is reported as <c>watchdogKicks</c>.
/// </remarks>
internal sealed class FasterLogEngine : IEngine
{
    /// <summary>How long the committer sleeps when it has seen nothing to commit; an append wakes it sooner.</summary>
    private static readonly TimeSpan s_committerIdleWaitMax = TimeSpan.FromMilliseconds(1);

    private static readonly TimeSpan s_threadStopWaitMax = TimeSpan.FromSeconds(30);

    private readonly IDevice _device;
    private readonly FasterLog _log;
    private readonly FasterCommitDriver _driver;
    private readonly Thread? _committer;
    private readonly FasterCommitWatchdog _watchdog;
    private readonly ManualResetEventSlim _appended = new(initialState: false);
    private volatile bool _stopping;
    private long _commitCalls;

    public FasterLogEngine(string directory, FasterCommitDriver driver, bool preallocateFile)
    {
        _driver = driver;
        (_device, _log) = FasterLogFactory.Create(
            directory, preallocateFile, autoCommit: driver == FasterCommitDriver.AutoCommit);
        if (driver == FasterCommitDriver.CommitterThread)
        {
            _committer = new Thread(CommitLoop) { IsBackground = true, Name = "fasterlog-committer" };
            _committer.Start();
        }
        _watchdog = new FasterCommitWatchdog(_log);
    }

    public long? SyncCalls => null; // FASTER's O_SYNC writes happen inside its device: count them with strace.

    public IReadOnlyDictionary<string, long> Counters => new Dictionary<string, long>
    {
        ["commitCalls"] = Interlocked.Read(ref _commitCalls),
        ["watchdogKicks"] = _watchdog.Kicks,
        ["watchdogReadsPending"] = _watchdog.ReadsPending,
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

    public ValueTask DisposeAsync()
    {
        if (_stopping)
        {
            return ValueTask.CompletedTask;
        }
        _stopping = true;
        _appended.Set();
        bool stopped = (_committer?.Join(s_threadStopWaitMax) ?? true) & _watchdog.Stop(s_threadStopWaitMax);
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
    /// <summary>PEERS.md's device and log settings, the same for every driver.</summary>
    internal static (IDevice Device, FasterLog Log) Create(string directory, bool preallocateFile, bool autoCommit)
    {
        IDevice device = Devices.CreateLogDevice(
            Path.Combine(directory, "faster.log"), preallocateFile: preallocateFile, disableFileBuffering: true);
        var log = new FasterLog(new FasterLogSettings
        {
            LogDevice = device,
            PageSizeBits = PageSizeBits,
            MemorySizeBits = MemorySizeBits,
            SegmentSizeBits = SegmentSizeBits,
            LogChecksum = LogChecksumType.None,
            AutoCommit = autoCommit,
        });
        return (device, log);
    }

    // PEERS.md's fair settings: 4 MiB pages, 64 MiB in memory, 1 GiB segments.
    internal const int PageSizeBits = 22;
    internal const int MemorySizeBits = 26;
    internal const int SegmentSizeBits = 30;

    public string Name => name;

    public string Settings =>
        $"Microsoft.FASTER.Core {FasterVersion}; driver {DriverText}; CreateLogDevice(preallocateFile: " +
        $"{(preallocateFile ? "on" : "off")}, disableFileBuffering: true); PageSizeBits {PageSizeBits}, " +
        $"MemorySizeBits {MemorySizeBits}, SegmentSizeBits {SegmentSizeBits}; checksum none; " +
        "ReadAsync(long.MaxValue) watchdog at 1 ms; " +
        "on Linux: O_SYNC writes through the page cache, no fsync (PEERS.md)";

    public bool IsDurable => true;

    /// <summary>The package version pinned in Directory.Packages.props (the assembly itself says 1.0.0).</summary>
    private static string FasterVersion =>
        typeof(FasterLogFactory).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "FasterPackageVersion")?.Value ?? "unknown";

    private string DriverText => driver switch
    {
        FasterCommitDriver.CommitterThread =>
            "PER-RECORD AWAIT (EnqueueAndWaitForCommitAsync per append), committer thread (Commit(spinWait: true) " +
            "while Tail > CommittedUntil)",
        FasterCommitDriver.AutoCommit => "PER-RECORD AWAIT (EnqueueAndWaitForCommitAsync per append), AutoCommit = true",
        FasterCommitDriver.TrackerSpin =>
            "Enqueue per append + one commit tracker thread (Commit(spinWait: true) while Tail > CommittedUntil, " +
            "acks completed as CommittedUntilAddress passes each record's address)",
        FasterCommitDriver.TrackerAsync =>
            "Enqueue per append + one async commit tracker (await CommitAsync() while Tail > CommittedUntil, " +
            "acks completed as CommittedUntilAddress passes each record's address)",
        _ => throw new InvalidOperationException(driver.ToString()),
    };

    public IEngine Open(string directory, EngineContext context) =>
        driver is FasterCommitDriver.TrackerSpin or FasterCommitDriver.TrackerAsync
            ? new FasterLogTrackerEngine(directory, driver, preallocateFile)
            : new FasterLogEngine(directory, driver, preallocateFile);
}
