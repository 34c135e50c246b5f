using System.Diagnostics.Metrics;
using AppendLog.Diagnostics;
using AppendLog.Testing;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Diagnostics;

/// <summary>
/// Each instrument of the AppendLog meter moves when the log does the thing it measures, on real files. The meter
/// is process-wide and other tests run at the same time, so process-wide instruments are asserted as "at least";
/// per-log instruments are filtered by this test's directory.
/// </summary>
[TestFixture(DirectIoMode.Preferred)]
[TestFixture(DirectIoMode.Disabled)]
public sealed class AppendLogMetricsTests(DirectIoMode mode)
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-metrics");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private LogOptions Options(FlushPolicy? policy = null, LogBufferPool? pool = null) =>
        new() { Directory = _dir.File("log"), DirectIo = mode, FlushPolicy = policy, BufferPool = pool };

    [Test]
    public void Meter_IsNamedAppendLog_AndEveryInstrumentHasAUnitAndADescription()
    {
        Instrument[] all =
        [
            AppendLogMetrics.AppendDuration, AppendLogMetrics.FlushDuration, AppendLogMetrics.FsyncCount,
            AppendLogMetrics.FsyncBytes, AppendLogMetrics.BytesWritten, AppendLogMetrics.BytesRead,
            AppendLogMetrics.WritesInflight, AppendLogMetrics.RecoveryTruncations, AppendLogMetrics.PoolRentedBytes,
            AppendLogMetrics.PoolWaiting, AppendLogMetrics.Segments, AppendLogMetrics.DiskBytes, AppendLogMetrics.IoDirect,
        ];
        foreach (var instrument in all)
        {
            Assert.That(instrument.Meter.Name, Is.EqualTo("AppendLog"));
            Assert.That(instrument.Name, Does.StartWith("appendlog.").And.Match("^[a-z._]+$"));
            Assert.That(instrument.Unit, Is.Not.Null.And.Not.Empty, instrument.Name);
            Assert.That(instrument.Description, Is.Not.Null.And.Not.Empty, instrument.Name);
        }

        Assert.That(all.Select(i => i.Name).Distinct().Count(), Is.EqualTo(all.Length));
    }

    [Test]
    public async Task AwaitedAppends_RecordAppendLatency_SyncRounds_AndBytesWritten()
    {
        using var appendDuration = new MetricCollector<double>(AppendLogMetrics.AppendDuration);
        using var flushDuration = new MetricCollector<double>(AppendLogMetrics.FlushDuration);
        using var fsyncCount = new MetricCollector<long>(AppendLogMetrics.FsyncCount);
        using var fsyncBytes = new MetricCollector<long>(AppendLogMetrics.FsyncBytes);
        using var bytesWritten = new MetricCollector<long>(AppendLogMetrics.BytesWritten);
        using var inflight = new MetricCollector<long>(AppendLogMetrics.WritesInflight);

        await using (var log = await SegmentedLog.OpenAsync(Options()))
        {
            for (int i = 0; i < 20; i++)
            {
                await log.AppendAsync(new byte[100]);
            }
        }

        var latencies = appendDuration.GetMeasurementSnapshot();
        Assert.That(latencies, Has.Count.GreaterThanOrEqualTo(20));
        Assert.That(latencies.Select(m => m.Value), Is.All.GreaterThan(0).And.All.LessThan(60));
        Assert.That(flushDuration.GetMeasurementSnapshot().Select(m => m.Value), Is.Not.Empty.And.All.GreaterThan(0));

        // 20 awaited appends one after another: each waits for its own sync round (group commit with one appender).
        Assert.That(fsyncCount.GetMeasurementSnapshot().Sum(m => m.Value), Is.GreaterThanOrEqualTo(20));
        Assert.That(fsyncBytes.GetMeasurementSnapshot().Select(m => m.Value), Is.Not.Empty.And.All.GreaterThan(0));

        // Every sync wrote the block holding the new record first: at least one 4 KiB block per round.
        Assert.That(bytesWritten.GetMeasurementSnapshot().Sum(m => m.Value), Is.GreaterThanOrEqualTo(20 * 4096));
        var deltas = inflight.GetMeasurementSnapshot().Select(m => m.Value).ToList();
        Assert.That(deltas, Does.Contain(1L).And.Contain(-1L));
    }

    [Test]
    public void AppendAccepted_TakesATimestamp_OnlyWhileTheHistogramHasAListener()
    {
        using var collector = new MetricCollector<double>(AppendLogMetrics.AppendDuration);
        Assert.That(AppendLogMetrics.AppendAccepted(), Is.Not.Zero);
        AppendLogMetrics.AppendCompleted(0);
        Assert.That(collector.GetMeasurementSnapshot(), Is.Empty.Or.All.Matches<CollectedMeasurement<double>>(m => m.Value > 0),
            "0 means 'not measured' and records nothing");
    }

    [Test]
    public async Task ReadAsync_CountsTheBytesItReadsFromDisk_NotFromTheCache()
    {
        using var bytesRead = new MetricCollector<long>(AppendLogMetrics.BytesRead);
        var cache = new BatchCache(4 * 1024 * 1024);
        var options = Options() with { BatchCache = cache };
        await using (var writer = await SegmentedLog.OpenAsync(options))
        {
            for (int i = 0; i < 10; i++)
            {
                await writer.AppendAsync(new byte[1000]);
            }
        }

        // Reopened: nothing is in the writer's buffers, so the first read goes to the disk.
        await using var log = await SegmentedLog.OpenAsync(options);
        long before = bytesRead.GetMeasurementSnapshot().Sum(m => m.Value);
        Assert.That(await CountAsync(log), Is.EqualTo(10));
        long afterFirst = bytesRead.GetMeasurementSnapshot().Sum(m => m.Value);
        Assert.That(afterFirst - before, Is.GreaterThanOrEqualTo(10 * 1000));

        // The second read is served by the cache: no byte read.
        Assert.That(await CountAsync(log), Is.EqualTo(10));
        Assert.That(bytesRead.GetMeasurementSnapshot().Sum(m => m.Value), Is.EqualTo(afterFirst));
        Assert.That(cache.Hits, Is.GreaterThanOrEqualTo(10));

        static async Task<int> CountAsync(SegmentedLog log)
        {
            int n = 0;
            await foreach (var record in log.ReadAsync(0))
            {
                n++;
            }

            return n;
        }
    }

    [Test]
    public async Task ObservableInstruments_ReportEachOpenLog_ByDirectory_AndStopAfterDispose()
    {
        using var segments = new MetricCollector<int>(AppendLogMetrics.Segments);
        using var diskBytes = new MetricCollector<long>(AppendLogMetrics.DiskBytes);
        using var direct = new MetricCollector<int>(AppendLogMetrics.IoDirect);
        var options = Options() with { SegmentSize = 1024 * 1024, MaximumBatchSize = 64 * 1024 };
        var log = await SegmentedLog.OpenAsync(options);
        for (int i = 0; i < 40; i++)
        {
            await log.AppendAsync(new byte[60 * 1024]); // 40 × 60 KiB over 1 MiB segments: at least two rolls
        }

        Observe(segments, diskBytes, direct);
        Assert.That(Mine(segments), Is.EqualTo(log.SegmentCount).And.GreaterThanOrEqualTo(3));
        Assert.That(Mine(diskBytes), Is.GreaterThanOrEqualTo(40 * 60 * 1024));
        Assert.That(Mine(direct), Is.EqualTo(log.IsDirectIo ? 1 : 0));
        if (mode == DirectIoMode.Disabled)
        {
            Assert.That(Mine(direct), Is.Zero);
        }

        await log.DisposeAsync();
        segments.Clear();
        Observe(segments);
        Assert.That(segments.GetMeasurementSnapshot().Where(IsMine), Is.Empty, "a closed log is no longer reported");
    }

    [Test]
    public async Task PoolGauges_ReportRentedBytesAndWaiters_PerPool()
    {
        using var pool = new LogBufferPool(budgetBytes: 4L * 1024 * 1024, chunkSize: 64 * 1024);
        using var rented = new MetricCollector<long>(AppendLogMetrics.PoolRentedBytes);
        using var waiting = new MetricCollector<int>(AppendLogMetrics.PoolWaiting);
        await using var log = await SegmentedLog.OpenAsync(Options(FlushPolicy.Manual, pool));

        // Manual policy: the accepted record stays in its (partial) chunk until the flush.
        Assert.That(log.TryAppend(new byte[100], out _), Is.True);
        Observe(rented, waiting);
        var mine = rented.GetMeasurementSnapshot().Where(m => (string?)m.Tags[AppendLogMetrics.PoolTag] is { } name && name.StartsWith("custom-", StringComparison.Ordinal)).ToList();
        Assert.That(mine.Select(m => m.Value), Does.Contain(64L * 1024));
        Assert.That(rented.GetMeasurementSnapshot().Select(m => (string?)m.Tags[AppendLogMetrics.PoolTag]), Does.Contain("shared"));
        Assert.That(waiting.GetMeasurementSnapshot().Select(m => m.Value), Is.Not.Empty.And.All.GreaterThanOrEqualTo(0));

        await log.FlushAsync();
        rented.Clear();
        Observe(rented);
        Assert.That(rented.GetMeasurementSnapshot().Where(m => (string?)m.Tags[AppendLogMetrics.PoolTag] != "shared").Select(m => m.Value), Is.All.LessThanOrEqualTo(64L * 1024));
    }

    [Test]
    public async Task Recovery_CountsTheTailItCutOff()
    {
        using var truncations = new MetricCollector<long>(AppendLogMetrics.RecoveryTruncations);
        await using (var log = await SegmentedLog.OpenAsync(Options()))
        {
            await log.AppendAsync(new byte[100]);
        }

        // Garbage where the next batch would start: a torn write as a crash could leave it.
        string segment = Directory.GetFiles(_dir.File("log"), "*.log").Single();
        long end = await ValidEndAsync();
        await using (var stream = new FileStream(segment, FileMode.Open, FileAccess.Write))
        {
            stream.Position = end;
            stream.Write([0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x01, 0x00, 0xFF, 0xFF]);
        }

        truncations.Clear();
        await using (var reopened = await SegmentedLog.OpenAsync(Options()))
        {
            Assert.That(reopened.EndOffset, Is.EqualTo(1));
        }

        var cut = truncations.GetMeasurementSnapshot().Where(IsMine).ToList();
        Assert.That(cut, Is.Not.Empty);
        Assert.That(cut.Select(m => (string?)m.Tags[AppendLogMetrics.RecoveryActionTag]), Does.Contain("truncate"));
        Assert.That(cut.Select(m => (string?)m.Tags[AppendLogMetrics.RecoveryReasonTag]), Is.All.AnyOf("bad_length", "bad_magic", "bad_crc", "incomplete", "offset_mismatch"));
    }

    private static Task<long> ValidEndAsync()
    {
        // The log holds one batch with one 100-byte value: it ends where that batch ends (the file itself is longer,
        // the log reserves zero-filled space beyond its data).
        AppendRecord[] one = [new AppendRecord(new byte[100])];
        return Task.FromResult((long)AppendLog.Format.RecordBatchEncoder.MeasureUncompressed(one));
    }

    private bool IsMine<T>(CollectedMeasurement<T> m)
        where T : struct =>
        (string?)m.Tags.GetValueOrDefault(AppendLogMetrics.DirectoryTag) == _dir.File("log");

    private T Mine<T>(MetricCollector<T> collector)
        where T : struct =>
        collector.GetMeasurementSnapshot().Where(IsMine).Select(m => m.Value).Last();

    private static void Observe(params IDisposable[] collectors)
    {
        foreach (var c in collectors)
        {
            switch (c)
            {
                case MetricCollector<int> i: i.RecordObservableInstruments(); break;
                case MetricCollector<long> l: l.RecordObservableInstruments(); break;
                default: throw new ArgumentException("unexpected collector", nameof(collectors));
            }
        }
    }
}
