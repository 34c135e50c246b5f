using AppendLog.Format;
using NUnit.Framework;

namespace AppendLog.Tests.Format;

public sealed class VarintTests
{
    // Expected bytes worked by hand: zigzag, then 7 bits per byte, low group first, 0x80 = "more follows".
    [TestCase(0, new byte[] { 0x00 })]
    [TestCase(-1, new byte[] { 0x01 })] // zigzag 1: the null-length marker
    [TestCase(1, new byte[] { 0x02 })]
    [TestCase(-64, new byte[] { 0x7F })] // zigzag 127: the largest one-byte value
    [TestCase(64, new byte[] { 0x80, 0x01 })] // zigzag 128
    [TestCase(300, new byte[] { 0xD8, 0x04 })] // zigzag 600 = 0b100_1011000
    [TestCase(int.MaxValue, new byte[] { 0xFE, 0xFF, 0xFF, 0xFF, 0x0F })] // zigzag 0xFFFFFFFE
    [TestCase(int.MinValue, new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x0F })] // zigzag 0xFFFFFFFF
    public void Int32_EncodesToKafkaBytes(int value, byte[] expected)
    {
        var buffer = new byte[Varint.Int32LengthMax];
        int written = Varint.Write(buffer, value);
        Assert.That(buffer[..written], Is.EqualTo(expected));
        Assert.That(Varint.SizeOf(value), Is.EqualTo(expected.Length));
        Assert.That(Varint.TryRead(expected, out int read, out int length), Is.True);
        Assert.That((read, length), Is.EqualTo((value, expected.Length)));
    }

    [TestCase(long.MaxValue, new byte[] { 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 })]
    [TestCase(long.MinValue, new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 })]
    [TestCase(-2L, new byte[] { 0x03 })]
    public void Int64_EncodesToKafkaBytes(long value, byte[] expected)
    {
        var buffer = new byte[Varint.Int64LengthMax];
        int written = Varint.Write(buffer, value);
        Assert.That(buffer[..written], Is.EqualTo(expected));
        Assert.That(Varint.SizeOf(value), Is.EqualTo(expected.Length));
        Assert.That(Varint.TryRead(expected, out long read, out int length), Is.True);
        Assert.That((read, length), Is.EqualTo((value, expected.Length)));
    }

    [FsCheck.NUnit.Property(MaxTest = 1000)]
    public void Int32_RoundTripsAndSizeOfIsExact(int value)
    {
        var buffer = new byte[Varint.Int32LengthMax + 3];
        int written = Varint.Write(buffer, value);
        Assert.That(written, Is.EqualTo(Varint.SizeOf(value)));
        Assert.That(Varint.TryRead(buffer, out int read, out int length), Is.True);
        Assert.That((read, length), Is.EqualTo((value, written)));
    }

    [FsCheck.NUnit.Property(MaxTest = 1000)]
    public void Int64_RoundTripsAndSizeOfIsExact(long value)
    {
        var buffer = new byte[Varint.Int64LengthMax + 3];
        int written = Varint.Write(buffer, value);
        Assert.That(written, Is.EqualTo(Varint.SizeOf(value)));
        Assert.That(Varint.TryRead(buffer, out long read, out int length), Is.True);
        Assert.That((read, length), Is.EqualTo((value, written)));
    }

    [FsCheck.NUnit.Property(MaxTest = 300)]
    public void Truncated_IsRejected(long value)
    {
        var buffer = new byte[Varint.Int64LengthMax];
        int written = Varint.Write(buffer, value);
        for (int cut = 0; cut < written; cut++)
        {
            Assert.That(Varint.TryRead(buffer.AsSpan(0, cut), out long _, out int _), Is.False, $"cut at {cut} of {written}");
        }
    }

    [Test]
    public void Overlong_And_Overwide_AreRejected()
    {
        Assert.Multiple(() =>
        {
            // Six bytes for an int32: never canonical.
            Assert.That(Varint.TryRead([0x80, 0x80, 0x80, 0x80, 0x80, 0x00], out int _, out int _), Is.False);
            // Five bytes whose last carries bit 32 or above.
            Assert.That(Varint.TryRead([0xFF, 0xFF, 0xFF, 0xFF, 0x10], out int _, out int _), Is.False);
            // Eleven bytes for an int64, and a tenth byte carrying bit 64.
            Assert.That(Varint.TryRead([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], out long _, out int _), Is.False);
            Assert.That(Varint.TryRead([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], out long _, out int _), Is.False);
            Assert.That(Varint.TryRead([], out int _, out int _), Is.False);
        });
    }

    [Test]
    public void Write_ToShortDestination_Throws() =>
        Assert.That(() => Varint.Write(new byte[1], 300), Throws.ArgumentException);
}
