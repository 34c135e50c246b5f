using AppendLog.Appender;
using AppendLog.Segments;
using AppendLog.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace AppendLog.Tests.Durability;

/// <summary>
/// The checkpoint file (docs/internals.md, section 5): its record format, the clean-close fast path (case J), the
/// durable-position floor recovery never truncates below, and the claims voided before a truncation or reset.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class CheckpointTests
{
    private const string Dir = "/sim/checkpoint";
    private const string Active = Dir + "/00000000000000000000.log";
    private static readonly IoWorkers s_io = new(2, "sim-checkpoint-io");

    private static LogOptions Options(TimeSpan? interval = null) =>
        SmallSimulatedLog.Options(Dir) with { DurableCheckpointInterval = interval ?? TimeSpan.FromSeconds(1) };

    private static Task<SegmentedLog> OpenAsync(SimulatedStorage storage, LogOptions? options = null) =>
        SmallSimulatedLog.OpenAsync(options ?? Options(), storage, s_io);

    private static async Task<List<LogRecord>> ReadAllAsync(SegmentedLog log)
    {
        var records = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(0))
        {
            records.Add(r);
        }

        return records;
    }

    private static async Task AppendAsync(SegmentedLog log, int from, int count, int size = 500)
    {
        for (int i = from; i < from + count; i++)
        {
            Assert.That(await log.AppendAsync(Payload.Create(i, size)), Is.EqualTo(i));
        }
    }

    /// <summary>Waits until the periodic checkpoint has recorded <paramref name="offset"/> (bounded).</summary>
    private static async Task WaitForCheckpointAsync(SimulatedStorage storage, long offset)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (CheckpointFile.Read(storage, Dir) is not { Record.EndOffset: var end } || end < offset)
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"no checkpoint reached offset {offset}");
            await Task.Delay(5);
        }
    }

    [Test]
    public void ARecord_RoundTrips_AndAnySingleBitFlipInItsSlotIsRefused()
    {
        var gen = from seq in Gen.Choose(0, int.MaxValue)
                  from clean in Gen.Elements(true, false)
                  from b in Gen.Choose(0, 1_000_000)
                  from size in Gen.Choose(0, 1 << 30)
                  from count in Gen.Choose(0, 100_000)
                  from bit in Gen.Choose(0, (56 * 8) - 1)
                  select (Record: new CheckpointRecord(seq, clean, b, size, b + count, 1_700_000_000_000L + seq, clean ? count : 0), Bit: bit);
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(500), Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var slot = new byte[Checkpoint.SlotSize];
            Checkpoint.Encode(t.Record, slot);
            bool decoded = Checkpoint.TryDecode(slot, out var back);
            slot[t.Bit / 8] ^= (byte)(1 << (t.Bit % 8));
            bool flipped = Checkpoint.TryDecode(slot, out _);
            return decoded && back == t.Record && !flipped;
        }));
    }

    [Test]
    public void TheNewestValidSlotWins_AndARecordInTheWrongSlotIsIgnored()
    {
        var file = new byte[Checkpoint.IndexStart];
        Checkpoint.Encode(new CheckpointRecord(6, false, 0, 100, 5, 0, 0), file.AsSpan(Checkpoint.SlotOf(6)));
        Checkpoint.Encode(new CheckpointRecord(7, false, 0, 200, 9, 0, 0), file.AsSpan(Checkpoint.SlotOf(7)));
        Assert.That(Checkpoint.ReadSlots(file)!.Value.Sequence, Is.EqualTo(7));

        file[Checkpoint.SlotOf(7) + 20] ^= 1; // the newer slot is torn: the older record still holds
        Assert.That(Checkpoint.ReadSlots(file)!.Value.Sequence, Is.EqualTo(6));

        Checkpoint.Encode(new CheckpointRecord(8, false, 0, 300, 12, 0, 0), file.AsSpan(Checkpoint.SlotOf(7)));
        Assert.That(Checkpoint.ReadSlots(file)!.Value.Sequence, Is.EqualTo(6), "sequence 8 belongs in the other slot");
        Assert.That(Checkpoint.ReadSlots(new byte[100]), Is.Null);
    }

    [Test]
    public async Task ACleanClose_IsTrustedAtTheNextOpen_NoScanNoSyncNoWriteNoReservation()
    {
        var storage = new SimulatedStorage(Seeds.Get());
        await using (var log = await OpenAsync(storage))
        {
            await AppendAsync(log, 0, 300);
        }

        Assert.That(storage.GetDurableImage(Active).Length, Is.EqualTo(storage.GetVolatileImage(Active).Length));
        long dataLength = storage.GetDurableImage(Active).Length;
        long syncs = storage.GetOperationCount(StorageOperation.SyncData);
        long writes = storage.GetOperationCount(StorageOperation.Write);
        long reads = storage.GetOperationCount(StorageOperation.Read);
        long allocations = storage.GetOperationCount(StorageOperation.Allocate);
        long truncations = storage.GetOperationCount(StorageOperation.Truncate);
        await using (var log = await OpenAsync(storage))
        {
            Assert.Multiple(() =>
            {
                Assert.That(storage.GetOperationCount(StorageOperation.SyncData) - syncs, Is.Zero, "no fdatasync at a clean open");
                Assert.That(storage.GetOperationCount(StorageOperation.Write) - writes, Is.Zero, "no write at a clean open");
                Assert.That(storage.GetOperationCount(StorageOperation.Allocate) - allocations, Is.Zero, "nothing reserved at open");
                Assert.That(storage.GetOperationCount(StorageOperation.Truncate) - truncations, Is.Zero, "nothing trimmed at open");
                Assert.That(storage.GetOperationCount(StorageOperation.Read) - reads, Is.LessThanOrEqualTo(3), "the checkpoint and the last block, not a scan");
                Assert.That(storage.GetVolatileImage(Active).Length, Is.EqualTo(dataLength), "an idle reopened log holds no reserve");
                Assert.That(log.EndOffset, Is.EqualTo(300));
            });

            // The index came from the record: reads by offset and by time find their records.
            await foreach (var r in log.ReadAsync(250))
            {
                Assert.That(r.Offset, Is.EqualTo(250));
                Assert.That(Payload.Check(r.Value, out long id), Is.Null);
                Assert.That(id, Is.EqualTo(250));
                break;
            }

            await AppendAsync(log, 300, 50);
            Assert.That((await ReadAllAsync(log)).Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, 350).Select(i => (long)i)));
        }
    }

    [Test]
    public async Task AfterACrash_TheReopenScans_AndAppendsMadeAfterACleanReopenAreNotLost()
    {
        int seed = Seeds.Get();
        var storage = new SimulatedStorage(seed);
        await using (var log = await OpenAsync(storage))
        {
            await AppendAsync(log, 0, 100);
        }

        // Reopen cleanly, append (the file grows past the clean record's size), crash without closing.
        var reopened = await OpenAsync(storage);
        await AppendAsync(reopened, 100, 100);
        var crashed = storage.Crash(seed + 1);
        await using var recovered = await OpenAsync(crashed);
        var records = await ReadAllAsync(recovered);
        Assert.That(records.Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, 200).Select(i => (long)i)), "every acknowledged append survives");
        Assert.That(records.Select(r => Payload.Check(r.Value, out _)), Is.All.Null);
    }

    [Test]
    public async Task ADamagedCheckpoint_OnlyMeansAScan()
    {
        var storage = new SimulatedStorage(Seeds.Get());
        await using (var log = await OpenAsync(storage))
        {
            await AppendAsync(log, 0, 100);
        }

        string path = Dir + "/" + Checkpoint.FileName;
        var bytes = storage.GetDurableImage(path);
        var found = Checkpoint.ReadSlots(bytes)!.Value;
        storage.FlipBit(path, Checkpoint.SlotOf(found.Sequence) + 30, 1);
        storage.FlipBit(path, Checkpoint.SlotOf(found.Sequence + 1) + 30, 1);
        long syncs = storage.GetOperationCount(StorageOperation.SyncData);
        await using var reopened = await OpenAsync(storage);
        Assert.That(reopened.EndOffset, Is.EqualTo(100));
        Assert.That(storage.GetOperationCount(StorageOperation.SyncData) - syncs, Is.GreaterThan(0), "the scanning path (it syncs before it reads)");
        Assert.That((await ReadAllAsync(reopened)).Count, Is.EqualTo(100));
    }

    [Test]
    public async Task ADamagedCleanIndex_MakesTheRecordAClaim_StillAFloor()
    {
        var storage = new SimulatedStorage(Seeds.Get());
        await using (var log = await OpenAsync(storage))
        {
            await AppendAsync(log, 0, 10);
        }

        int batch = storage.GetDurableImage(Active).Length / 10; // a clean close leaves exactly the data
        storage.FlipBit(Dir + "/" + Checkpoint.FileName, Checkpoint.IndexStart + 3, 0);
        storage.FlipBit(Active, (3 * batch) + 200, 2); // batch 3 of 10
        var ex = Assert.ThrowsAsync<LogCorruptedException>(async () => await OpenAsync(storage.Crash(2)));
        Assert.That(ex!.FilePath, Is.EqualTo(Active));
        Assert.That(ex.Position, Is.EqualTo(3 * batch));
    }

    [Test]
    public async Task DamageBelowThePeriodicCheckpoint_AfterACrash_IsReportedNotTruncated()
    {
        int seed = Seeds.Get();
        var storage = new SimulatedStorage(seed);
        var log = await OpenAsync(storage, Options(TimeSpan.FromMilliseconds(10)));
        await AppendAsync(log, 0, 10);
        await WaitForCheckpointAsync(storage, 10);
        var claim = CheckpointFile.Read(storage, Dir)!.Value.Record;
        int batch = (int)(claim.Size / 10);
        storage.FlipBit(Active, (3 * batch) + 200, 2);
        var crashed = storage.Crash(seed + 1);
        var ex = Assert.ThrowsAsync<LogCorruptedException>(async () => await OpenAsync(crashed));
        Assert.That(ex!.FilePath, Is.EqualTo(Active));
        Assert.That(ex.Position, Is.EqualTo(3 * batch), "the exception names the damaged batch");
        Assert.That(crashed.GetDurableImage(Active).Length, Is.GreaterThanOrEqualTo(claim.Size), "nothing was cut off");
    }

    [Test]
    public async Task ATruncationBelowTheCheckpoint_ThenACrash_IsNoDamage([Values] bool reset)
    {
        int seed = Seeds.Get();
        var storage = new SimulatedStorage(seed);
        var log = await OpenAsync(storage, Options(TimeSpan.FromMilliseconds(10)));
        await AppendAsync(log, 0, 40);
        await WaitForCheckpointAsync(storage, 40);
        if (reset)
        {
            await log.ResetAsync(1000);
        }
        else
        {
            await log.TruncateSuffixAsync(20);
        }

        var crashed = storage.Crash(seed + 1);
        await using var recovered = await OpenAsync(crashed);
        Assert.That(recovered.EndOffset, Is.EqualTo(reset ? 1000 : 20));
        if (!reset)
        {
            Assert.That((await ReadAllAsync(recovered)).Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, 20).Select(i => (long)i)));
        }
    }

    [Test]
    public async Task AMissingActiveSegment_BelowTheCheckpoint_IsReported()
    {
        var storage = new SimulatedStorage(Seeds.Get());
        await using (var log = await OpenAsync(storage))
        {
            await AppendAsync(log, 0, 10);
        }

        storage.DeleteFile(Active);
        storage.SyncDirectory(Dir);
        var ex = Assert.ThrowsAsync<LogCorruptedException>(async () => await OpenAsync(storage.Crash(4)));
        Assert.That(ex!.Message, Does.Contain("durable"));
    }

    [Test]
    public async Task AnIdleLog_GivesBackItsReserve_AndAppendsAgainAfterwards()
    {
        var storage = new SimulatedStorage(Seeds.Get());
        await using var log = await OpenAsync(storage);
        await AppendAsync(log, 0, 200);
        long data = 200L * 573;
        Assert.That(storage.GetVolatileImage(Active).Length, Is.GreaterThan(data + (64 * 1024)), "appending reserved ahead");

        Assert.That(log.TrimIdleReservation(TimeSpan.Zero), Is.True);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (storage.GetVolatileImage(Active).Length > Buffers.Alignment.AlignUp(data))
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the reserve was not given back");
            await Task.Delay(5);
        }

        Assert.That(log.TrimIdleReservation(TimeSpan.Zero), Is.False, "nothing left to give back");
        await AppendAsync(log, 200, 300);
        Assert.That((await ReadAllAsync(log)).Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, 500).Select(i => (long)i)));
    }

    /// <summary>As LogManager housekeeping does: the idle chunk first, then the handle (bounded).</summary>
    private static async Task ReleaseIdleFileAsync(SegmentedLog log, DateTime deadline)
    {
        while (true)
        {
            log.ReleaseIdleBuffers(TimeSpan.Zero);
            if (log.ReleaseIdleFile(TimeSpan.Zero))
            {
                return;
            }

            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the handle was never released");
            await Task.Delay(5);
        }
    }

    [Test]
    public async Task AnIdleLog_ClosesItsActiveSegment_AndReopensItAtTheNextAppend_AndStillClosesCleanly()
    {
        var storage = new SimulatedStorage(Seeds.Get());
        await using (var log = await OpenAsync(storage))
        {
            await AppendAsync(log, 0, 20);
        }

        await using (var log = await OpenAsync(storage))
        {
            Assert.That(log.ReleaseIdleFile(TimeSpan.Zero), Is.False, "a reopened log holds no handle on its active segment");
            await AppendAsync(log, 20, 20);
            Assert.That(log.ReleaseIdleFile(TimeSpan.Zero), Is.False, "not while space is reserved ahead");
            Assert.That(log.TrimIdleReservation(TimeSpan.Zero), Is.True);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            await ReleaseIdleFileAsync(log, deadline);

            await AppendAsync(log, 40, 20);
            Assert.That(log.TrimIdleReservation(TimeSpan.Zero), Is.True);
            await ReleaseIdleFileAsync(log, deadline);
        }

        // Closed while its handle was released: the clean-close record still holds (the file was cut to the data).
        long syncs = storage.GetOperationCount(StorageOperation.SyncData);
        await using var reopened = await OpenAsync(storage);
        Assert.That(storage.GetOperationCount(StorageOperation.SyncData), Is.EqualTo(syncs), "the clean path");
        Assert.That((await ReadAllAsync(reopened)).Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, 60).Select(i => (long)i)));
    }
}
