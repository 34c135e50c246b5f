using System.Diagnostics;
using AppendLog.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// Suffix truncation followed by appends, prefix truncation and retention, checked against the model: what stays is
/// readable byte for byte, the start is a segment boundary, reads below it are refused, and tails see the new history.
/// </summary>
[TestFixture(DirectIoMode.Preferred)]
[TestFixture(DirectIoMode.Disabled)]
public sealed class TruncationTests(DirectIoMode mode)
{
    private const long BaseTimeMs = 1_700_000_000_000;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private readonly ReadProperties _helpers = new(mode);
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-cut");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    /// <summary>A generated log, then a cut, then more batches; reopened before and/or after the cut.</summary>
    public sealed record CutScript(LogScript Log, int CutChoice, bool AtSegmentBase, BatchSpec[] After, bool ReopenBefore, bool ReopenAfter)
    {
        public override string ToString() =>
            $"{Log}; cut choice {CutChoice} (segment base: {AtSegmentBase}); then {After.Length} batches; reopen before {ReopenBefore}, after {ReopenAfter}";
    }

    private static Gen<CutScript> CutScriptGen() =>
        from log in ReadProperties.ScriptGen()
        from choice in Gen.Choose(0, int.MaxValue)
        from atBase in Gen.Frequency((1, Gen.Constant(true)), (2, Gen.Constant(false)))
        from count in Gen.Choose(1, 400)
        from after in Gen.ArrayOf(ReadProperties.BatchGen(), count)
        from reopenBefore in Gen.Frequency((1, Gen.Constant(true)), (2, Gen.Constant(false)))
        from reopenAfter in Gen.Frequency((1, Gen.Constant(true)), (2, Gen.Constant(false)))
        select new CutScript(
            Rising(log),
            choice,
            atBase,
            [.. after.Select(b => b with { TimeStepMs = Math.Abs(b.TimeStepMs) })],
            reopenBefore,
            reopenAfter);

    private static LogScript Rising(LogScript s) =>
        s with { Batches = [.. s.Batches.Select(b => b with { TimeStepMs = Math.Abs(b.TimeStepMs) })] };

    /// <summary>Checks the whole log against the model: every record, batches from the boundaries, time lookups.</summary>
    private static async Task AssertMatchesModelAsync(SegmentedLog log, ReadModel model, Random random, string context)
    {
        Assert.That((log.StartOffset, log.EndOffset, log.DurableEndOffset), Is.EqualTo((model.StartOffset, model.EndOffset, model.EndOffset)), context);
        model.AssertRecords(await ReadProperties.ReadRecordsAsync(log, model.StartOffset), model.StartOffset, wholeRest: true, $"{context}: ReadAsync(start)");
        await model.LocateBatchesAsync(log);
        var files = new Dictionary<long, byte[]>();
        var bases = ReadModel.SegmentBases(log.Directory);
        foreach (long from in model.Sample(model.BoundaryOffsets(bases), bases, 24, random))
        {
            var records = await ReadProperties.ReadRecordsAsync(log, from, 20);
            Assert.That(records, Has.Count.EqualTo(Math.Min(20, model.EndOffset - from)), $"{context}: ReadAsync({from}) count");
            model.AssertRecords(records, from, wholeRest: false, $"{context}: ReadAsync({from})");
            model.AssertBatches(await ReadProperties.ReadBatchesAsync(log, from, 8), from, log.Directory, files, $"{context}: ReadBatchesAsync({from})", 8);
        }

        if (model.Records.Count > 0)
        {
            await ReadProperties.AssertTimeLookupsAsync(log, model, random);
        }
    }

    [Test]
    public void SuffixTruncation_AcrossSegments_ThenAppendsAndReopen_ReadsExactlyAsTheModel()
    {
        ReadProperties.Check(nameof(SuffixTruncation_AcrossSegments_ThenAppendsAndReopen_ReadsExactlyAsTheModel), CutScriptGen(), RunCutAsync, cases: 3);
    }

    private async Task RunCutAsync(CutScript script)
    {
        using var dir = new TempDirectory("appendlog-cut");
        var clock = new ManualClock(BaseTimeMs);
        var options = _helpers.Options(dir.File("log"), clock);
        var (log, model) = await ReadProperties.BuildAsync(script.Log, options, clock);
        try
        {
            var bases = ReadModel.SegmentBases(log.Directory);
            var candidates = script.AtSegmentBase
                ? bases
                : [.. model.Batches.Select(b => b.BaseOffset).Append(model.EndOffset)];
            long cut = candidates[script.CutChoice % candidates.Count];
            if (script.ReopenBefore)
            {
                await log.DisposeAsync();
                log = await SegmentedLog.OpenAsync(options);
            }

            await log.TruncateSuffixAsync(cut);
            model.TruncateSuffix(cut);
            Assert.That((log.EndOffset, log.DurableEndOffset), Is.EqualTo((cut, cut)), "the cut is the new end, durable");
            Assert.That(ReadModel.SegmentBases(log.Directory).Last(), Is.LessThanOrEqualTo(cut), "no segment file after the cut remains");
            var random = new Random(script.Log.ProbeSeed);
            await AssertMatchesModelAsync(log, model, random, $"after the cut at {cut}");

            for (int i = 0; i < script.After.Length; i++)
            {
                var spec = script.After[i];
                clock.NowMs += spec.TimeStepMs;
                var records = ReadModel.MakeRecords(spec.Sizes, spec.Keyed, 100_000 + i);
                model.Add(await log.AppendBatchAsync(records), records, clock.NowMs);
            }

            if (script.ReopenAfter)
            {
                await log.DisposeAsync();
                log = await SegmentedLog.OpenAsync(options);
            }

            await AssertMatchesModelAsync(log, model, random, $"after the cut at {cut} and {script.After.Length} new batches");
        }
        finally
        {
            await log.DisposeAsync();
        }
    }

    private LogOptions Options(string directory, TimeProvider? clock = null) =>
        _helpers.Options(directory, clock ?? new ManualClock(BaseTimeMs));

    private static byte[] Value(long i, int size = 900) => ReadModel.Fill(size, (int)i);

    private static async Task<long> AppendManyAsync(SegmentedLog log, int count, int seedBase)
    {
        long first = -1;
        for (int i = 0; i < count; i++)
        {
            long o = await log.AppendAsync(Value(seedBase + i));
            if (first < 0)
            {
                first = o;
            }
        }

        return first;
    }

    /// <summary>
    /// A slow tail whose next offset is <paramref name="lag"/> records before the cut (0: exactly at the cut) while the
    /// log is cut and refilled: it must receive the old records before the cut, then the new ones from the cut, each once.
    /// </summary>
    [TestCase(0)]
    [TestCase(5)]
    public async Task Tail_PausedAtOrBeforeTheCut_ReceivesTheNewRecordsAfterTheCut(int lag)
    {
        await using var log = await SegmentedLog.OpenAsync(Options(_dir.File("log")));
        await AppendManyAsync(log, 2500, 0);
        Assert.That(log.SegmentCount, Is.GreaterThanOrEqualTo(2));
        long cut = 1200;
        var received = new List<LogRecord>();
        using var gate = new SemaphoreSlim(0);
        using var paused = new SemaphoreSlim(0);
        using var cts = new CancellationTokenSource();
        var reader = Task.Run(async () =>
        {
            try
            {
                await foreach (var r in log.TailAsync(0, cts.Token))
                {
                    received.Add(r);
                    if (r.Offset == cut - lag - 1)
                    {
                        paused.Release();
                        await gate.WaitAsync(cts.Token);
                    }
                }
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
            }
        });
        Assert.That(await paused.WaitAsync(Bound), Is.True, "the reader reached the pause");
        await log.TruncateSuffixAsync(cut);
        await AppendManyAsync(log, 1500, 1_000_000);
        gate.Release();
        long end = log.EndOffset;
        var clock = Stopwatch.StartNew();
        while (received.Count < end && clock.Elapsed < Bound && !reader.IsCompleted)
        {
            await Task.Delay(10);
        }

        await cts.CancelAsync();
        await reader.WaitAsync(Bound);
        Assert.That(received.Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, (int)end).Select(i => (long)i)), "every offset once, in order");
        for (int i = 0; i < end; i++)
        {
            var expected = i < cut ? Value(i) : Value(1_000_000 + i - cut);
            Assert.That(received[i].Value, Is.EqualTo(expected), $"offset {i}: {(i < cut ? "old" : "new")} bytes");
        }
    }


    /// <summary>
    /// A tail that already delivered records past the cut (it is caught up at the old end, waiting for offset old end
    /// + 1) while the log is cut and refilled. Nothing documents what it sees. A demanding user (a Raft follower's apply
    /// loop, a replica) expects to be told: the enumeration fails with an exception, or it rewinds and delivers the new
    /// records from the cut. Today it is worse: the tail's durable waiter (target old end + 1) stays at the head of the
    /// writer's ordered waiter queue, the cut resets the queue's last target, so every append after the cut queues
    /// behind it and none is acknowledged until the log grows past the old end: sequential appends hang.
    /// </summary>
    [Test]
    public async Task Tail_PastTheCut_IsToldOrRewinds_NeverSkipsTheNewRecords()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(_dir.File("log")));
        await AppendManyAsync(log, 2000, 0);
        long oldEnd = log.EndOffset, cut = 1200;
        var received = new List<LogRecord>();
        long next = 0;
        using var cts = new CancellationTokenSource();
        Exception? failure = null;
        var reader = Task.Run(async () =>
        {
            try
            {
                await foreach (var r in log.TailAsync(0, cts.Token))
                {
                    received.Add(r);
                    Volatile.Write(ref next, r.Offset + 1);
                }
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        var clock = Stopwatch.StartNew();
        while (Volatile.Read(ref next) < oldEnd && clock.Elapsed < Bound)
        {
            await Task.Delay(10);
        }

        int before = received.Count;
        Assert.That(Volatile.Read(ref next), Is.EqualTo(oldEnd), "the tail caught up before the cut");
        await log.TruncateSuffixAsync(cut).AsTask().WaitAsync(Bound);
        try
        {
            await AppendManyAsync(log, 1500, 1_000_000).WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch (TimeoutException)
        {
            await cts.CancelAsync();
            Assert.Fail($"appends after the cut hang (end {log.EndOffset}, durable {log.DurableEndOffset}) while a tail waits past the cut");
        }

        long end = log.EndOffset;
        clock.Restart();
        while (Volatile.Read(ref next) < end && failure is null && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(10);
        }

        await cts.CancelAsync();
        await reader.WaitAsync(Bound);
        var after = received.Skip(before).ToList();
        TestContext.Out.WriteLine($"after the cut the tail got {after.Count} records, first {after.FirstOrDefault()?.Offset}; failure: {failure?.GetType().Name}");
        if (failure is null)
        {
            Assert.That(after.Select(r => r.Offset).FirstOrDefault(-1), Is.EqualTo(cut), "the tail rewinds to the cut (or fails)");
            Assert.That(after.Select(r => r.Offset), Is.EqualTo(Enumerable.Range((int)cut, (int)(end - cut)).Select(i => (long)i)));
        }
    }
}
