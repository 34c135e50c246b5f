using AppendLog.Format;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Durability;

/// <summary>
/// Bad input, damaged directories and misuse on the real file system (what <c>SegmentedLogTests</c> does not already
/// cover), once with O_DIRECT and once buffered. Every wait is bounded: a hang fails the test instead of the run.
/// </summary>
[TestFixture(DirectIoMode.Preferred)]
[TestFixture(DirectIoMode.Disabled)]
public sealed class BadInputTests(DirectIoMode mode)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-badinput");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private LogOptions Options(Func<LogOptions, LogOptions>? change = null)
    {
        var options = new LogOptions { Directory = _dir.File("log"), DirectIo = mode };
        return change is null ? options : change(options);
    }

    private LogOptions SmallSegments() => Options(o => o with
    {
        SegmentSize = 1024 * 1024,
        MaximumBatchSize = 64 * 1024,
        PreallocationMinimumStep = 256 * 1024,
        PreallocationMaximumStep = 256 * 1024,
    });

    private static int BatchSize(int valueLength) => RecordBatchEncoder.MeasureUncompressed([new AppendRecord(new byte[valueLength])]);

    /// <summary>The value length whose one-record batch takes exactly <paramref name="batchSize"/> bytes.</summary>
    private static int ValueLengthFor(int batchSize)
    {
        int length = batchSize - 61;
        while (BatchSize(length) > batchSize)
        {
            length--;
        }

        Assert.That(BatchSize(length), Is.EqualTo(batchSize), "a value length gives exactly this batch size");
        return length;
    }

    private static async Task<List<LogRecord>> ReadAllAsync(SegmentedLog log, long from = 0)
    {
        var records = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(from))
        {
            records.Add(r);
        }

        return records;
    }

    /// <summary>Appends records until the log holds <paramref name="count"/>; values are <see cref="Payload"/>s of their offset.</summary>
    private static async Task FillAsync(SegmentedLog log, int count, int valueLength)
    {
        for (long i = log.EndOffset; i < count; i++)
        {
            Assert.That(await log.AppendAsync(Payload.Create(i, valueLength)), Is.EqualTo(i));
        }
    }

    [Test]
    public async Task RecordOfExactlyMaximumBatchSize_IsAccepted_AndOneByteMoreIsRejected()
    {
        var options = Options(o => o with { MaximumBatchSize = 16 * 1024 });
        int fits = ValueLengthFor(options.MaximumBatchSize);
        await using var log = await SegmentedLog.OpenAsync(options);
        Assert.That(await log.AppendAsync(Payload.Create(0, fits)), Is.EqualTo(0));
        var ex = Assert.ThrowsAsync<ArgumentException>(async () => await log.AppendAsync(Payload.Create(1, fits + 1)));
        Assert.That(ex!.Message, Does.Contain((options.MaximumBatchSize + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Throws<ArgumentException>(() => log.TryAppend(Payload.Create(1, fits + 1), out _));
        Assert.That(await log.AppendAsync(Payload.Create(1, fits)), Is.EqualTo(1), "the log stays usable");
        Assert.That((await ReadAllAsync(log)).Select(r => r.Value!.Length), Is.EqualTo(new[] { fits, fits }));
    }

    [Test]
    public async Task ReadOffsets_BelowZeroOrPastTheDurableEnd_Throw_AndTheDurableEndItselfIsAnEmptyRead()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        await FillAsync(log, 3, 50);
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.ReadAsync(-1).GetAsyncEnumerator().MoveNextAsync());
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.ReadAsync(4).GetAsyncEnumerator().MoveNextAsync());
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.ReadAsync(long.MaxValue).GetAsyncEnumerator().MoveNextAsync());
        Assert.That(await ReadAllAsync(log, 3), Is.Empty);
        Assert.That((await ReadAllAsync(log, 2)).Single().Offset, Is.EqualTo(2));
    }

    [Test]
    public async Task ReadOffsets_AcceptedButNotYetDurable_AreOutOfRange()
    {
        await using var log = await SegmentedLog.OpenAsync(Options(o => o with { FlushPolicy = FlushPolicy.Manual }));
        Assert.That(log.TryAppend(Payload.Create(0, 50), out _), Is.True);
        Assert.That(log.EndOffset, Is.EqualTo(1));
        Assert.That(await ReadAllAsync(log, 0), Is.Empty, "nothing is durable yet");
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.ReadAsync(1).GetAsyncEnumerator().MoveNextAsync());
        await log.FlushAsync();
        Assert.That(await ReadAllAsync(log, 0), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Reopen_WithTheActiveSegmentWithinOneBlockOfItsSize_StillAcceptsAnAppendThatFits()
    {
        // After recovery the active file ends at its logical end, mid-block. An append that still fits in the
        // segment (no roll) needs no new reservation: it must not wait for one that never comes.
        var options = SmallSegments();
        int big = ValueLengthFor(8000);
        int count = ((1024 * 1024) - 1000) / 8000;
        int rest = (1024 * 1024) - 1000 - (count * 8000);
        await using (var log = await SegmentedLog.OpenAsync(options))
        {
            await FillAsync(log, count, big);
            Assert.That(await log.AppendAsync(Payload.Create(count, ValueLengthFor(rest))), Is.EqualTo(count));
            Assert.That(log.SegmentCount, Is.EqualTo(1), "the segment holds 1 MiB - 1000 bytes");
        }

        await using (var log = await SegmentedLog.OpenAsync(options).AsTask().WaitAsync(Bound))
        {
            Assert.That(log.EndOffset, Is.EqualTo(count + 1));
            var append = Task.Run(async () => await log.AppendAsync(Payload.Create(count + 1, 200)));
            Assert.That(await append.WaitAsync(Bound), Is.EqualTo(count + 1));
            Assert.That(log.SegmentCount, Is.EqualTo(1), "the record fit in the segment");
            var append2 = Task.Run(async () => await log.AppendAsync(Payload.Create(count + 2, 4000)));
            Assert.That(await append2.WaitAsync(Bound), Is.EqualTo(count + 2));
            Assert.That(log.SegmentCount, Is.EqualTo(2), "the next one rolled");
            var all = await ReadAllAsync(log);
            Assert.That(all.Select(r => Payload.Check(r.Value, out long id) ?? (id == r.Offset ? null : $"offset {r.Offset} holds {id}")), Is.All.Null);
        }
    }

    private async Task<int> WriteSealedSegmentsAsync(LogOptions options, int count = 600)
    {
        await using var log = await SegmentedLog.OpenAsync(options);
        await FillAsync(log, count, 4000);
        Assert.That(log.SegmentCount, Is.GreaterThanOrEqualTo(3));
        return log.SegmentCount;
    }

    private static string[] SegmentFiles(LogOptions options) =>
        [.. Directory.GetFiles(options.Directory, "*.log").Order(StringComparer.Ordinal)];

    private static async Task ExpectAllAsync(SegmentedLog log, int count)
    {
        var all = await ReadAllAsync(log);
        Assert.That(all, Has.Count.EqualTo(count));
        Assert.That(all.Select(r => Payload.Check(r.Value, out long id) ?? (id == r.Offset ? null : $"offset {r.Offset} holds {id}")), Is.All.Null);
    }

    [Test]
    public async Task MissingOrDamagedIndexOfASealedSegment_IsRebuiltByRescanning_AndEveryRecordStaysReadable()
    {
        var options = SmallSegments();
        await WriteSealedSegmentsAsync(options);
        var files = SegmentFiles(options);
        string missing = Path.ChangeExtension(files[0], ".index");
        string damaged = Path.ChangeExtension(files[1], ".index");
        File.Delete(missing);
        byte[] bytes = File.ReadAllBytes(damaged);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(damaged, bytes);

        await using (var log = await SegmentedLog.OpenAsync(options).AsTask().WaitAsync(Bound))
        {
            await ExpectAllAsync(log, 600);
            Assert.That(await log.AppendAsync(Payload.Create(600, 100)), Is.EqualTo(600));
        }

        Assert.That(File.Exists(missing), Is.True, "recovery wrote the missing index again");
        Assert.That(File.ReadAllBytes(damaged), Is.Not.EqualTo(bytes), "recovery replaced the damaged index");
    }

    [Test]
    public async Task StrayFilesInTheDirectory_AreIgnoredAndLeftAlone()
    {
        var options = SmallSegments();
        await WriteSealedSegmentsAsync(options);
        string[] strays = ["notes.txt", "00000000000000000000.log.bak", "abc.log", "12.index", ".hidden", "00000000000000000001.tmp"];
        foreach (string stray in strays)
        {
            File.WriteAllText(Path.Combine(options.Directory, stray), "not part of the log");
        }

        await using (var log = await SegmentedLog.OpenAsync(options).AsTask().WaitAsync(Bound))
        {
            await ExpectAllAsync(log, 600);
        }

        Assert.That(strays.Select(s => File.ReadAllText(Path.Combine(options.Directory, s))), Is.All.EqualTo("not part of the log"));
    }

    [Test]
    public async Task SealedSegmentTruncatedByHandInTheMiddle_IsReportedAsCorruption_NamingTheFile()
    {
        var options = SmallSegments();
        await WriteSealedSegmentsAsync(options);
        string first = SegmentFiles(options)[0];
        long length = new FileInfo(first).Length;
        using (var fs = new FileStream(first, FileMode.Open, FileAccess.Write))
        {
            fs.SetLength(length / 2);
        }

        var ex = Assert.ThrowsAsync<LogCorruptedException>(async () => await SegmentedLog.OpenAsync(options).AsTask().WaitAsync(Bound));
        Assert.That(ex!.FilePath, Is.EqualTo(first));
        Assert.That(ex.Position, Is.EqualTo(length / 2));

        // The log is not "repaired" by truncation: the damage stays visible on every open.
        Assert.ThrowsAsync<LogCorruptedException>(async () => await SegmentedLog.OpenAsync(options).AsTask().WaitAsync(Bound));
    }

    [Test]
    public async Task DisposeWhileAppendsAndReadsArePending_NeverHangs_AndEveryAppendEitherCompletesOrFails()
    {
        var options = SmallSegments() with { FlushPolicy = FlushPolicy.Debounced(TimeSpan.FromMilliseconds(5), 1024 * 1024) };
        var log = await SegmentedLog.OpenAsync(options);
        await FillAsync(log, 200, 3000);
        var appends = Enumerable.Range(200, 300).Select(i => Task.Run(async () => await log.AppendAsync(Payload.Create(i, 3000)))).ToList();
        var reads = Enumerable.Range(0, 4).Select(_ => Task.Run(async () => (await ReadAllAsync(log)).Count)).ToList();
        await log.DisposeAsync().AsTask().WaitAsync(Bound);
        await Task.WhenAll(appends.Concat<Task>(reads).Select(t => t.ContinueWith(static _ => { }, TaskScheduler.Default))).WaitAsync(Bound);
        foreach (var append in appends)
        {
            Assert.That(append.IsCompletedSuccessfully || append.Exception?.InnerException is ObjectDisposedException, Is.True, $"{append.Exception}");
        }

        foreach (var read in reads)
        {
            Assert.That(read.IsCompletedSuccessfully || read.Exception?.InnerException is ObjectDisposedException, Is.True, $"{read.Exception}");
        }

        long accepted = appends.Count(t => t.IsCompletedSuccessfully);
        await using var reopened = await SegmentedLog.OpenAsync(options);
        Assert.That(reopened.EndOffset, Is.GreaterThanOrEqualTo(200 + accepted), "every completed append is durable");
        var all = await ReadAllAsync(reopened);
        var ids = all.Select(r => Payload.Check(r.Value, out long id) is null ? id : -1).ToList();
        Assert.That(ids.Take(200), Is.EqualTo(Enumerable.Range(0, 200).Select(i => (long)i)), "the awaited appends, in order");
        Assert.That(ids.Skip(200), Is.Unique.And.All.InRange(200L, 499L), "the concurrent ones, each intact, in any order");
        foreach (var append in appends.Where(t => t.IsCompletedSuccessfully))
        {
            Assert.That(append.Result, Is.LessThan(all.Count));
        }
    }
}
