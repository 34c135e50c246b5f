using System.Text;
using AppendLog.Testing;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;
using static AppendLog.Tests.Compaction.CompactionModel;

namespace AppendLog.Tests.Compaction;

/// <summary>Key compaction against the reference model on the storage simulator.</summary>
[TestFixture]
public sealed class CompactionTests
{
    private static readonly DateTimeOffset Start = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);

    [Test]
    public async Task CompactAsync_LeavesEachKeysNewestRecordAtItsOffset_TombstonesOnlyAfterRetention_AndSurvivesReopen(
        [Values(CompressionCodec.None, CompressionCodec.Gzip, CompressionCodec.Snappy, CompressionCodec.Lz4, CompressionCodec.Zstd)] CompressionCodec codec)
    {
        int seed = Seeds.Get();
        for (int run = 0; run < 3; run++)
        {
            var random = new Random(Seeds.Derive(seed, run));
            var time = new FakeTimeProvider(Start);
            var options = Options(time, codec);
            var storage = new SimulatedStorage(seed);
            var appended = new List<Appended>();
            await using (var log = await OpenAsync(storage, options))
            {
                await AppendRandomAsync(log, random, 2000, 600, appended);
            }

            long activeBase = LastSegmentBase(storage);
            Assert.That(activeBase, Is.GreaterThan(0), "the workload fills sealed segments");
            var context = $"seed={seed} run={run} codec={codec}";

            // Half an hour later: superseded values go, tombstones stay (retention is an hour).
            time.Advance(TimeSpan.FromMinutes(30));
            var keepTombstones = Expected(appended, activeBase, expiredBeforeOffset: 0);
            await using (var log = await OpenAsync(storage, options))
            {
                var result = await log.CompactAsync();
                Assert.That(result.RecordsRemoved, Is.EqualTo(appended.Count - keepTombstones.Count), context);
                Assert.That(result.TombstonesRemoved, Is.Zero, context);
                Assert.That(result.BytesAfter, Is.LessThan(result.BytesBefore), context);
                Assert.That(log.StartOffset, Is.Zero, context);
                Assert.That(log.EndOffset, Is.EqualTo(appended.Count), context);
                AssertExactly(await ReadAllAsync(log), keepTombstones, context + " after compaction");
                await AssertNewestReadableAtOffsetAsync(log, appended, context);
            }

            await using (var log = await OpenAsync(storage, options))
            {
                AssertExactly(await ReadAllAsync(log), keepTombstones, context + " after reopen");
                time.Advance(TimeSpan.FromHours(2));
                var result = await log.CompactAsync();
                var expired = Expected(appended, activeBase, expiredBeforeOffset: long.MaxValue);
                Assert.That(result.TombstonesRemoved, Is.EqualTo(keepTombstones.Count - expired.Count).And.GreaterThan(0), context);
                AssertExactly(await ReadAllAsync(log), expired, context + " after tombstones expired");

                // Nothing left to remove: a second run rewrites nothing.
                Assert.That((await log.CompactAsync()).SegmentsRewritten, Is.Zero, context);
            }

            await using (var log = await OpenAsync(storage, options))
            {
                AssertExactly(await ReadAllAsync(log), Expected(appended, activeBase, long.MaxValue), context + " after second reopen");
                Assert.That(log.EndOffset, Is.EqualTo(appended.Count));
                long next = await log.AppendAsync(new AppendRecord("key-after"u8.ToArray(), "v"u8.ToArray()));
                Assert.That(next, Is.EqualTo(appended.Count), "appends continue at the old end offset");
            }
        }
    }

    [Test]
    public async Task CompactAsync_WithASmallKeyMap_WorksInPasses_AndGivesTheSameResult()
    {
        int seed = Seeds.Get();
        var random = new Random(seed);
        var time = new FakeTimeProvider(Start);
        var storage = new SimulatedStorage(seed);
        var appended = new List<Appended>();

        // Distinct keys: 1 MiB of map holds ~26k keys, so 60k keys over ~6 segments need several passes.
        var options = Options(time) with { CompactionKeyMapBytes = 1024 * 1024 };
        await using (var log = await OpenAsync(storage, options))
        {
            for (int i = 0; i < 60_000; i += 100)
            {
                var batch = Enumerable.Range(i, 100).Select(k => new AppendRecord(Encoding.UTF8.GetBytes($"key-{k % 40_000}"), new byte[random.Next(20, 80)])).ToArray();
                long first = await log.AppendBatchAsync(batch);
                appended.AddRange(batch.Select((r, j) => new Appended(first + j, r.Key.ToArray(), r.Value.ToArray())));
            }
        }

        long activeBase = LastSegmentBase(storage);
        await using (var log = await OpenAsync(storage, options))
        {
            var result = await log.CompactAsync();
            Assert.That(result.Passes, Is.GreaterThan(1), "the map limit splits the run");
            AssertExactly(await ReadAllAsync(log), Expected(appended, activeBase, 0), $"seed={seed}");
        }
    }

    [Test]
    public async Task ReaderInTheMiddleOfASegment_WhenItIsSwapped_ReturnsNoDuplicateAndNoMissingRecord()
    {
        int seed = Seeds.Get();
        var random = new Random(seed);
        var time = new FakeTimeProvider(Start);
        var options = Options(time);
        var storage = new SimulatedStorage(seed);
        var appended = new List<Appended>();
        await using (var log = await OpenAsync(storage, options))
        {
            await AppendRandomAsync(log, random, 2000, 100, appended);
        }

        long activeBase = LastSegmentBase(storage);
        await using (var log = await OpenAsync(storage, options))
        {
            var seen = new List<LogRecord>();
            await using var reader = log.ReadAsync(0).GetAsyncEnumerator();
            for (int i = 0; i < 50 && await reader.MoveNextAsync(); i++)
            {
                seen.Add(reader.Current);
            }

            var result = await log.CompactAsync();
            Assert.That(result.SegmentsRewritten, Is.GreaterThan(1));
            while (await reader.MoveNextAsync())
            {
                seen.Add(reader.Current);
            }

            // The reader kept the first segment's old file (its records are all originals), then read compacted ones.
            var byOffset = appended.ToDictionary(a => a.Offset);
            for (int i = 0; i < seen.Count; i++)
            {
                Assert.That(i == 0 || seen[i].Offset > seen[i - 1].Offset, $"offsets increase at #{i} (no duplicate)");
                AssertSame(seen[i], byOffset[seen[i].Offset], $"seed={seed} record #{i}");
            }

            var seenOffsets = seen.Select(r => r.Offset).ToHashSet();
            var missing = Expected(appended, activeBase, 0).Where(e => !seenOffsets.Contains(e.Offset)).ToList();
            Assert.That(missing, Is.Empty, "every surviving record was returned");
        }
    }

    [Test]
    public async Task CompactedBatches_AppendedRawToAnotherLog_KeepTheirOffsets()
    {
        int seed = Seeds.Get();
        var time = new FakeTimeProvider(Start);
        var storage = new SimulatedStorage(seed);
        var appended = new List<Appended>();
        await using var log = await OpenAsync(storage, Options(time));
        await AppendRandomAsync(log, new Random(seed), 1500, 50, appended);
        await log.DisposeAsync();
        await using var reopened = await OpenAsync(storage, Options(time));
        await reopened.CompactAsync();

        var copyOptions = Options(time) with { Directory = "/sim/copy" };
        await using var copy = await OpenAsync(storage, copyOptions);
        await foreach (var batch in reopened.ReadBatchesAsync(0))
        {
            Assert.That(await copy.AppendRawBatchAsync(batch.Bytes), Is.EqualTo(batch.BaseOffset), "a follower's offsets match the leader's");
        }

        Assert.That(copy.EndOffset, Is.EqualTo(reopened.EndOffset));
        var original = await ReadAllAsync(reopened);
        var copied = await ReadAllAsync(copy);
        Assert.That(copied.Select(r => r.Offset), Is.EqualTo(original.Select(r => r.Offset)));
    }

    [Test]
    public void Validate_RejectsANegativeTombstoneRetention_AndATinyKeyMap()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => new LogOptions { Directory = "x", TombstoneRetention = TimeSpan.FromSeconds(-1) }.Validate(),
                Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("TombstoneRetention"));
            Assert.That(() => new LogOptions { Directory = "x", CompactionKeyMapBytes = 1000 }.Validate(),
                Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("CompactionKeyMapBytes"));
            Assert.That(() => new LogOptions { Directory = "x", CompactionPolicy = (CompactionPolicy)7 }.Validate(),
                Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("CompactionPolicy"));
        });
    }

    private static async Task AssertNewestReadableAtOffsetAsync(SegmentedLog log, List<Appended> appended, string context)
    {
        var newest = Newest(appended);
        foreach (var (key, offset) in newest.Take(40))
        {
            await foreach (var record in log.ReadAsync(offset))
            {
                AssertSame(record, appended[(int)offset], $"{context}: newest of {key}");
                break;
            }
        }
    }
}
