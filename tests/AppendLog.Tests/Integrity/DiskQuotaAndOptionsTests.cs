using AppendLog.Appender;
using AppendLog.Io.Interop;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Integrity;

/// <summary>EDQUOT is a full disk, not a fault; option combinations the README calls valid open or say what to change.</summary>
[CancelAfter(60_000)]
public sealed class DiskQuotaAndOptionsTests
{
    private const string Dir = "/sim/quota";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private static readonly IoWorkers s_io = new(2, "sim-quota-io");

    private static LogOptions Options() => new()
    {
        Directory = Dir,
        SegmentSize = 1024 * 1024,
        MaximumBatchSize = 64 * 1024,
        PreallocationMinimumStep = 128 * 1024,
        PreallocationMaximumStep = 128 * 1024,
    };

    [TestCase(122, TestName = "EDQUOT during preallocation is LogDiskFullException, not a fault")]
    [TestCase(28, TestName = "ENOSPC during preallocation is LogDiskFullException, not a fault")]
    public async Task QuotaOrSpaceExhaustedDuringPreallocation_IsLogDiskFullException_NotAFault(int errnoValue)
    {
        var errno = (Errno)errnoValue;
        var storage = new SimulatedStorage(Seeds.Get());
        await using var log = await SegmentedLog.OpenAsync(Options(), storage, s_io, CancellationToken.None).AsTask().WaitAsync(Bound);
        long next = 0;
        for (; next < 5; next++)
        {
            await log.AppendAsync(new byte[1000]).AsTask().WaitAsync(Bound);
        }

        // Every reservation fails from now on, so the append that needs the next step sees the error.
        storage.SetErrorProbability(StorageOperation.Allocate, 1.0, errno);
        LogDiskFullException? full = null;
        for (int i = 0; i < 200 && full is null; i++)
        {
            try
            {
                await log.AppendAsync(new byte[4000]).AsTask().WaitAsync(Bound);
                next++;
            }
            catch (LogDiskFullException e)
            {
                full = e;
            }
        }

        Assert.That(full, Is.Not.Null, $"{errno} during preallocation surfaces as LogDiskFullException within 200 appends of 4 KB");
        Assert.That(storage.GetOperationCount(StorageOperation.Allocate), Is.GreaterThan(0));

        storage.ClearFaults();
        Assert.That(await log.AppendAsync(new byte[10]).AsTask().WaitAsync(Bound), Is.EqualTo(next), "not faulted: appends resume once space returns");
    }

    [Test]
    public async Task OneMiBSegments_WithTheDefaultMaximumBatchSize_Open()
    {
        using var dir = new TempDirectory("appendlog-options");
        var options = new LogOptions { Directory = dir.File("log"), SegmentSize = 1024 * 1024, DirectIo = DirectIoMode.Disabled };
        Assert.That(options.MaximumBatchSize, Is.EqualTo(1024 * 1024), "the default batch limit follows the smaller segment");
        await using var log = await SegmentedLog.OpenAsync(options);
        Assert.That(await log.AppendAsync(new byte[100]), Is.Zero);
        Assert.That(await log.AppendAsync(new byte[700 * 1024]), Is.EqualTo(1));
        Assert.That(await log.AppendAsync(new byte[700 * 1024]), Is.EqualTo(2), "rolls to a new segment");
    }

    [Test]
    public void ABatchLimitAboveTheSegmentSize_NamesTheOptionsToChange()
    {
        using var dir = new TempDirectory("appendlog-options");
        var options = new LogOptions { Directory = dir.File("log"), SegmentSize = 1024 * 1024, MaximumBatchSize = 2 * 1024 * 1024, DirectIo = DirectIoMode.Disabled };
        var ex = Assert.ThrowsAsync<ArgumentException>(async () => await SegmentedLog.OpenAsync(options))!;
        Assert.That(ex, Is.Not.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(ex.Message, Does.Contain(nameof(LogOptions.MaximumBatchSize)).And.Contain(nameof(LogOptions.SegmentSize)));
    }
}
