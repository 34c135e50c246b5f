using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace AppendLog.Diagnostics;

/// <summary>
/// The library's one <see cref="Meter"/>, named <c>AppendLog</c>, and every instrument on it. Names follow the
/// OpenTelemetry conventions (dotted lower case, UCUM units: <c>s</c>, <c>By</c>, <c>{write}</c>); the table in
/// docs/internals.md (section 6) lists them with their meaning. Listen with <c>MeterListener</c>, <c>dotnet-counters monitor
/// --counters AppendLog</c>, or OpenTelemetry's <c>AddMeter("AppendLog")</c>.
/// <para>
/// Hot-path instruments (append, write, sync) carry no tags, so recording allocates nothing and costs one
/// <c>Enabled</c> check when nobody listens. Per-log state (segments, disk bytes, direct I/O) is observed on
/// collection only, tagged <c>log.directory</c>; a process with many logs gets one series per log there and
/// nowhere else.
/// </para>
/// </summary>
internal static class AppendLogMetrics
{
    /// <summary>The meter's name, as listeners subscribe to it.</summary>
    public const string MeterName = "AppendLog";

    /// <summary>The tag naming a log on per-log instruments: its directory as given in <see cref="LogOptions.Directory"/>.</summary>
    public const string DirectoryTag = "log.directory";

    /// <summary>The tag naming a buffer pool: <c>shared</c> for <see cref="LogBufferPool.Shared"/>, <c>custom-N</c> otherwise.</summary>
    public const string PoolTag = "appendlog.pool";

    /// <summary>The tag saying what recovery did: <c>truncate</c> (cut a torn tail) or <c>delete</c> (dropped a later segment).</summary>
    public const string RecoveryActionTag = "appendlog.recovery.action";

    /// <summary>
    /// The tag saying why recovery stopped: <c>bad_length</c>, <c>bad_magic</c>, <c>bad_crc</c>, <c>incomplete</c>,
    /// <c>offset_mismatch</c> (truncations) or <c>beyond_end</c> (deletions). <c>bad_length</c> includes a batch
    /// length of zero, which is what the zero-filled preallocated space after a clean close reads as.
    /// </summary>
    public const string RecoveryReasonTag = "appendlog.recovery.reason";

    /// <summary>The tag saying where a reader's batch came from: <c>cache</c>, <c>writer</c> (the in-memory tail) or <c>disk</c>.</summary>
    public const string ReadSourceTag = "appendlog.read.source";

    private static readonly Lock s_lock = new();
    // Weak: an application that forgets to dispose a log must not have it (and its file handles) kept alive by metrics.
    private static readonly List<WeakReference<SegmentedLog>> s_openLogs = new();
    private static readonly ConditionalWeakTable<LogBufferPool, string> s_poolNames = new();
    private static int s_poolCount;

    /// <summary>
    /// Latency buckets in seconds for append and sync durations: from 50 µs (an fdatasync on NVMe with a
    /// non-volatile write cache) to 1 s (a stalled disk), about 2.5× apart.
    /// </summary>
    private static readonly double[] s_latencyBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    /// <summary>Bytes per sync: from one 4 KiB block to 64 MiB, ×4 apart.</summary>
    private static readonly long[] s_syncBytesBuckets =
        [4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

    public static readonly Meter Meter = new(MeterName, typeof(AppendLogMetrics).Assembly.GetName().Version?.ToString());

    /// <summary>From acceptance (offset assigned) to durable acknowledgement of an awaited append; seconds.</summary>
    public static readonly Histogram<double> AppendDuration = Meter.CreateHistogram(
        "appendlog.append.duration", "s",
        "Time from an awaited append's acceptance (offset assigned) to its durable acknowledgement.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_latencyBuckets });

    /// <summary>One sync round: every fdatasync it needs plus the directory fsync of a new segment; seconds.</summary>
    public static readonly Histogram<double> FlushDuration = Meter.CreateHistogram(
        "appendlog.flush.duration", "s",
        "Duration of one sync round: the fdatasync of each segment with unsynced data and, after a roll, the directory fsync.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_latencyBuckets });

    /// <summary>fdatasync calls on segment files that succeeded.</summary>
    public static readonly Counter<long> FsyncCount = Meter.CreateCounter<long>(
        "appendlog.fsync.count", "{call}", "fdatasync calls on segment files that completed.");

    /// <summary>Log bytes a completed sync round made durable.</summary>
    public static readonly Histogram<long> FsyncBytes = Meter.CreateHistogram(
        "appendlog.fsync.bytes", "By", "Log bytes made durable by one completed sync round (the group-commit size).",
        advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = s_syncBytesBuckets });

    /// <summary>Bytes written to segment files by completed data writes (block-aligned, so rewritten tail blocks count again).</summary>
    public static readonly Counter<long> BytesWritten = Meter.CreateCounter<long>(
        "appendlog.bytes.written", "By",
        "Bytes written to segment files by completed data writes; block-aligned, so a partial tail block rewritten by the next write counts again.");

    /// <summary>Bytes read from segment files, by readers and by recovery scans.</summary>
    public static readonly Counter<long> BytesRead = Meter.CreateCounter<long>(
        "appendlog.bytes.read", "By", "Bytes read from segment files by readers and recovery scans.");

    /// <summary>Batches readers got, tagged by source (three fixed values: the series count stays bounded).</summary>
    public static readonly Counter<long> BatchesRead = Meter.CreateCounter<long>(
        "appendlog.read.batches", "{batch}", "Batches returned to readers, by source: cache, writer (the in-memory tail) or disk.");

    /// <summary>Data writes handed to an I/O thread and not yet returned.</summary>
    public static readonly UpDownCounter<long> WritesInflight = Meter.CreateUpDownCounter<long>(
        "appendlog.writes.inflight", "{write}", "Data writes dispatched to an I/O thread and not yet completed.");

    /// <summary>Tail truncations and dropped segments performed by recovery at open.</summary>
    public static readonly Counter<long> RecoveryTruncations = Meter.CreateCounter<long>(
        "appendlog.recovery.truncations", "{truncation}",
        "Torn or stale tails cut off (action truncate) and unacknowledged later segments deleted (action delete) by recovery at open.");

    /// <summary>Bytes of pooled buffers currently rented, per pool.</summary>
    public static readonly ObservableGauge<long> PoolRentedBytes = Meter.CreateObservableGauge(
        "appendlog.pool.rented.bytes", ObservePoolRentedBytes, "By", "Bytes of aligned buffers currently rented from the pool.");

    /// <summary>Appenders waiting for a buffer (backpressure), per pool.</summary>
    public static readonly ObservableGauge<int> PoolWaiting = Meter.CreateObservableGauge(
        "appendlog.pool.waiting", ObservePoolWaiting, "{renter}", "Appenders waiting for the pool's budget to free a buffer (backpressure).");

    /// <summary>Segment files per open log.</summary>
    public static readonly ObservableUpDownCounter<int> Segments = Meter.CreateObservableUpDownCounter(
        "appendlog.segments", ObserveSegments, "{segment}", "Segment files of each open log.");

    /// <summary>Disk space held by each open log: segment sizes plus the space reserved ahead of the write head.</summary>
    public static readonly ObservableUpDownCounter<long> DiskBytes = Meter.CreateObservableUpDownCounter(
        "appendlog.disk.bytes", ObserveDiskBytes, "By",
        "Disk space held by each open log: sealed segment sizes plus the reserved (preallocated) length of unsealed ones.");

    /// <summary>1 when an open log's segments use O_DIRECT, 0 when it runs buffered + fdatasync.</summary>
    public static readonly ObservableGauge<int> IoDirect = Meter.CreateObservableGauge(
        "appendlog.io.direct", ObserveIoDirect, "1", "1 when the log writes with O_DIRECT, 0 when it fell back to buffered writes + fdatasync.");

    /// <summary>Registers an open log for the observable instruments.</summary>
    public static void LogOpened(SegmentedLog log)
    {
        lock (s_lock)
        {
            s_openLogs.Add(new WeakReference<SegmentedLog>(log));
        }
    }

    /// <summary>Stops observing a log; idempotent.</summary>
    public static void LogClosed(SegmentedLog log)
    {
        lock (s_lock)
        {
            s_openLogs.RemoveAll(w => !w.TryGetTarget(out var open) || ReferenceEquals(open, log));
        }
    }

    /// <summary>A <see cref="Stopwatch"/> timestamp, for durations ended by <see cref="FsyncCompleted"/>.</summary>
    public static long Timestamp() => Stopwatch.GetTimestamp();

    /// <summary>The start of an awaited append's latency, or 0 when nobody listens (then nothing is recorded).</summary>
    public static long AppendAccepted() => AppendDuration.Enabled ? Stopwatch.GetTimestamp() : 0;

    /// <summary>Records an append's latency from <see cref="AppendAccepted"/>; no-op for 0.</summary>
    public static void AppendCompleted(long acceptedTimestamp)
    {
        if (acceptedTimestamp != 0)
        {
            AppendDuration.Record(Stopwatch.GetElapsedTime(acceptedTimestamp).TotalSeconds);
        }
    }

    /// <summary>A data write was handed to an I/O thread.</summary>
    public static void WriteDispatched() => WritesInflight.Add(1);

    /// <summary>A data write returned; its bytes count when it succeeded.</summary>
    public static void WriteCompleted(int length, Exception? error)
    {
        WritesInflight.Add(-1);
        if (error is null)
        {
            BytesWritten.Add(length);
        }
    }

    /// <summary>A sync round started at <paramref name="startTimestamp"/> finished its <paramref name="fdatasyncCalls"/> calls.</summary>
    public static void FsyncCompleted(long startTimestamp, int fdatasyncCalls)
    {
        FlushDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds);
        FsyncCount.Add(fdatasyncCalls);
    }

    /// <summary>A completed sync round moved the durable watermark by <paramref name="bytes"/>.</summary>
    public static void SyncMadeDurable(long bytes) => FsyncBytes.Record(bytes);

    /// <summary>Bytes read from a segment file.</summary>
    public static void Read(int bytes) => BytesRead.Add(bytes);

    /// <summary>A reader got one batch from <paramref name="source"/>: one tag from a fixed set, no allocation.</summary>
    public static void BatchRead(BatchSource source)
    {
        if (BatchesRead.Enabled)
        {
            BatchesRead.Add(1, new KeyValuePair<string, object?>(ReadSourceTag, source switch
            {
                BatchSource.Cache => "cache",
                BatchSource.Writer => "writer",
                _ => "disk",
            }));
        }
    }

    /// <summary>
    /// Recovery cut a tail (<c>truncate</c>) or deleted a later segment (<c>delete</c>). <paramref name="stop"/> is
    /// recovery's own reason text (a <c>BatchCheck</c> name, or "base offset N where M was expected"), reduced here
    /// to a fixed set of tag values so the series count stays bounded.
    /// </summary>
    public static void RecoveryTruncated(string directory, string action, string stop) =>
        RecoveryTruncations.Add(
            1,
            new KeyValuePair<string, object?>(DirectoryTag, directory),
            new KeyValuePair<string, object?>(RecoveryActionTag, action),
            new KeyValuePair<string, object?>(RecoveryReasonTag, ReasonTag(stop)));

    private static string ReasonTag(string stop) => stop switch
    {
        nameof(Format.BatchCheck.BadLength) => "bad_length",
        nameof(Format.BatchCheck.BadMagic) => "bad_magic",
        nameof(Format.BatchCheck.BadCrc) => "bad_crc",
        nameof(Format.BatchCheck.Incomplete) => "incomplete",
        _ when stop.StartsWith("base offset", StringComparison.Ordinal) => "offset_mismatch",
        _ => "beyond_end",
    };

    private static SegmentedLog[] SnapshotLogs()
    {
        lock (s_lock)
        {
            s_openLogs.RemoveAll(w => !w.TryGetTarget(out _));
            var logs = new List<SegmentedLog>(s_openLogs.Count);
            foreach (var w in s_openLogs)
            {
                if (w.TryGetTarget(out var log))
                {
                    logs.Add(log);
                }
            }

            return logs.ToArray();
        }
    }

    private static IEnumerable<Measurement<int>> ObserveSegments() =>
        SnapshotLogs().Select(log => new Measurement<int>(log.SegmentCount, DirectoryTags(log)));

    private static IEnumerable<Measurement<long>> ObserveDiskBytes() =>
        SnapshotLogs().Select(log => new Measurement<long>(log.DiskBytes, DirectoryTags(log)));

    private static IEnumerable<Measurement<int>> ObserveIoDirect() =>
        SnapshotLogs().Select(log => new Measurement<int>(log.IsDirectIo ? 1 : 0, DirectoryTags(log)));

    private static IEnumerable<Measurement<long>> ObservePoolRentedBytes() =>
        Pools().Select(p => new Measurement<long>(p.RentedBytes, PoolTags(p)));

    private static IEnumerable<Measurement<int>> ObservePoolWaiting() =>
        Pools().Select(p => new Measurement<int>(p.WaitingRenters, PoolTags(p)));

    /// <summary>The shared pool (always) and every other pool an open log uses, each once.</summary>
    private static List<LogBufferPool> Pools()
    {
        var pools = new List<LogBufferPool> { LogBufferPool.Shared };
        foreach (var log in SnapshotLogs())
        {
            var pool = log.BufferPool;
            if (!pools.Contains(pool))
            {
                pools.Add(pool);
            }
        }

        return pools;
    }

    private static KeyValuePair<string, object?>[] DirectoryTags(SegmentedLog log) => [new(DirectoryTag, log.Directory)];

    private static KeyValuePair<string, object?>[] PoolTags(LogBufferPool pool) => [new(PoolTag, PoolName(pool))];

    private static string PoolName(LogBufferPool pool) =>
        ReferenceEquals(pool, LogBufferPool.Shared)
            ? "shared"
            : s_poolNames.GetValue(pool, static _ => $"custom-{Interlocked.Increment(ref s_poolCount)}");
}
