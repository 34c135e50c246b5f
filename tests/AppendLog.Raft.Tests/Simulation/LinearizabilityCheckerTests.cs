using NUnit.Framework;

namespace AppendLog.Raft.Tests.Simulation;

/// <summary>The register linearizability checker on small histories whose answer is known.</summary>
public sealed class LinearizabilityCheckerTests
{
    private const long Pending = long.MaxValue;

    private static RegisterOp W(long value, long invoked, long returned) => new(true, value, invoked, returned);

    private static RegisterOp R(long value, long invoked, long returned) => new(false, value, invoked, returned);

    [Test]
    public void SequentialWritesAndReads_AreLinearizable()
    {
        Assert.That(LinearizabilityChecker.Check([W(1, 1, 2), R(1, 3, 4), W(2, 5, 6), R(2, 7, 8)], 0), Is.Null);
    }

    [Test]
    public void AReadOfTheInitialValueAfterAWriteCompleted_IsAStaleRead()
    {
        Assert.That(LinearizabilityChecker.Check([W(1, 1, 2), R(0, 3, 4)], 0), Does.StartWith("not linearizable"));
    }

    [Test]
    public void ReadsConcurrentWithAWrite_MaySeeEitherValue_ButNeverGoBack()
    {
        // The write spans [1, 10]: a read may see 0 then 1, never 1 then 0.
        Assert.That(LinearizabilityChecker.Check([W(1, 1, 10), R(0, 2, 3), R(1, 4, 5), R(1, 6, 7)], 0), Is.Null);
        Assert.That(LinearizabilityChecker.Check([W(1, 1, 10), R(1, 2, 3), R(0, 4, 5)], 0), Does.StartWith("not linearizable"));
    }

    [Test]
    public void APendingWrite_MayTakeEffect_OrNot()
    {
        Assert.That(LinearizabilityChecker.Check([W(1, 1, 2), W(2, 3, Pending), R(2, 4, 5)], 0), Is.Null, "observed: it took effect");
        Assert.That(LinearizabilityChecker.Check([W(1, 1, 2), W(2, 3, Pending), R(1, 4, 5)], 0), Is.Null, "not observed: it may not have");
        Assert.That(LinearizabilityChecker.Check([W(1, 1, 2), W(2, 3, Pending), R(2, 4, 5), R(1, 6, 7)], 0), Does.StartWith("not linearizable"),
            "once seen, the older value cannot come back");
        Assert.That(LinearizabilityChecker.Check([W(2, 3, Pending), R(2, 1, 2)], 0), Does.StartWith("not linearizable"),
            "a read cannot see a write invoked after it returned");
        Assert.That(LinearizabilityChecker.Check([W(1, 1, 2), W(3, 3, Pending), R(3, 10, 11), W(4, 12, 13), R(4, 14, 15)], 0), Is.Null,
            "a pending write seen once, then overwritten");
    }

    [Test]
    public void ManyConcurrentWrites_AreSearchedWithoutBlowingUp()
    {
        // 14 writes all concurrent (the simulation's leaders keep at most a few in flight), then reads of one of them:
        // the cache keeps the search to the sets of writes placed, not their orders (14! would never finish).
        var history = Enumerable.Range(1, 14).Select(i => W(i, i, 100 + i)).ToList();
        history.Add(R(7, 200, 201));
        history.Add(R(7, 202, 203));
        Assert.That(LinearizabilityChecker.Check(history, 0), Is.Null);
        history.Add(R(8, 204, 205));
        Assert.That(LinearizabilityChecker.Check(history, 0), Does.StartWith("not linearizable"), "every write ended before the reads began");
    }

    /// <summary>
    /// The zone check (used on the simulation's long histories) and the search agree on 20,000 random small histories with
    /// unique writes, pending writes among them; both outcomes occur often, so the agreement means something.
    /// </summary>
    [Test]
    public void TheZoneCheck_AgreesWithTheSearch_OnRandomHistories()
    {
        var random = new Random(20_261_203);
        int linearizable = 0, not = 0;
        for (var run = 0; run < 20_000; run++)
        {
            var count = random.Next(2, 9);
            var times = Enumerable.Range(0, 2 * count).OrderBy(_ => random.Next()).ToList();
            var history = new List<RegisterOp>();
            var written = new List<long> { 0 };
            for (var i = 0; i < count; i++)
            {
                var (invoked, returned) = (Math.Min(times[2 * i], times[(2 * i) + 1]), Math.Max(times[2 * i], times[(2 * i) + 1]));
                if (random.Next(2) == 0)
                {
                    var value = i + 1L;
                    written.Add(value);
                    history.Add(W(value, invoked, random.Next(8) == 0 ? Pending : returned));
                }
                else
                {
                    history.Add(R(written[random.Next(written.Count)], invoked, returned));
                }
            }

            var search = LinearizabilityChecker.Check(history, 0);
            var zones = LinearizabilityChecker.CheckUniqueWrites(history, 0);
            Assert.That(zones is null, Is.EqualTo(search is null), $"run {run}: {string.Join("; ", history)}: search says {search ?? "ok"}, zones say {zones ?? "ok"}");
            if (search is null)
            {
                linearizable++;
            }
            else
            {
                not++;
            }
        }

        Assert.That(linearizable, Is.GreaterThan(2000));
        Assert.That(not, Is.GreaterThan(2000));
    }
}
