using System.Buffers.Binary;
using System.IO.Hashing;
using System.Buffers;
using AppendLog.Format;
using K4os.Compression.LZ4.Streams;
using NUnit.Framework;

namespace AppendLog.Tests.Format;

/// <summary>
/// Our LZ4 frame layer against the frame format and against K4os.Compression.LZ4.Streams, an independent
/// implementation used here as the oracle (it is a test-only dependency).
/// </summary>
public sealed class Lz4FrameTests
{
    [Test]
    public void Header_IsWhatKafkasJavaProducerWrites()
    {
        byte[] frame = Encode(FormatArbitraries.Fill(1000, 1, 1));

        // Magic 0x184D2204 LE; FLG 0x60 (version 01, independent blocks); BD 0x40 (64 KiB); HC 0x82, the
        // second byte of XxHash32(60 40) - the header every Kafka LZ4 batch from the Java client starts with.
        Assert.That(frame[..7], Is.EqualTo(new byte[] { 0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82 }));
        Assert.That(frame[^4..], Is.EqualTo(new byte[] { 0, 0, 0, 0 }), "end mark");
    }

    [Test]
    public void EmptyInput_IsHeaderAndEndMark() =>
        Assert.That(Encode([]), Is.EqualTo(new byte[] { 0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82, 0, 0, 0, 0 }));

    [Test]
    public void IncompressibleBlocks_AreStoredRaw_WithinTheBound()
    {
        byte[] random = FormatArbitraries.Fill((64 * 1024) + 10, 0, 3);
        byte[] frame = Encode(random);

        Assert.That(frame, Has.Length.EqualTo(Lz4Frame.MaxEncodedLength(random.Length)), "two raw blocks: the worst case");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(7)), Is.EqualTo(0x8001_0000u), "64 KiB, high bit = raw");
        Assert.That(Decode(frame), Is.EqualTo(random));
    }

    [FsCheck.NUnit.Property(MaxTest = 100)]
    public void OurFrames_DecodeWithK4osStreams_AndOurs(int length, int kind, int seed)
    {
        byte[] content = FormatArbitraries.Fill((int)((uint)length % 300_000), (int)((uint)kind % 3), seed);
        byte[] frame = Encode(content);

        Assert.That(frame, Has.Length.LessThanOrEqualTo(Lz4Frame.MaxEncodedLength(content.Length)));
        var oracle = new ArrayBufferWriter<byte>();
        LZ4Frame.Decode(frame.AsSpan(), oracle);
        Assert.That(oracle.WrittenSpan.ToArray(), Is.EqualTo(content), "K4os.Streams decodes our frame");
        Assert.That(Decode(frame), Is.EqualTo(content), "we decode our frame");
    }

    [FsCheck.NUnit.Property(MaxTest = 100)]
    public void K4osFrames_WithEveryOption_DecodeWithOurs(int length, int seed, bool chain, bool blockChecksum, bool contentChecksum, bool contentLength, byte blockSizeId)
    {
        // Other producers (librdkafka, the lz4 CLI) may link blocks, add checksums or a content size.
        byte[] content = FormatArbitraries.Fill((int)((uint)length % 600_000), 1, seed);
        var settings = new LZ4EncoderSettings
        {
            ChainBlocks = chain,
            BlockChecksum = blockChecksum,
            ContentChecksum = contentChecksum,
            BlockSize = (blockSizeId % 4) switch { 0 => 64 * 1024, 1 => 256 * 1024, 2 => 1024 * 1024, _ => 4 * 1024 * 1024 },
        };
        var frame = new ArrayBufferWriter<byte>();
        LZ4Frame.Encode(content.AsSpan(), frame, settings);
        byte[] bytes = frame.WrittenSpan.ToArray();

        Assert.That(Decode(contentLength ? WithContentSize(bytes, content.Length) : bytes), Is.EqualTo(content));
    }

    [Test]
    public void LinkedBlocks_ReferringAcrossTheBoundary_Decode()
    {
        // 200 KiB of a repeated 1000-byte random phrase: with chained blocks, each block's matches point into
        // the previous block, so decoding without the history would fail.
        byte[] phrase = FormatArbitraries.Fill(1000, 0, 11);
        byte[] content = Enumerable.Range(0, 200).SelectMany(_ => phrase).ToArray();
        var frame = new ArrayBufferWriter<byte>();
        LZ4Frame.Encode(content.AsSpan(), frame, new LZ4EncoderSettings { ChainBlocks = true, BlockSize = 64 * 1024 });

        Assert.That(Decode(frame.WrittenSpan.ToArray()), Is.EqualTo(content));
    }

    [Test]
    public void TooSmallDestination_IsReported_NotThrown()
    {
        byte[] content = FormatArbitraries.Fill(10_000, 1, 5);
        byte[] frame = Encode(content);

        Assert.That(Lz4Frame.Decode(frame, new byte[9_999], out _), Is.EqualTo(OperationStatus.DestinationTooSmall));
        Assert.That(Lz4Frame.Decode(frame, new byte[10_000], out int written), Is.EqualTo(OperationStatus.Done));
        Assert.That(written, Is.EqualTo(10_000));
    }

    [TestCase(0, "magic", TestName = "Bad magic")]
    [TestCase(4, "version", TestName = "Bad FLG")]
    [TestCase(6, "header checksum", TestName = "Bad header checksum")]
    public void DamagedHeader_Throws(int index, string what)
    {
        byte[] frame = Encode(FormatArbitraries.Fill(500, 1, 2));
        frame[index] ^= index == 4 ? (byte)0x80 : (byte)0x01;
        Assert.That(() => Decode(frame), Throws.TypeOf<RecordBatchFormatException>().With.Message.Contains(what));
    }

    [Test]
    public void DamagedStructure_Throws()
    {
        byte[] frame = Encode(FormatArbitraries.Fill(500, 1, 2));
        Assert.Multiple(() =>
        {
            Assert.That(() => Decode(frame[..^1]), Throws.TypeOf<RecordBatchFormatException>(), "end mark cut");
            Assert.That(() => Decode([.. frame, 0]), Throws.TypeOf<RecordBatchFormatException>().With.Message.Contains("follow"), "trailing byte");
            byte[] huge = (byte[])frame.Clone();
            BinaryPrimitives.WriteUInt32LittleEndian(huge.AsSpan(7), 70_000);
            Assert.That(() => Decode(huge), Throws.TypeOf<RecordBatchFormatException>().With.Message.Contains("block size"), "block over 64 KiB");
        });
    }

    [Test]
    public void ContentChecksumMismatch_Throws()
    {
        byte[] content = FormatArbitraries.Fill(5000, 0, 9);
        var frame = new ArrayBufferWriter<byte>();
        LZ4Frame.Encode(content.AsSpan(), frame, new LZ4EncoderSettings { ContentChecksum = true });
        byte[] bytes = frame.WrittenSpan.ToArray();
        bytes[^1] ^= 1; // the checksum's last byte

        Assert.That(() => Decode(bytes), Throws.TypeOf<RecordBatchFormatException>().With.Message.Contains("content checksum"));
    }

    /// <summary>
    /// K4os' buffer-writer encoder does not implement the content-size field, so the test adds it by hand:
    /// set FLG bit 3, insert the 8-byte little-endian size after BD, recompute the header checksum.
    /// </summary>
    private static byte[] WithContentSize(byte[] frame, long size)
    {
        Assert.That(frame[4] & 0x09, Is.Zero, "no content size or dictionary id yet");
        var sized = new byte[frame.Length + 8];
        frame.AsSpan(0, 6).CopyTo(sized);
        sized[4] |= 0x08;
        BinaryPrimitives.WriteInt64LittleEndian(sized.AsSpan(6), size);
        sized[14] = (byte)(XxHash32.HashToUInt32(sized.AsSpan(4, 10)) >> 8);
        frame.AsSpan(7).CopyTo(sized.AsSpan(15));
        return sized;
    }

    private static byte[] Encode(byte[] content)
    {
        var frame = new byte[Lz4Frame.MaxEncodedLength(content.Length)];
        int length = Lz4Frame.Encode(content, frame);
        return frame[..length];
    }

    private static byte[] Decode(byte[] frame)
    {
        var content = new byte[1024 * 1024];
        Assert.That(Lz4Frame.Decode(frame, content, out int written), Is.EqualTo(OperationStatus.Done));
        return content[..written];
    }
}
