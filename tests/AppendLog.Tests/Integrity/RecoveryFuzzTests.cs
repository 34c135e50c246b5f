using AppendLog.Appender;
using AppendLog.Segments;
using AppendLog.Testing;
using AppendLog.Tests.Durability;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace AppendLog.Tests.Integrity;

/// <summary>
/// Recovery under damaged segment and checkpoint files (the integrity issue's fuzz target, FsCheck generators): a log is
/// written, closed cleanly or crashed, its files are damaged at random (bit flips, cuts, garbage over the data or past
/// it), and it is opened and read. Whatever the damage, the outcome is one of two: <see cref="LogCorruptedException"/>
/// (at open or on a read), or records that are exactly a prefix of what was written. Never another exception type,
/// never a record that was not written at its offset. <c>APPENDLOG_FUZZ_RUNS</c> sets the number of runs (default 150).
/// </summary>
[TestFixture]
[CancelAfter(300_000)]
public sealed class RecoveryFuzzTests
{
    private const string Dir = "/sim/fuzz";
    private static readonly IoWorkers s_io = new(2, "sim-fuzz-io");

    private enum Damage
    {
        FlipBits,
        CutFile,
        GarbageOverData,
        GarbagePastData,
        FlipCheckpoint,
    }

    private sealed record Case(int Seed, int Records, int MaxSize, bool Crash, Damage[] Damages, int[] Numbers);

    private static Gen<Case> Cases() =>
        from seed in Gen.Choose(0, int.MaxValue)
        from records in Gen.Choose(1, 60)
        from maxSize in Gen.Elements(50, 500, 5000, 40_000)
        from crash in Gen.Elements(true, false)
        from count in Gen.Choose(1, 3)
        from damages in Gen.ArrayOf(Gen.Elements(Enum.GetValues<Damage>()), count)
        from numbers in Gen.ArrayOf(Gen.Choose(0, int.MaxValue), 16)
        select new Case(seed, records, maxSize, crash, damages, numbers);

    [Test]
    public void DamagedFiles_AreReportedOrReadAsAPrefix_NeverAnotherExceptionOrWrongData()
    {
        int runs = int.TryParse(Environment.GetEnvironmentVariable("APPENDLOG_FUZZ_RUNS"), out int n) && n > 0 ? n : 150;
        var outcomes = new Dictionary<string, int>();
        Check.One(
            Config.QuickThrowOnFailure.WithMaxTest(runs),
            Prop.ForAll(Cases().ToArbitrary(), c =>
            {
                string outcome = RunAsync(c).GetAwaiter().GetResult();
                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                return true;
            }));
        TestContext.Out.WriteLine($"{runs} runs: " + string.Join(", ", outcomes.OrderByDescending(p => p.Value).Select(p => $"{p.Key} {p.Value}")));
        Assert.That(outcomes.Keys, Has.Some.StartsWith("prefix"), "some damage leaves a readable prefix");
        Assert.That(outcomes.Keys, Has.Some.StartsWith("corrupted"), "some damage is reported");
    }

    private static async Task<string> RunAsync(Case c)
    {
        var random = new Random(c.Seed);
        var options = SmallSimulatedLog.Options(Dir) with { DurableCheckpointInterval = TimeSpan.FromMilliseconds(10) };
        var storage = new SimulatedStorage(c.Seed);
        var log = await SmallSimulatedLog.OpenAsync(options, storage, s_io);
        for (int i = 0; i < c.Records; i++)
        {
            Assert.That(await log.AppendAsync(Payload.Create(i, 20 + random.Next(c.MaxSize))), Is.EqualTo(i));
        }

        if (!c.Crash)
        {
            await log.DisposeAsync();
        }

        var files = storage.ListFiles(Dir).Where(f => f.EndsWith(".log", StringComparison.Ordinal) && !f.StartsWith('.')).Order().ToList();
        string context = $"seed {c.Seed}, {c.Records} records up to {c.MaxSize} B, {(c.Crash ? "crash" : "clean close")}, {string.Join("+", c.Damages)}";
        int k = 0;
        foreach (var damage in c.Damages)
        {
            string target = damage == Damage.FlipCheckpoint
                ? Dir + "/" + Checkpoint.FileName
                : Dir + "/" + files[c.Numbers[k++ % c.Numbers.Length] % files.Count];
            if (!storage.FileExists(target))
            {
                continue;
            }

            long length = storage.GetDurableImage(target).Length;
            int number = c.Numbers[k++ % c.Numbers.Length];
            switch (damage)
            {
                case Damage.FlipBits or Damage.FlipCheckpoint when length > 0:
                    for (int f = 0; f < 1 + (number % 3); f++)
                    {
                        storage.FlipBit(target, random.NextInt64(length), random.Next(8));
                    }

                    break;
                case Damage.CutFile:
                    Rewrite(storage, target, file => file.Truncate(length == 0 ? 0 : number % length));
                    break;
                case Damage.GarbageOverData when length > 0:
                    Rewrite(storage, target, file => file.Write(Garbage(random, 1 + (number % 200)), number % length));
                    break;
                case Damage.GarbagePastData:
                    Rewrite(storage, target, file => file.Write(Garbage(random, 1 + (number % 5000)), length + (number % 9000)));
                    break;
            }
        }

        var crashed = storage.Crash(c.Seed ^ 0x5A5A);
        SegmentedLog reopened;
        try
        {
            reopened = await SmallSimulatedLog.OpenAsync(options, crashed, s_io);
        }
        catch (LogCorruptedException)
        {
            return "corrupted at open";
        }
        catch (Exception e)
        {
            Assert.Fail($"{context}: open threw {e.GetType().Name}: {e.Message}");
            throw;
        }

        await using (reopened)
        {
            long expected = reopened.StartOffset;
            Assert.That(reopened.StartOffset, Is.Zero, context);
            try
            {
                await foreach (var r in reopened.ReadAsync(0))
                {
                    Assert.That(r.Offset, Is.EqualTo(expected), context);
                    Assert.That(Payload.Check(r.Value, out long id), Is.Null, $"{context}: offset {r.Offset} served damaged bytes");
                    Assert.That(id, Is.EqualTo(r.Offset), $"{context}: offset {r.Offset} served another record");
                    expected++;
                }
            }
            catch (LogCorruptedException)
            {
                return "corrupted on read";
            }
            catch (Exception e) when (e is not AssertionException)
            {
                Assert.Fail($"{context}: a read threw {e.GetType().Name}: {e.Message}");
            }

            Assert.That(expected, Is.LessThanOrEqualTo(c.Records), context);
            if (expected < c.Records && !c.Crash && !c.Damages.Contains(Damage.FlipCheckpoint))
            {
                // After a clean close every record was durable and the checkpoint says so: a cut is silent loss.
                Assert.Fail($"{context}: {c.Records - expected} acknowledged records silently dropped");
            }

            return expected == c.Records ? "prefix (all)" : "prefix (cut)";
        }
    }

    private static byte[] Garbage(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static void Rewrite(SimulatedStorage storage, string path, Action<AppendLog.Io.IDirectFile> change)
    {
        using var file = storage.Open(path, AppendLog.Io.FileCreation.OpenExisting, DirectIoMode.Disabled);
        change(file);
        file.SyncData();
    }
}
