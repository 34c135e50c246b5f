using System.Globalization;
using System.Text;
using AppendLog.Appender;
using AppendLog.Io.Interop;
using AppendLog.Testing;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Durability;

/// <summary>
/// The real writer driven on one thread by a seed: appends (<c>TryAppend</c>), the I/O works it posts run one at a time
/// in an order drawn from the seed (writes and syncs completing out of order, reservations, rolls, seals), injected
/// write/sync/fallocate errors, then a power cut at a drawn step. The recovered log must hold every record the log
/// reported durable, intact and at its offset, and nothing it never accepted. A seed replays exactly (checked by
/// running one twice and comparing the traces), so a failure names a seed that reproduces it.
/// Runs: 150 seeds by default, <c>APPENDLOG_SEEDED_RUNS</c> for more.
/// </summary>
[CancelAfter(600_000)]
public sealed class SeededScheduleTests
{
    private static readonly IoWorkers s_verifyIo = new(2, "seeded-verify-io");
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static int Runs =>
        int.TryParse(Environment.GetEnvironmentVariable("APPENDLOG_SEEDED_RUNS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out int runs) ? runs : 150;

    private sealed record Outcome(string Trace, long Accepted, long DurableSeen, bool Faulted, long Recovered);

    [Test]
    public async Task EverySeed_KeepsWhatWasReportedDurable_ThroughAPowerCut()
    {
        int faulted = 0;
        long recovered = 0, durable = 0, works = 0;
        for (int seed = 1; seed <= Runs; seed++)
        {
            var outcome = await RunAsync(seed);
            faulted += outcome.Faulted ? 1 : 0;
            recovered += outcome.Recovered;
            durable += outcome.DurableSeen;
            works += outcome.Trace.Count(static c => c == 'R');
        }

        TestContext.Out.WriteLine($"{Runs} seeds: {works} I/O works run in drawn order, {durable} records reported durable, {recovered} recovered, {faulted} runs faulted by injected errors");
        Assert.That(durable, Is.GreaterThan(0), "the runs made records durable");
    }

    [Test]
    public async Task ASeed_ReplaysExactly([Values(7, 1234)] int seed)
    {
        var first = await RunAsync(seed);
        var second = await RunAsync(seed);
        Assert.That(second.Trace, Is.EqualTo(first.Trace), "the same seed gives the same interleaving and the same outcome");
        Assert.That(second.Recovered, Is.EqualTo(first.Recovered));
    }

    private static async Task<Outcome> RunAsync(int seed)
    {
        var random = new Random(seed);
        var storage = new SimulatedStorage(seed);
        var executor = new SeededIoExecutor();
        using var pool = new LogBufferPool(budgetBytes: 4 * 1024 * 1024, chunkSize: 64 * 1024);
        var options = new LogOptions
        {
            Directory = "/sim/seeded",
            SegmentSize = 1024 * 1024,
            FlushPolicy = FlushPolicy.GroupCommit,
            TimeProvider = new FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 0, 0, 0, TimeSpan.Zero)),
            BufferPool = pool,
            Tuning = new PipelineTuning { InlineContinuations = false }, // waiters complete on this thread
        };

        var trace = new StringBuilder();
        var log = await DriveAsync(SegmentedLog.OpenAsync(options, storage, executor, CancellationToken.None).AsTask(), executor, random);
        if (random.Next(4) == 0)
        {
            var operation = random.Next(3) switch { 0 => StorageOperation.Write, 1 => StorageOperation.SyncData, _ => StorageOperation.Allocate };
            int nth = random.Next(1, 40);
            storage.InjectError(operation, nth, Errno.EIO);
            trace.Append(CultureInfo.InvariantCulture, $"inject {operation} #{nth};");
        }

        long accepted = 0, durableSeen = 0;
        bool faulted = false;
        int steps = random.Next(20, 700);
        for (int step = 0; step < steps; step++)
        {
            int draw = random.Next(100);
            if (draw < 45 && !faulted)
            {
                int size = random.Next(Payload.MinimumLength, random.Next(2) == 0 ? 600 : 40_000);
                try
                {
                    if (log.TryAppend(Payload.Create(accepted, size), out long offset))
                    {
                        Assert.That(offset, Is.EqualTo(accepted), $"seed {seed}: offsets are consecutive");
                        accepted++;
                        trace.Append('A');
                    }
                    else
                    {
                        trace.Append('a');
                    }
                }
                catch (LogFaultedException)
                {
                    faulted = true;
                    trace.Append('F');
                }
            }
            else
            {
                trace.Append(executor.RunOne(random) ? 'R' : 'r');
            }

            durableSeen = Math.Max(durableSeen, log.DurableEndOffset);
            trace.Append(durableSeen).Append(' ');
        }

        // Power cut: the old storage answers EIO from now on; the log's remaining I/O fails and it closes faulted.
        var crashed = storage.Crash(seed);
        try
        {
            await DriveAsync(log.DisposeAsync().AsTask(), executor, random);
        }
        catch (Exception e) when (e is LogFaultedException or IOException)
        {
            // The cut failed its last writes: expected.
        }

        Assert.That(durableSeen, Is.LessThanOrEqualTo(accepted), $"seed {seed}: durable never passes what was accepted");
        long recovered = await VerifyAsync(crashed, options.Directory, seed, durableSeen, accepted);
        trace.Append(CultureInfo.InvariantCulture, $"| recovered {recovered}");
        return new Outcome(trace.ToString(), accepted, durableSeen, faulted, recovered);
    }

    /// <summary>Runs drawn works until <paramref name="task"/> completes (its continuations may run on another thread: wait for them before drawing again).</summary>
    private static async Task<T> DriveAsync<T>(Task<T> task, SeededIoExecutor executor, Random random)
    {
        await DriveAsync((Task)task, executor, random);
        return await task;
    }

    private static async Task DriveAsync(Task task, SeededIoExecutor executor, Random random)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!task.IsCompleted)
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the task completes once its I/O has run");
            if (!SpinWait.SpinUntil(() => task.IsCompleted, 50) && !executor.RunOne(random))
            {
                await Task.Delay(1);
            }
        }

        await task;
    }

    private static async Task<long> VerifyAsync(SimulatedStorage crashed, string directory, int seed, long durableSeen, long accepted)
    {
        await using var log = await SegmentedLog.OpenAsync(new LogOptions { Directory = directory }, crashed, s_verifyIo, CancellationToken.None).AsTask().WaitAsync(Bound);
        long expected = 0;
        await foreach (var record in log.ReadAsync(0).WithCancellation(CancellationToken.None))
        {
            Assert.That(record.Offset, Is.EqualTo(expected), $"seed {seed}: offsets from 0 without a gap");
            Assert.That(Payload.Check(record.Value, out long id), Is.Null, $"seed {seed}: offset {record.Offset} intact");
            Assert.That(id, Is.EqualTo(record.Offset), $"seed {seed}: the record at offset {record.Offset} is the one appended there");
            expected++;
        }

        Assert.That(expected, Is.GreaterThanOrEqualTo(durableSeen), $"seed {seed}: every record reported durable survived the power cut");
        Assert.That(expected, Is.LessThanOrEqualTo(accepted), $"seed {seed}: nothing that was never accepted");
        return expected;
    }
}
