using AppendLog.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// Prefix truncation and retention against the model: segments leave whole from the head, the new start is a
/// segment base, every remaining record reads back byte for byte, reads below the start are refused, the active
/// segment and data inside the limits are never deleted, and the state survives a reopen.
/// </summary>
public sealed class RetentionTests
{
    private const long BaseTimeMs = 1_700_000_000_000;
    private readonly ReadProperties _helpers = new(DirectIoMode.Preferred);

    /// <summary>A generated log and what to cut: an offset choice, a size limit (in segments) or an age.</summary>
    public sealed record RetentionScript(LogScript Log, int Choice, int LimitKind, int LimitSegments, int AgeFraction)
    {
        public override string ToString() => $"{Log}; choice {Choice}, kind {LimitKind}, segments {LimitSegments}, age fraction {AgeFraction}%";
    }

    private static Gen<RetentionScript> Scripts() =>
        from log in ReadProperties.ScriptGen()
        from choice in Gen.Choose(0, int.MaxValue)
        from kind in Gen.Choose(0, 2)
        from segments in Gen.Choose(1, 4)
        from age in Gen.Choose(0, 120)
        select new RetentionScript(log, choice, kind, segments, age);

    /// <summary>Sizes (bytes of batches) of each segment, from the model's located batches.</summary>
    private static Dictionary<long, long> SegmentSizes(ReadModel model) =>
        model.Batches.GroupBy(b => b.SegmentBase).ToDictionary(g => g.Key, g => (long)g.Sum(b => b.Length));

    private static async Task AssertStartAsync(SegmentedLog log, ReadModel model, List<long> basesBefore, string context)
    {
        long start = log.StartOffset;
        var bases = ReadModel.SegmentBases(log.Directory);
        Assert.That(bases, Is.Not.Empty);
        Assert.That(start, Is.EqualTo(bases[0]), $"{context}: StartOffset is the first remaining segment's base");
        Assert.That(basesBefore, Does.Contain(start), $"{context}: the start is a segment boundary of the log before");
        Assert.That(bases, Is.EqualTo(basesBefore.Where(b => b >= start)), $"{context}: segments leave only from the head");
        Assert.That(bases[^1], Is.EqualTo(basesBefore[^1]), $"{context}: the active segment stays");
        Assert.That(log.EndOffset, Is.EqualTo(model.EndOffset), $"{context}: nothing at the end changes");
        model.TruncatePrefix(start);
        model.AssertRecords(await ReadProperties.ReadRecordsAsync(log, start), start, wholeRest: true, $"{context}: everything from the start");
        if (start > 0)
        {
            Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await ReadProperties.ReadRecordsAsync(log, start - 1), $"{context}: ReadAsync below the start");
            Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await ReadProperties.ReadBatchesAsync(log, 0), $"{context}: ReadBatchesAsync below the start");
            Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.TailAsync(start - 1).GetAsyncEnumerator().MoveNextAsync(), $"{context}: TailAsync below the start");
        }

        Assert.That(await log.FindOffsetAsync(DateTimeOffset.FromUnixTimeMilliseconds(0)), Is.EqualTo(start), $"{context}: a time before everything finds the start");
    }

    [Test]
    public void PrefixTruncation_DeletesExactlyTheSegmentsBelowTheOffset() =>
        ReadProperties.Check(nameof(PrefixTruncation_DeletesExactlyTheSegmentsBelowTheOffset), Scripts(), async script =>
        {
            using var dir = new TempDirectory("appendlog-prefix");
            var clock = new ManualClock(BaseTimeMs);
            var options = _helpers.Options(dir.File("log"), clock);
            var (log, model) = await ReadProperties.BuildAsync(script.Log, options, clock);
            await using (log)
            {
                var bases = ReadModel.SegmentBases(log.Directory);
                long before = script.Choice % (model.EndOffset + 2);
                int deleted = log.TruncatePrefix(before);

                // Segment i holds [bases[i], bases[i + 1]); it goes when it ends at or below the offset, never the last.
                long expected = bases.Last(b => b <= Math.Min(before, bases[^1]));
                Assert.That(log.StartOffset, Is.EqualTo(expected), $"TruncatePrefix({before})");
                Assert.That(deleted, Is.EqualTo(bases.IndexOf(expected)), "the count of deleted segments");
                await AssertStartAsync(log, model, bases, $"TruncatePrefix({before})");
                Assert.That(await log.AppendAsync(new byte[10]), Is.EqualTo(model.EndOffset), "appends continue at the end");
            }

            await using var reopened = await SegmentedLog.OpenAsync(options);
            Assert.That(reopened.StartOffset, Is.EqualTo(model.StartOffset), "the start survives a reopen");
            Assert.That(reopened.EndOffset, Is.EqualTo(model.EndOffset + 1));
        }, cases: 4);

    [Test]
    public void Retention_BySizeOrAge_DeletesOnlyWhatIsBeyondTheLimits() =>
        ReadProperties.Check(nameof(Retention_BySizeOrAge_DeletesOnlyWhatIsBeyondTheLimits), Scripts(), async script =>
        {
            using var dir = new TempDirectory("appendlog-retention");
            var clock = new ManualClock(BaseTimeMs);
            var options = _helpers.Options(dir.File("log"), clock);
            var (log, model) = await ReadProperties.BuildAsync(script.Log, options, clock);
            List<long> bases;
            await using (log)
            {
                await model.LocateBatchesAsync(log);
                bases = ReadModel.SegmentBases(log.Directory);
            }

            // Reopen with the limits (the first instance had none, so no background retention ran while writing).
            var sizes = SegmentSizes(model);
            long limitBytes = script.LimitSegments * options.SegmentSize;
            long span = Math.Max(1, model.Records.Max(r => r.TimestampMs) - BaseTimeMs);
            var age = TimeSpan.FromMilliseconds(Math.Max(1, span * script.AgeFraction / 100));
            bool bySize = script.LimitKind != 1, byAge = script.LimitKind != 0;
            var limited = options with { RetentionBytes = bySize ? limitBytes : null, RetentionAge = byAge ? age : null };
            clock.NowMs = model.Records.Max(r => r.TimestampMs) + 1;
            await using var reopened = await SegmentedLog.OpenAsync(limited);
            var maxTs = model.Batches.GroupBy(b => b.SegmentBase).ToDictionary(g => g.Key, g => g.Max(b => b.TimestampMs));
            reopened.ApplyRetention();
            long start = reopened.StartOffset;
            int kept = bases.IndexOf(start);
            Assert.That(kept, Is.GreaterThanOrEqualTo(0), "the start is a segment base");
            bool TooBig(int i) => bySize && bases.Skip(i).Sum(b => sizes[b]) > limitBytes;
            bool TooOld(int i) => byAge && clock.NowMs - maxTs[bases[i]] > age.TotalMilliseconds;
            for (int i = 0; i < kept; i++)
            {
                Assert.That(TooBig(i) || TooOld(i), Is.True, $"segment {bases[i]} was deleted though within the limits");
            }

            Assert.That(kept == bases.Count - 1 || !(TooBig(kept) || TooOld(kept)), Is.True,
                $"segment {start} is beyond the limits but was kept (and is not the active one)");
            await AssertStartAsync(reopened, model, bases, $"retention (size {(bySize ? limitBytes : null)}, age {(byAge ? age : null)})");
        }, cases: 4);
}
