using AppendLog.Appender;
using AppendLog.Testing;
using AppendLog.Tests.Durability;
using NUnit.Framework;

namespace AppendLog.Tests.Log;

/// <summary>
/// <see cref="SegmentedLog.ResetAsync"/>: the log restarts empty at a given offset, durably; a power cut at any
/// directory sync of the reset leaves either what remains of the old log (whole segments gone at its ends) or the
/// empty log at the new offset, and repeating the reset after the restart completes it.
/// </summary>
[TestFixture]
public sealed class ResetTests
{
    private const int Records = 700;

    /// <summary>Records written after a reset are shorter than the old ones (4000 bytes), so a stale read shows.</summary>
    private const int NewLength = 3000;
    private const string Dir = "/sim/reset";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private static readonly IoWorkers s_io = new(2, "sim-reset-io");

    private static LogOptions Options() => SmallSimulatedLog.Options(Dir);

    private static Task<SegmentedLog> OpenAsync(SimulatedStorage storage) => SmallSimulatedLog.OpenAsync(Options(), storage, s_io);

    private static async Task<List<LogRecord>> ReadAllAsync(SegmentedLog log)
    {
        var records = new List<LogRecord>();
        await foreach (var r in log.ReadAsync(log.StartOffset))
        {
            records.Add(r);
        }

        return records;
    }

    /// <summary>700 records of 4000 bytes: two sealed 1 MiB segments and an active one.</summary>
    private static async Task FillAsync(SegmentedLog log, int count = Records)
    {
        for (int i = 0; i < count; i++)
        {
            Assert.That(await log.AppendAsync(Payload.Create(i, 4000)).AsTask().WaitAsync(Bound), Is.EqualTo(i));
        }
    }

    [TestCase(1_000_000)]
    [TestCase(Records)]
    [TestCase(300)]
    [TestCase(0)]
    public async Task Reset_DiscardsEveryRecord_AndTheLogContinuesAtTheNewOffset_AlsoAfterReopen(long nextOffset)
    {
        var storage = new SimulatedStorage(Seeds.Get());
        await using (var log = await OpenAsync(storage))
        {
            await FillAsync(log);
            Assert.That(await ReadAllAsync(log), Has.Count.EqualTo(Records), "read once, so the old batches are in the read caches");
            Assert.That(log.SegmentCount, Is.GreaterThanOrEqualTo(3));
            await log.ResetAsync(nextOffset).AsTask().WaitAsync(Bound);
            Assert.Multiple(() =>
            {
                Assert.That(log.StartOffset, Is.EqualTo(nextOffset));
                Assert.That(log.EndOffset, Is.EqualTo(nextOffset));
                Assert.That(log.DurableEndOffset, Is.EqualTo(nextOffset));
                Assert.That(log.SegmentCount, Is.EqualTo(1));
            });
            Assert.That(await ReadAllAsync(log), Is.Empty);
            for (long i = nextOffset; i < nextOffset + 100; i++)
            {
                Assert.That(await log.AppendAsync(Payload.Create(i, NewLength)).AsTask().WaitAsync(Bound), Is.EqualTo(i));
            }

            // The same instance serves the new records, never a cached batch of the old log at the same offsets.
            var served = await ReadAllAsync(log);
            Assert.That(served.Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, 100).Select(i => nextOffset + i)));
            Assert.That(served.Select(r => r.Value!.Length), Is.All.EqualTo(NewLength));
        }

        // A clean reopen and a power cut (everything was acknowledged durable) both give the new log only.
        for (int pass = 0; pass < 2; pass++)
        {
            if (pass == 1)
            {
                storage = storage.Crash(Seeds.Derive(Seeds.Get(), 1));
            }

            await using var reopened = await OpenAsync(storage);
            var records = await ReadAllAsync(reopened);
            Assert.That(reopened.StartOffset, Is.EqualTo(nextOffset));
            Assert.That(records.Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, 100).Select(i => nextOffset + i)));
            Assert.That(records.Select(r => Payload.Check(r.Value, out long id) ?? (id == r.Offset ? null : $"offset {r.Offset} holds {id}")), Is.All.Null);
            Assert.That(records.Select(r => r.Value!.Length), Is.All.EqualTo(NewLength));
        }
    }

    [Test]
    public async Task PowerCutAtAnyStepOfAReset_LeavesTheOldLogOrTheEmptyLogAtTheNewOffset_AndRepeatingTheResetCompletesIt(
        [Values(1_000_000, 300)] long nextOffset)
    {
        // Count the directory syncs a whole reset makes, then cut the power just before each one in turn (directory
        // operations not yet synced survive in a random prefix, per the simulator's fault model).
        int seed = Seeds.Get();
        int syncs;
        {
            var storage = new SimulatedStorage(seed);
            await using var log = await OpenAsync(storage);
            await FillAsync(log);
            long before = storage.GetOperationCount(StorageOperation.SyncDirectory);
            await log.ResetAsync(nextOffset).AsTask().WaitAsync(Bound);
            syncs = (int)(storage.GetOperationCount(StorageOperation.SyncDirectory) - before);
            Assert.That(syncs, Is.GreaterThanOrEqualTo(4), "one sync per deleted segment (three) plus the new file's");
        }

        var sawOld = 0;
        var sawNew = 0;
        for (int cutAt = 1; cutAt <= syncs; cutAt++)
        {
            for (int round = 0; round < 3; round++)
            {
                var storage = new SimulatedStorage(Seeds.Derive(seed, (cutAt * 10) + round));
                var log = await OpenAsync(storage);
                await FillAsync(log);
                int seen = 0;
                bool armed = true;
                storage.BeforeOperation = (operation, _) =>
                {
                    if (armed && operation == StorageOperation.SyncDirectory && ++seen == cutAt)
                    {
                        throw new IOException("power cut");
                    }
                };
                Assert.That(async () => await log.ResetAsync(nextOffset).AsTask().WaitAsync(Bound), Throws.InstanceOf<LogFaultedException>(), $"cut at sync {cutAt}");
                armed = false;
                var crashed = storage.Crash(Seeds.Derive(seed, (cutAt * 10) + round + 1000));
                try
                {
                    await log.DisposeAsync().AsTask().WaitAsync(Bound);
                }
                catch (IOException)
                {
                    // The old instance runs into the dead storage.
                }

                await using var reopened = await OpenAsync(crashed);
                var records = await ReadAllAsync(reopened);
                var context = $"cut at sync {cutAt}/{syncs}, round {round}: start {reopened.StartOffset}, end {reopened.EndOffset}";
                if (reopened.StartOffset == nextOffset && reopened.EndOffset == nextOffset)
                {
                    sawNew++;
                    Assert.That(records, Is.Empty, context);
                }
                else
                {
                    // What remains of the old log: a contiguous run of the old records, each intact at its own offset.
                    sawOld++;
                    Assert.That(reopened.EndOffset, Is.LessThanOrEqualTo(Records), context);
                    Assert.That(records.Select(r => r.Offset), Is.EqualTo(Enumerable.Range((int)reopened.StartOffset, (int)(reopened.EndOffset - reopened.StartOffset)).Select(i => (long)i)), context);
                    Assert.That(records.Select(r => Payload.Check(r.Value, out long id) ?? (id == r.Offset ? null : $"offset {r.Offset} holds {id}")), Is.All.Null, context);
                }

                // Repeating the reset after the restart completes it.
                await reopened.ResetAsync(nextOffset).AsTask().WaitAsync(Bound);
                Assert.That(await reopened.AppendAsync(Payload.Create(nextOffset, 100)).AsTask().WaitAsync(Bound), Is.EqualTo(nextOffset), context);
            }
        }

        TestContext.Out.WriteLine($"{syncs} cut points x 3 rounds: old log (or what remains of it) {sawOld}, empty log at {nextOffset} {sawNew}");
        Assert.That(sawOld, Is.GreaterThan(0), "early cuts keep the old log");
        Assert.That(sawNew, Is.GreaterThan(0), "a cut at the last sync can leave the finished reset");
    }
}
