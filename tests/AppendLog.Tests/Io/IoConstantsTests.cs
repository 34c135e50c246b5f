using AppendLog.Io;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Io;

/// <summary>Relations between constants, asserted once (STYLE practice 1), and the seed helper.</summary>
[TestFixture]
public sealed class IoConstantsTests
{
    [Test]
    public void BlockSize_IsAWholeNumberOfSectors_AndAPowerOfTwo()
    {
        Assert.That(IoConstants.BlockSize % IoConstants.SectorSize, Is.Zero);
        Assert.That(int.IsPow2(IoConstants.BlockSize), Is.True);
        Assert.That(int.IsPow2(IoConstants.SectorSize), Is.True);
    }

    [Test]
    public void SmallFileLimit_IsAWholeNumberOfBlocks()
    {
        Assert.That(LinuxStorage.SmallFileSizeMax % IoConstants.BlockSize, Is.Zero);
    }

    [Test]
    public void Seeds_Derive_IsAPureFunctionThatSpreadsIndices()
    {
        int[] first = [.. Enumerable.Range(0, 1000).Select(i => Seeds.Derive(42, i))];
        int[] again = [.. Enumerable.Range(0, 1000).Select(i => Seeds.Derive(42, i))];

        Assert.That(again, Is.EqualTo(first));
        Assert.That(first.Distinct().Count(), Is.EqualTo(1000));
        Assert.That(Seeds.Derive(43, 0), Is.Not.EqualTo(Seeds.Derive(42, 0)));
    }
}
