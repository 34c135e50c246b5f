using System.Text;
using AppendLog.Format;
using NUnit.Framework;

namespace AppendLog.Tests.Format;

/// <summary>The log's CRC-32C (System.IO.Hashing) against the catalogue value and a bit-by-bit reference.</summary>
public sealed class Crc32CTests
{
    [Test]
    public void CheckValue_MatchesTheCatalogue()
    {
        // The CRC catalogue's check value for CRC-32/ISCSI (= CRC-32C) over "123456789".
        byte[] data = Encoding.ASCII.GetBytes("123456789");
        Assert.That(Crc32C.Compute(data), Is.EqualTo(0xE3069283u));
        Assert.That(ReferenceCrc32C.Compute(data), Is.EqualTo(0xE3069283u));
        Assert.That(Crc32C.Compute([]), Is.Zero);
    }

    [FsCheck.NUnit.Property(MaxTest = 300)]
    public void Compute_MatchesBitwiseReference(byte[] data) =>
        Assert.That(Crc32C.Compute(data), Is.EqualTo(ReferenceCrc32C.Compute(data)));

    [TestCase(1023)]
    [TestCase(1024)]
    [TestCase(3 * 1024 + 13)]
    [TestCase(100_003)]
    public void Compute_MatchesReference_OnLargeInputs(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        Assert.That(Crc32C.Compute(data), Is.EqualTo(ReferenceCrc32C.Compute(data)));
    }

    [Test]
    public void Compute_MatchesReference_OnEveryTailLength()
    {
        var random = new Random(20261125);
        for (int length = 0; length <= 40; length++)
        {
            var data = new byte[length];
            random.NextBytes(data);
            Assert.That(Crc32C.Compute(data), Is.EqualTo(ReferenceCrc32C.Compute(data)), $"length {length}");
        }
    }
}
