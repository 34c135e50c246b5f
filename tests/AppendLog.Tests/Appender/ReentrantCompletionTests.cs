using System.Diagnostics.Metrics;
using AppendLog.Appender;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Appender;

/// <summary>
/// User code that runs while a log completes its waiters (a MeterListener callback on the append-duration histogram,
/// which fires inside the completion) and appends again must not disturb the completion under way: before, it shared
/// the completing thread's waiter list, could complete a pooled waiter that its own append had just reused (an
/// acknowledgement before durability) and cleared the list under the loop iterating it (waiters never completed).
/// </summary>
[NonParallelizable] // the listener sees every log of the process
[CancelAfter(60_000)]
public sealed class ReentrantCompletionTests
{
    [Test]
    public async Task AppendingFromInsideACompletion_NeitherAcknowledgesEarlyNorLosesAWaiter()
    {
        using var dir = new TempDirectory("appendlog-reentrant");
        var options = new LogOptions
        {
            Directory = dir.Path,
            Tuning = new PipelineTuning { InlineContinuations = false }, // waiters complete on the I/O thread's loop
        };
        await using var log = await SegmentedLog.OpenAsync(options);
        byte[] payload = new byte[100];
        int reentries = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "AppendLog" && instrument.Name == "appendlog.append.duration")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, _, _, _) =>
        {
            if (Interlocked.Increment(ref reentries) <= 2_000)
            {
                log.TryAppend(payload, out _);
            }
        });
        listener.Start();

        int early = 0;
        async Task AppendAndCheck()
        {
            for (int i = 0; i < 50; i++)
            {
                long offset = await log.AppendAsync(payload);
                if (log.DurableEndOffset <= offset)
                {
                    Interlocked.Increment(ref early);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(AppendAndCheck))).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.That(reentries, Is.GreaterThan(0), "the callback ran inside completions");
        Assert.That(early, Is.Zero, "no append was acknowledged before it was durable");
    }
}
