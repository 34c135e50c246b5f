using System.Text;
using AppendLog.Format;
using NUnit.Framework;

namespace AppendLog.Tests.Format;

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
    public void Compute_MatchesBitwiseReference_AndUpdateComposes(byte[] data, int splitSeed)
    {
        Assert.That(Crc32C.Compute(data), Is.EqualTo(ReferenceCrc32C.Compute(data)));
        int split = data.Length == 0 ? 0 : (int)((uint)splitSeed % (uint)data.Length);
        uint running = Crc32C.Update(uint.MaxValue, data.AsSpan(0, split));
        Assert.That(~Crc32C.Update(running, data.AsSpan(split)), Is.EqualTo(ReferenceCrc32C.Compute(data)));
    }

    [TestCase(Crc32C.InterleaveBlockSize - 1)]
    [TestCase(Crc32C.InterleaveBlockSize)]
    [TestCase(Crc32C.InterleaveBlockSize + 1)]
    [TestCase((2 * Crc32C.InterleaveBlockSize) + 13)]
    [TestCase(100_003)]
    public void Compute_MatchesReference_AcrossInterleavedRounds(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        Assert.That(Crc32C.Compute(data), Is.EqualTo(ReferenceCrc32C.Compute(data)));

        // Resuming from any split point gives the same register: rounds and tails compose.
        foreach (int split in new[] { 1, 7, Crc32C.LaneSize, length / 2, length - 1 })
        {
            uint running = Crc32C.Update(uint.MaxValue, data.AsSpan(0, split));
            Assert.That(~Crc32C.Update(running, data.AsSpan(split)), Is.EqualTo(ReferenceCrc32C.Compute(data)), $"split {split}");
        }
    }

    [Test]
    public void Compute_MatchesReference_OnEveryTailLength()
    {
        // Lengths 0..40 walk the 8-byte loop and the byte tail through every remainder.
        var random = new Random(20261125);
        for (int length = 0; length <= 40; length++)
        {
            var data = new byte[length];
            random.NextBytes(data);
            Assert.That(Crc32C.Compute(data), Is.EqualTo(ReferenceCrc32C.Compute(data)), $"length {length}");
        }
    }
}
