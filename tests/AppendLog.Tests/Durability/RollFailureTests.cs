using AppendLog.Appender;
using AppendLog.Io.Interop;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Durability;

/// <summary>
/// A segment file that cannot be created at a roll (docs/internals.md, "The contract"): no space is the typed,
/// recoverable <see cref="LogDiskFullException"/> with nothing changed; any other error faults the log; in both cases
/// every acknowledged record is there after a reopen.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class RollFailureTests
{
    private const string Dir = "/sim/roll";
    private static readonly IoWorkers s_io = new(2, "sim-roll-io");

    private static LogOptions Options() => SmallSimulatedLog.Options(Dir) with { DurableCheckpointInterval = TimeSpan.FromHours(1) };

    /// <summary>Appends 4,000-byte records until the next one would roll; returns how many were acknowledged.</summary>
    private static async Task<int> FillFirstSegmentAsync(SegmentedLog log)
    {
        int i = 0;
        while (log.SegmentCount == 1 && i < 400)
        {
            Assert.That(await log.AppendAsync(Payload.Create(i, 4000)), Is.EqualTo(i));
            i++;
        }

        Assert.That(log.SegmentCount, Is.EqualTo(2), "the test rolled once while filling");
        return i;
    }

    [Test]
    public async Task NoSpaceForTheNewSegment_IsLogDiskFull_NothingChanges_AndAppendsResumeOnceSpaceIsBack()
    {
        var storage = new SimulatedStorage(Seeds.Get());
        var log = await SmallSimulatedLog.OpenAsync(Options(), storage, s_io);
        int acknowledged = await FillFirstSegmentAsync(log);
        // From here on, creating files fails: the next segment prepared ahead (tolerated) and then the roll itself.
        storage.SetErrorProbability(StorageOperation.Create, 1.0, Errno.ENOSPC);
        while (acknowledged < 800)
        {
            try
            {
                Assert.That(await log.AppendAsync(Payload.Create(acknowledged, 4000)), Is.EqualTo(acknowledged));
                acknowledged++;
            }
            catch (LogDiskFullException e)
            {
                Assert.That(e.FilePath, Does.EndWith(".log"));
                break;
            }
        }

        Assert.That(log.SegmentCount, Is.EqualTo(2), "the roll failed: no new segment");
        Assert.That(log.EndOffset, Is.EqualTo(acknowledged), "nothing was appended by the failed call");
        Assert.ThrowsAsync<LogDiskFullException>(async () => await log.AppendAsync(Payload.Create(acknowledged, 4000)), "still no space");

        storage.ClearFaults();
        Assert.That(await log.AppendAsync(Payload.Create(acknowledged, 4000)), Is.EqualTo(acknowledged), "space is back: the same log rolls");
        acknowledged++;
        Assert.That(log.SegmentCount, Is.EqualTo(3));
        await log.DisposeAsync();

        await using var reopened = await SmallSimulatedLog.OpenAsync(Options(), storage.Crash(5), s_io);
        long n = 0;
        await foreach (var r in reopened.ReadAsync(0))
        {
            Assert.That(Payload.Check(r.Value, out long id), Is.Null);
            Assert.That(id, Is.EqualTo(n++));
        }

        Assert.That(n, Is.EqualTo(acknowledged));
    }

    [Test]
    public async Task AnIoErrorCreatingTheNewSegment_FaultsTheLog_AndNoAcknowledgedRecordIsLost()
    {
        var storage = new SimulatedStorage(Seeds.Get());
        var log = await SmallSimulatedLog.OpenAsync(Options(), storage, s_io);
        int acknowledged = await FillFirstSegmentAsync(log);
        storage.SetErrorProbability(StorageOperation.Create, 1.0, Errno.EIO);
        Exception? failure = null;
        while (failure is null && acknowledged < 800)
        {
            try
            {
                Assert.That(await log.AppendAsync(Payload.Create(acknowledged, 4000)), Is.EqualTo(acknowledged));
                acknowledged++;
            }
            catch (Exception e)
            {
                failure = e;
            }
        }

        Assert.That(failure, Is.TypeOf<LogFaultedException>(), "a failed creation at a roll faults the log, not a raw storage exception");
        Assert.ThrowsAsync<LogFaultedException>(async () => await log.AppendAsync(new byte[10]), "faulted until reopened");
        await log.DisposeAsync();

        storage.ClearFaults();
        await using var reopened = await SmallSimulatedLog.OpenAsync(Options(), storage.Crash(6), s_io);
        Assert.That(reopened.EndOffset, Is.EqualTo(acknowledged), "every acknowledged record, nothing more");
    }
}
