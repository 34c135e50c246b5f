using System.Buffers.Binary;
using System.IO.Hashing;
using AppendLog.Appender;
using AppendLog.Segments;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Durability;

/// <summary>
/// The leader-epoch history (docs/internals.md, section 5): partitionLeaderEpoch lies outside Kafka's CRC, so each
/// segment records where its epochs change, and a reader refuses a batch whose epoch disagrees.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class EpochHistoryTests
{
    private const string Dir = "/sim/epochs";
    private const string Active = Dir + "/00000000000000000000.log";
    private static readonly IoWorkers s_io = new(2, "sim-epochs-io");

    [Test]
    public void TheHistory_AnswersByOffset_SurvivesSerialization_AndForgetsATruncatedSuffix()
    {
        var index = new SparseIndex();
        index.ObserveEpoch(100, 0);
        index.ObserveEpoch(105, 0);
        index.ObserveEpoch(110, 3);
        index.ObserveEpoch(120, 7);
        Assert.That(index.Epochs, Is.EqualTo(new[] { new SparseIndex.EpochStart(100, 0), new(110, 3), new(120, 7) }));
        Assert.That(index.EpochMatches(109, 0) && index.EpochMatches(110, 3) && index.EpochMatches(119, 3) && index.EpochMatches(500, 7), Is.True);
        Assert.That(index.EpochMatches(109, 3) || index.EpochMatches(110, 0) || index.EpochMatches(130, 3), Is.False);

        Assert.That(SparseIndex.TryLoad(index.Serialize(100, 130, 4096, 0), 100, out var loaded, out _, out _, out _), Is.True);
        Assert.That(loaded.Epochs, Is.EqualTo(index.Epochs));
        Assert.That(loaded.EpochMatches(115, 0), Is.False);

        index.TruncateEpochsFrom(110);
        Assert.That(index.Epochs, Is.EqualTo(new[] { new SparseIndex.EpochStart(100, 0) }));
        index.ObserveEpoch(110, 9);
        Assert.That(index.EpochMatches(110, 9), Is.True);
    }

    [Test]
    public void AnIndexFileWrittenBeforeTheHistory_LoadsAndChecksNothing()
    {
        // Format 1: header (magic, count, base, end, size, max timestamp, format 1), one entry, CRC.
        var bytes = new byte[44 + 24 + 4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, 0x58494C41);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), 1);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8), 100);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(16), 110);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(24), 5000);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(40), 1);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(44), 100);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(68), Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, bytes.AsSpan(0, 68)));
        Assert.That(SparseIndex.TryLoad(bytes, 100, out var index, out long end, out _, out _), Is.True);
        Assert.That(end, Is.EqualTo(110));
        Assert.That(index.Count, Is.EqualTo(1));
        Assert.That(index.EpochMatches(105, 12345), Is.True, "no history: nothing to check against");
    }

    private static async Task<SimulatedStorage> LogWithEpochsAsync(int seed)
    {
        var storage = new SimulatedStorage(seed);
        await using var log = await SmallSimulatedLog.OpenAsync(SmallSimulatedLog.Options(Dir), storage, s_io);
        int[] epochs = [0, 0, 3, 3, 3, 7, 7, 7, 7, 7];
        for (int i = 0; i < epochs.Length; i++)
        {
            await log.AppendBatchAsync(new[] { new AppendRecord(Payload.Create(i, 500)) }, epochs[i]);
        }

        return storage;
    }

    [Test]
    public async Task AFlippedEpochInTheActiveSegment_AfterACleanClose_IsReportedWhenRead([Values(0, 3, 6)] int batch)
    {
        var storage = await LogWithEpochsAsync(Seeds.Get());
        int size = storage.GetDurableImage(Active).Length / 10;
        storage.FlipBit(Active, (batch * size) + 14, 1);
        await using var log = await SmallSimulatedLog.OpenAsync(SmallSimulatedLog.Options(Dir), storage.Crash(1), s_io);
        var read = new List<LogBatch>();
        var ex = Assert.ThrowsAsync<LogCorruptedException>(async () =>
        {
            await foreach (var b in log.ReadBatchesAsync(0))
            {
                read.Add(b);
            }
        });
        Assert.That(ex!.Position, Is.EqualTo(batch * size));
        Assert.That(read.Select(b => b.LeaderEpoch), Is.EqualTo(new[] { 0, 0, 3, 3, 3, 7, 7 }.Take(batch)), "the batches before it, with their true epochs");
    }

    [Test]
    public async Task EpochsRead_AreTheEpochsAppended_AcrossATruncationAndANewEpoch()
    {
        var storage = await LogWithEpochsAsync(Seeds.Get());
        var options = SmallSimulatedLog.Options(Dir);
        await using (var log = await SmallSimulatedLog.OpenAsync(options, storage, s_io))
        {
            await log.TruncateSuffixAsync(4);
            await log.AppendBatchAsync(new[] { new AppendRecord(Payload.Create(4, 500)) }, 9);
        }

        await using var reopened = await SmallSimulatedLog.OpenAsync(options, storage.Crash(2), s_io);
        var epochs = new List<int>();
        await foreach (var b in reopened.ReadBatchesAsync(0))
        {
            epochs.Add(b.LeaderEpoch);
        }

        Assert.That(epochs, Is.EqualTo(new[] { 0, 0, 3, 3, 9 }));
    }
}
