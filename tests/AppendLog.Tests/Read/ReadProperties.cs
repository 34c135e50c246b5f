using AppendLog.Testing;
using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>One batch of a generated log: record value sizes, keyed or not, and the clock step before it.</summary>
public sealed record BatchSpec(int[] Sizes, bool Keyed, int TimeStepMs)
{
    public override string ToString() => $"[{Sizes.Length} rec, {Sizes.Sum()} B{(Keyed ? ", keyed" : "")}, dt {TimeStepMs}]";
}

/// <summary>A generated log: its batches, after which batches it is reopened, and the seed of its probes.</summary>
public sealed record LogScript(BatchSpec[] Batches, int[] ReopenAfter, int ProbeSeed)
{
    public override string ToString() =>
        $"{Batches.Length} batches, {Batches.Sum(b => b.Sizes.Sum())} value bytes, reopen after {string.Join(",", ReopenAfter)}, probe seed {ProbeSeed}";
}

/// <summary>
/// Properties of the read path against an in-memory model, over random logs on real files: random batch shapes,
/// timestamps that mostly rise and sometimes fall, 1 MiB segments (so a log spans several), reopened midway.
/// Each property runs a fixed number of cases from the run's seed (<see cref="Seeds"/>; FsCheck prints the case).
/// </summary>
[TestFixture(DirectIoMode.Preferred)]
[TestFixture(DirectIoMode.Disabled)]
public sealed class ReadProperties(DirectIoMode mode)
{
    private const int Cases = 6;
    private const long BaseTimeMs = 1_700_000_000_000;

    internal static Gen<BatchSpec> BatchGen() =>
        from shape in Gen.Frequency(
            (6, Gen.Choose(1, 1)),
            (3, Gen.Choose(2, 12)),
            (1, Gen.Choose(13, 60)))
        from sizes in Gen.ArrayOf(
            Gen.Frequency((6, Gen.Choose(0, 1500)), (3, Gen.Choose(1500, 4000)), (1, Gen.Constant(0))),
            shape)
        from keyed in Gen.Frequency((4, Gen.Constant(false)), (1, Gen.Constant(true)))
        from step in Gen.Frequency((12, Gen.Choose(0, 3)), (2, Gen.Choose(-40, -1)), (1, Gen.Choose(10, 300)))
        select new BatchSpec(sizes, keyed, step);

    /// <summary>2.2 to 3.6 MB of values: three or four 1 MiB segments.</summary>
    internal static Gen<LogScript> ScriptGen() =>
        from target in Gen.Choose(2_200_000, 3_600_000)
        from batches in Gen.ArrayOf(BatchGen(), 1200)
        from reopens in Gen.Frequency(
            (1, Gen.Constant(Array.Empty<int>())),
            (2, Gen.ArrayOf(Gen.Choose(0, 400), 1)),
            (1, Gen.ArrayOf(Gen.Choose(0, 400), 2)))
        from probeSeed in Gen.Choose(0, int.MaxValue)
        select new LogScript(TakeUntil(batches, target), reopens, probeSeed);

    private static BatchSpec[] TakeUntil(BatchSpec[] batches, int targetBytes)
    {
        int total = 0, n = 0;
        while (n < batches.Length && total < targetBytes)
        {
            total += batches[n++].Sizes.Sum() + 80;
        }

        return batches[..n];
    }

    internal static void Check<T>(string name, Gen<T> gen, Func<T, Task> body, int cases = Cases)
    {
        int seed = Seeds.Get(name);
        var config = Config.QuickThrowOnFailure
            .WithMaxTest(cases)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd((ulong)(uint)seed), FSharpOption<int>.None)));
        Prop.ForAll(Arb.From(gen), (T script) => body(script).GetAwaiter().GetResult()).Check(config);
    }

    internal LogOptions Options(string directory, TimeProvider clock) => new()
    {
        Directory = directory,
        DirectIo = mode,
        SegmentSize = 1024 * 1024,
        MaximumBatchSize = 256 * 1024,
        PreallocationMinimumStep = 256 * 1024,
        PreallocationMaximumStep = 256 * 1024,
        TimeProvider = clock,
    };

    /// <summary>
    /// Appends the script's batches (without waiting for each: TryAppendBatch, a flush every 32 batches), reopening
    /// where it says; returns the open log with everything durable and the model.
    /// </summary>
    internal static async Task<(SegmentedLog Log, ReadModel Model)> BuildAsync(LogScript script, LogOptions options, ManualClock clock)
    {
        var model = new ReadModel();
        var log = await SegmentedLog.OpenAsync(options);
        try
        {
            for (int i = 0; i < script.Batches.Length; i++)
            {
                var spec = script.Batches[i];
                clock.NowMs += spec.TimeStepMs;
                var records = ReadModel.MakeRecords(spec.Sizes, spec.Keyed, i);
                long first;
                if (!log.TryAppendBatch(records, out first))
                {
                    first = await log.AppendBatchAsync(records);
                }

                model.Add(first, records, clock.NowMs);
                if (i % 32 == 31)
                {
                    await log.FlushAsync();
                }

                if (script.ReopenAfter.Contains(i))
                {
                    await log.DisposeAsync();
                    log = await SegmentedLog.OpenAsync(options);
                    Assert.That(log.EndOffset, Is.EqualTo(model.EndOffset), "a clean reopen keeps every record");
                }
            }

            await log.FlushAsync();
            Assert.That(log.DurableEndOffset, Is.EqualTo(model.EndOffset));
            return (log, model);
        }
        catch
        {
            await log.DisposeAsync();
            throw;
        }
    }

    internal static Task<List<LogRecord>> ReadRecordsAsync(SegmentedLog log, long from, int limit = int.MaxValue) =>
        TakeAsync(log.ReadAsync(from), limit);

    internal static Task<List<LogBatch>> ReadBatchesAsync(SegmentedLog log, long from, int limit = int.MaxValue) =>
        TakeAsync(log.ReadBatchesAsync(from), limit);

    private static async Task<List<T>> TakeAsync<T>(IAsyncEnumerable<T> items, int limit)
    {
        var list = new List<T>();
        if (limit == 0)
        {
            return list;
        }

        await foreach (var item in items)
        {
            list.Add(item);
            if (list.Count == limit)
            {
                break;
            }
        }

        return list;
    }

    [Test]
    public void OffsetLookups_ReturnExactlyTheModelsRecordsAndBatches() =>
        Check(nameof(OffsetLookups_ReturnExactlyTheModelsRecordsAndBatches), ScriptGen(), async script =>
        {
            using var dir = new TempDirectory("appendlog-read");
            var clock = new ManualClock(BaseTimeMs);
            var (log, model) = await BuildAsync(script, Options(dir.File("log"), clock), clock);
            await using (log)
            {
                var bases = ReadModel.SegmentBases(log.Directory);
                Assert.That(bases, Has.Count.GreaterThanOrEqualTo(3), "several segments");
                await model.LocateBatchesAsync(log);
                var random = new Random(script.ProbeSeed);
                var probes = model.Sample(model.BoundaryOffsets(bases), bases, 48, random);
                for (int i = 0; i < 12; i++)
                {
                    probes.Add(random.NextInt64(model.StartOffset, model.EndOffset + 1));
                }

                var files = new Dictionary<long, byte[]>();
                int n = 0;
                foreach (long from in probes)
                {
                    // Every fifth probe reads to the end; the others the first 40 records (the full reads cover the tails).
                    bool whole = n++ % 5 == 0 || from >= model.EndOffset - 40;
                    var records = await ReadRecordsAsync(log, from, whole ? int.MaxValue : 40);
                    model.AssertRecords(records, from, whole, $"ReadAsync({from})");
                    if (!whole)
                    {
                        Assert.That(records, Has.Count.EqualTo(40), $"ReadAsync({from}) has at least 40 records");
                    }

                    int batches = whole ? int.MaxValue : 8;
                    model.AssertBatches(await ReadBatchesAsync(log, from, batches), from, log.Directory, files, $"ReadBatchesAsync({from})", batches);
                }

                Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await ReadRecordsAsync(log, model.EndOffset + 1), "past the durable end");
                Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await ReadRecordsAsync(log, -1), "a negative offset");
            }
        });

    /// <summary>
    /// Timestamps that sometimes go back (a clock step, records stamped by producers): the index entries carry the
    /// running maximum timestamp, so a lookup never starts after an earlier record that already reaches the target.
    /// </summary>
    [Test]
    public void TimeLookups_ReturnTheFirstOffsetAtOrAfterTheTarget_OrTheEnd() =>
        CheckTimeLookups(nameof(TimeLookups_ReturnTheFirstOffsetAtOrAfterTheTarget_OrTheEnd), ScriptGen());

    /// <summary>
    /// As <see cref="TimeLookups_ReturnTheFirstOffsetAtOrAfterTheTarget_OrTheEnd"/> with timestamps that only rise
    /// (no backward clock steps): the common case, with more probes landing between index entries.
    /// </summary>
    [Test]
    public void TimeLookups_WithRisingTimestamps_AgreeWithTheModel() =>
        CheckTimeLookups(nameof(TimeLookups_WithRisingTimestamps_AgreeWithTheModel), ScriptGen().Select(Rising));

    private void CheckTimeLookups(string name, Gen<LogScript> scripts) =>
        Check(name, scripts, async script =>
        {
            using var dir = new TempDirectory("appendlog-read");
            var clock = new ManualClock(BaseTimeMs);
            var (log, model) = await BuildAsync(script, Options(dir.File("log"), clock), clock);
            await using (log)
            {
                await AssertTimeLookupsAsync(log, model, new Random(script.ProbeSeed));
            }
        });

    private static LogScript Rising(LogScript s) =>
        s with { Batches = [.. s.Batches.Select(b => b with { TimeStepMs = Math.Abs(b.TimeStepMs) })] };

    internal static async Task AssertTimeLookupsAsync(SegmentedLog log, ReadModel model, Random random)
    {
        var stamps = model.Records.Select(r => r.TimestampMs).Distinct().ToArray();
        var targets = new SortedSet<long> { stamps.Min() - 1, stamps.Min(), stamps.Max(), stamps.Max() + 1, long.MinValue / 2 };
        for (int i = 0; i < 60; i++)
        {
            long t = stamps[random.Next(stamps.Length)];
            targets.UnionWith([t - 1, t, t + 1]);
        }

        foreach (long t in targets)
        {
            long expected = model.FirstOffsetAtOrAfter(t);
            long found = await log.FindOffsetAsync(DateTimeOffset.FromUnixTimeMilliseconds(Math.Max(t, -62_135_596_800_000)));
            if (found != expected)
            {
                Assert.Fail($"FindOffsetAsync({t}) = {found} (ts {(found < model.EndOffset ? model.At(found).TimestampMs : -1)}), "
                    + $"the model says {expected} (ts {(expected < model.EndOffset ? model.At(expected).TimestampMs : -1)})");
            }
        }
    }
}
