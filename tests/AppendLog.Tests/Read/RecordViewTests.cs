using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// <see cref="SegmentedLog.ReadViewsAsync"/>: the same records as the copying <see cref="SegmentedLog.ReadAsync"/>
/// for every codec, for keys, values and header values that are null, empty or not, from the cache or from disk
/// without a cache (the reader's reusable buffer); and a view used after the reader moved on throws.
/// </summary>
[CancelAfter(60_000)]
public sealed class RecordViewTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-views");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private LogOptions Options(CompressionCodec codec, DirectIoMode mode, long cacheBytes) => new()
    {
        Directory = _dir.File("log"),
        DirectIo = mode,
        Compression = codec,
        SegmentSize = 1024 * 1024,
        BatchCache = new BatchCache(cacheBytes),
    };

    /// <summary>Batches of 1 to 40 records: null, empty and filled keys and values; null, empty and filled header values.</summary>
    private static async Task FillAsync(SegmentedLog log, int seed, int batches)
    {
        var random = new Random(seed);
        var appends = new List<Task<long>>();
        for (int b = 0; b < batches; b++)
        {
            var records = new AppendRecord[random.Next(1, 41)];
            for (int i = 0; i < records.Length; i++)
            {
                var headers = random.Next(3) == 0 ? null : new[]
                {
                    RecordHeader.WithNullValue("null"),
                    new RecordHeader("empty", Array.Empty<byte>()),
                    new RecordHeader("h-" + random.Next(1000), Bytes(random, 1, 20)),
                };
                byte[] value = random.Next(8) == 0 ? [] : Bytes(random, 1, 3000);
                records[i] = random.Next(4) switch
                {
                    0 => new AppendRecord(value), // null key
                    1 => new AppendRecord(Array.Empty<byte>(), value, headers), // empty key
                    2 => AppendRecord.Tombstone(Bytes(random, 1, 40)), // null value
                    _ => new AppendRecord(Bytes(random, 1, 40), value, headers),
                };
            }

            appends.Add(log.AppendBatchAsync(records).AsTask()); // one sync for many batches
        }

        await Task.WhenAll(appends);
    }

    private static byte[] Bytes(Random random, int min, int max)
    {
        var bytes = new byte[random.Next(min, max)];
        random.NextBytes(bytes);
        return bytes;
    }

    [Test]
    public async Task Views_EqualTheCopyingReader_ForEveryCodecAndEveryStart(
        [Values] CompressionCodec codec,
        [Values(0L, 64L * 1024 * 1024)] long cacheBytes)
    {
        // O_DIRECT where the file system has it: the view code is the same for buffered files, behind the same window.
        await using var log = await SegmentedLog.OpenAsync(Options(codec, DirectIoMode.Preferred, cacheBytes));
        await FillAsync(log, Seeds.Get() ^ (int)codec, batches: 60);
        long end = log.DurableEndOffset;
        var copies = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(0))
        {
            copies.Add(r);
        }

        Assert.That(copies, Has.Count.EqualTo(end));
        foreach (long from in new[] { 0, end / 3, end - 1, end })
        {
            int i = (int)from;
            await foreach (var view in log.ReadViewsAsync(from))
            {
                AssertSame(copies[i], view, $"record {i} from {from}");
                AssertSame(copies[i], view.ToRecord(), $"copy of record {i} from {from}");
                i++;
            }

            Assert.That(i, Is.EqualTo(end), $"every record from {from}");
        }
    }

    /// <summary>
    /// Without a cache, a scan's batches are lent from the reader's one reusable buffer: a view must still equal the
    /// copy after the buffer has served many batches of other sizes (a stale length or position would show).
    /// </summary>
    [Test]
    public async Task Views_StayCorrect_WhenTheReaderReusesItsBufferAcrossBatches([Values(0L, 1L * 1024 * 1024)] long cacheBytes)
    {
        await using var log = await SegmentedLog.OpenAsync(Options(CompressionCodec.None, DirectIoMode.Preferred, cacheBytes) with { SegmentSize = 64L * 1024 * 1024 });
        await FillAsync(log, Seeds.Get(), batches: 400);
        var copies = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(0))
        {
            copies.Add(r);
        }

        int i = 0;
        await foreach (var view in log.ReadViewsAsync(0))
        {
            AssertSame(copies[i++], view, "record " + (i - 1));
        }

        Assert.That(i, Is.EqualTo(copies.Count));
    }

    [Test]
    public async Task AView_ThrowsOnceTheEnumerationMovesOn_AndAfterItEnds()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(CompressionCodec.None, DirectIoMode.Disabled, 0));
        await log.AppendBatchAsync(new[]
        {
            new AppendRecord(new byte[] { 1 }, new byte[] { 10 }, [new RecordHeader("a", new byte[] { 2 })]),
            new AppendRecord(new byte[] { 3 }, new byte[] { 30 }),
        });
        await log.AppendAsync(new byte[] { 50 });

        LogRecordView first = default, last = default;
        LogRecordView.HeaderEnumerator headers = default;
        int n = 0;
        await foreach (var view in log.ReadViewsAsync(0))
        {
            if (n == 0)
            {
                first = view;
                headers = view.EnumerateHeaders();
                Assert.That(first.Value.ToArray(), Is.EqualTo(new byte[] { 10 }), "valid while current");
            }
            else
            {
                Assert.Throws<InvalidOperationException>(() => _ = first.Value, "the next record in the same batch");
                Assert.Throws<InvalidOperationException>(() => _ = first.Offset);
                Assert.Throws<InvalidOperationException>(() => first.ToRecord());
                Assert.Throws<InvalidOperationException>(() => headers.MoveNext(), "its headers too");
            }

            last = view;
            n++;
        }

        Assert.That(n, Is.EqualTo(3));
        Assert.Throws<InvalidOperationException>(() => _ = last.Key, "after the enumeration ended");
        Assert.Throws<InvalidOperationException>(() => _ = default(LogRecordView).Offset, "a default view");
    }

    [Test]
    public async Task AView_ThrowsAfterTheReaderBreaksOut()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(CompressionCodec.None, DirectIoMode.Disabled, 0));
        await log.AppendAsync(new byte[] { 1 });
        await log.AppendAsync(new byte[] { 2 });
        LogRecordView kept = default;
        await foreach (var view in log.ReadViewsAsync(0))
        {
            kept = view;
            break;
        }

        Assert.Throws<InvalidOperationException>(() => _ = kept.Value);
    }

    [Test]
    public void ReadViews_RejectsAnOffsetOutsideTheLog()
    {
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () =>
        {
            await using var log = await SegmentedLog.OpenAsync(Options(CompressionCodec.None, DirectIoMode.Disabled, 0));
            await log.AppendAsync(new byte[] { 1 });
            await foreach (var unused in log.ReadViewsAsync(2))
            {
            }
        });
    }

    /// <summary>One assertion per record (NUnit's are slow in a loop over thousands): the first field that differs.</summary>
    private static void AssertSame(LogRecord expected, LogRecordView view, string what)
    {
        string? difference =
            view.Offset != expected.Offset ? "offset"
            : view.TimestampMs != expected.TimestampMs ? "timestamp"
            : view.LeaderEpoch != expected.LeaderEpoch ? "leader epoch"
            : view.HasKey != (expected.Key is not null) ? "key null or not"
            : !view.Key.Span.SequenceEqual(expected.Key ?? []) ? "key"
            : view.HasValue != (expected.Value is not null) ? "tombstone or not"
            : !view.Value.Span.SequenceEqual(expected.Value ?? []) ? "value"
            : view.HeaderCount != expected.Headers.Count ? "header count"
            : HeaderDifference(expected, view);
        Assert.That(difference, Is.Null, what);
    }

    private static string? HeaderDifference(LogRecord expected, LogRecordView view)
    {
        int h = 0;
        foreach (var header in view.EnumerateHeaders())
        {
            if (h == expected.Headers.Count)
            {
                return "more headers than the count";
            }

            var e = expected.Headers[h++];
            if (System.Text.Encoding.UTF8.GetString(header.Key.Span) != e.Key)
            {
                return $"header {h - 1} key";
            }

            if (header.IsValueNull != e.IsValueNull)
            {
                return $"header {h - 1} value null or empty";
            }

            if (!header.Value.Span.SequenceEqual(e.Value.Span))
            {
                return $"header {h - 1} value";
            }
        }

        return h == expected.Headers.Count ? null : "fewer headers than the count";
    }

    private static void AssertSame(LogRecord expected, LogRecord copy, string what)
    {
        Assert.That(copy.Offset, Is.EqualTo(expected.Offset), what);
        Assert.That(copy.TimestampMs, Is.EqualTo(expected.TimestampMs), what);
        Assert.That(copy.Key, Is.EqualTo(expected.Key), what + ": key");
        Assert.That(copy.Value, Is.EqualTo(expected.Value), what + ": value");
        Assert.That(copy.Headers.Select(x => (x.Key, x.IsValueNull, x.Value.ToArray())), Is.EqualTo(expected.Headers.Select(x => (x.Key, x.IsValueNull, x.Value.ToArray()))), what + ": headers");
    }
}
