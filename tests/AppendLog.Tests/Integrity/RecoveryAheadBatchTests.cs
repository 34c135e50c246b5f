using System.Buffers.Binary;
using AppendLog.Appender;
using AppendLog.Format;
using AppendLog.Testing;
using AppendLog.Tests.Durability;
using NUnit.Framework;

namespace AppendLog.Tests.Integrity;

/// <summary>
/// Recovery's base-offset rule, checked from both sides. The existing stale-batch test copies a batch numbered below
/// the expected offset; here a valid batch numbered <em>ahead</em> of it lies right after the tail. Accepting it would
/// leave a gap in the offsets (and serve records never appended), so recovery must end the data before it. These tests
/// fail when recovery's check is weakened from <c>BaseOffset != expected</c> to <c>BaseOffset &lt; expected</c>.
/// </summary>
[CancelAfter(60_000)]
public sealed class RecoveryAheadBatchTests
{
    private const string Dir = "/sim/ahead";
    private const string Active = Dir + "/00000000000000000000.log";
    private static readonly IoWorkers s_io = new(2, "sim-ahead-io");

    private static LogOptions Options() => SmallSimulatedLog.Options(Dir);

    private static Task<SegmentedLog> OpenAsync(SimulatedStorage storage) => SmallSimulatedLog.OpenAsync(Options(), storage, s_io);

    [TestCase(11, TestName = "A valid batch numbered one ahead of the tail is not taken as data by recovery")]
    [TestCase(12, TestName = "A valid batch numbered two ahead of the tail is not taken as data by recovery")]
    [TestCase(1_000_000, TestName = "A valid batch numbered far ahead of the tail is not taken as data by recovery")]
    public async Task ValidBatchNumberedAheadOfTheTail_IsNotAccepted(long aheadBase)
    {
        var storage = new SimulatedStorage(Seeds.Get());
        await using (var log = await OpenAsync(storage))
        {
            for (int i = 0; i < 10; i++)
            {
                await log.AppendAsync(Payload.Create(i, 500));
            }
        }

        // Batch 0 again, right after batch 9 (the file is preallocated beyond), renumbered ahead of the expected 10.
        // The base offset lies outside the CRC, so the copy is a batch with a valid checksum.
        byte[] image = storage.GetDurableImage(Active);
        int size = RecordBatch.LogOverhead + BinaryPrimitives.ReadInt32BigEndian(image.AsSpan(RecordBatch.BatchLengthOffset));
        byte[] ahead = image[..size];
        BinaryPrimitives.WriteInt64BigEndian(ahead, aheadBase);
        Assert.That(RecordBatchDecoder.Check(ahead, ahead.Length, out _), Is.EqualTo(BatchCheck.Valid), "the planted batch passes the CRC");
        using (var file = storage.Open(Active, AppendLog.Io.FileCreation.OpenExisting, DirectIoMode.Disabled))
        {
            file.Write(ahead, 10L * size); // all ten batches have the same size
            file.SyncData();
        }

        await using var reopened = await OpenAsync(storage.Crash(3));
        Assert.That(reopened.EndOffset, Is.EqualTo(10), "the batch numbered ahead is not part of the log");
        Assert.That(await reopened.AppendAsync(Payload.Create(10, 300)), Is.EqualTo(10), "the next append gets the offset after the real tail");
        var records = new List<LogRecord>();
        await foreach (var r in reopened.ReadAsync(0))
        {
            records.Add(r);
        }

        Assert.That(records.Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, 11).Select(i => (long)i)), "no gap, no planted record");
        Assert.That(records.Select(r => Payload.Check(r.Value, out long id) ?? (id == r.Offset ? null : $"offset {r.Offset} holds {id}")), Is.All.Null);
    }
}
