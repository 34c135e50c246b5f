using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.IO.Hashing;
using K4os.Compression.LZ4;

namespace AppendLog.Format;

/// <summary>
/// The LZ4 <em>frame</em> format (lz4 project, <c>doc/lz4_Frame_format.md</c>), which Kafka uses for codec 3,
/// built on K4os.Compression.LZ4's block codec and System.IO.Hashing's XxHash32.
/// </summary>
/// <remarks>
/// <para>
/// K4os.Compression.LZ4 on its own only offers raw blocks (<see cref="LZ4Codec"/>) and its private
/// "pickle" format; frames live in K4os.Compression.LZ4.Streams, whose encoder objects allocate and whose
/// frame options we would have to pin anyway. The frame layer is small, so we write it here over caller
/// buffers (no allocation) and use the Streams package only in the tests, as an independent decoder and
/// encoder to check interoperability both ways.
/// </para>
/// <para>
/// We write what Kafka's Java producer writes (<c>KafkaLZ4BlockOutputStream</c>): 64 KiB independent blocks,
/// no content size, no block or content checksum. Layout, worked for a 100-byte input that compresses:
/// </para>
/// <code>
/// 04 22 4D 18   magic 0x184D2204, little-endian
/// 60            FLG: version 01, block independence 1, no checksums, no content size, no dictionary
/// 40            BD: block maximum size id 4 = 64 KiB
/// HC            (XxHash32(FLG BD, seed 0) &gt;&gt; 8) &amp; 0xFF
/// nn 00 00 00   block size n (little-endian); the high bit set would mean "stored uncompressed"
/// …n bytes…     the LZ4 block
/// 00 00 00 00   end mark
/// </code>
/// <para>
/// The decoder also accepts what other producers (librdkafka, the lz4 CLI) may set: linked blocks (decoded
/// against the previous 64 KiB of output), block checksums, a content size and a content checksum, all
/// verified. A dictionary id is refused: Kafka has no way to name the dictionary.
/// </para>
/// </remarks>
internal static class Lz4Frame
{
    /// <summary>The frame magic number, stored little-endian.</summary>
    public const uint Magic = 0x184D2204;

    /// <summary>The block size we write: 64 KiB, Kafka's default (block maximum size id 4).</summary>
    public const int EncodeBlockSize = 64 * 1024;

    /// <summary>Bytes of the header we write: magic (4), FLG, BD, HC.</summary>
    public const int EncodeHeaderSize = 7;

    /// <summary>Bytes of a block size field and of the end mark.</summary>
    private const int BlockSizeFieldSize = 4;

    /// <summary>High bit of a block size: the block is stored uncompressed.</summary>
    private const uint UncompressedFlag = 0x8000_0000;

    /// <summary>LZ4 matches reach at most 64 KiB back, so a linked block needs at most that much history.</summary>
    private const int LinkedHistoryMax = 64 * 1024;

    private const byte FlgVersionMask = 0xC0;
    private const byte FlgVersion01 = 0x40;
    private const byte FlgBlockIndependent = 0x20;
    private const byte FlgBlockChecksum = 0x10;
    private const byte FlgContentSize = 0x08;
    private const byte FlgContentChecksum = 0x04;
    private const byte FlgReserved = 0x02;
    private const byte FlgDictionaryId = 0x01;
    private const byte BdReservedMask = 0x8F;
    private const byte BdBlockSize64KiB = 4 << 4;

    /// <summary>
    /// The most bytes <see cref="Encode"/> can write for <paramref name="sourceLength"/> input bytes: a block
    /// that does not shrink is stored raw, so the worst case is the input plus 4 bytes per 64 KiB block,
    /// the 7-byte header and the 4-byte end mark. Example: 100 KiB → 2 blocks → 102 400 + 8 + 7 + 4 = 102 419.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The result would not fit in an <see cref="int"/>.</exception>
    public static int MaxEncodedLength(int sourceLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sourceLength);
        long blocks = ((long)sourceLength + EncodeBlockSize - 1) / EncodeBlockSize;
        long size = EncodeHeaderSize + (blocks * BlockSizeFieldSize) + sourceLength + BlockSizeFieldSize;
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, int.MaxValue, nameof(sourceLength));
        return (int)size;
    }

    /// <summary>Compresses <paramref name="source"/> into one LZ4 frame.</summary>
    /// <param name="source">The bytes to compress.</param>
    /// <param name="destination">At least <see cref="MaxEncodedLength"/> bytes.</param>
    /// <returns>The frame's length in bytes.</returns>
    /// <exception cref="ArgumentException">The destination is too small.</exception>
    public static int Encode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (destination.Length < MaxEncodedLength(source.Length))
        {
            ThrowDestinationTooSmall(destination.Length, MaxEncodedLength(source.Length));
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        destination[4] = FlgVersion01 | FlgBlockIndependent;
        destination[5] = BdBlockSize64KiB;
        destination[6] = HeaderChecksum(destination[4..6]);
        int position = EncodeHeaderSize;

        while (!source.IsEmpty)
        {
            ReadOnlySpan<byte> block = source[..Math.Min(source.Length, EncodeBlockSize)];
            source = source[block.Length..];
            Span<byte> body = destination[(position + BlockSizeFieldSize)..];

            // Offer the compressor one byte less than the input: if it cannot beat the input it fails
            // (returns ≤ 0) and the block is stored raw, which bounds the frame by MaxEncodedLength.
            int compressed = block.Length > 1 ? LZ4Codec.Encode(block, body[..(block.Length - 1)]) : 0;
            if (compressed > 0)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(destination[position..], (uint)compressed);
            }
            else
            {
                block.CopyTo(body);
                compressed = block.Length;
                BinaryPrimitives.WriteUInt32LittleEndian(destination[position..], (uint)compressed | UncompressedFlag);
            }

            position += BlockSizeFieldSize + compressed;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination[position..], 0); // end mark
        return position + BlockSizeFieldSize;
    }

    /// <summary>Decompresses one LZ4 frame that must span all of <paramref name="frame"/>.</summary>
    /// <param name="frame">The frame bytes; nothing may follow the frame.</param>
    /// <param name="destination">Where the content goes; its length is the caller's decompression limit.</param>
    /// <param name="written">The content length when <see cref="OperationStatus.Done"/> is returned.</param>
    /// <returns>
    /// <see cref="OperationStatus.Done"/>, or <see cref="OperationStatus.DestinationTooSmall"/> when the content
    /// does not fit (for a compressed block that would not fit whole, LZ4 cannot tell "too small" from
    /// "corrupt", so a corrupt block near the end of a small destination also reports this).
    /// </returns>
    /// <exception cref="RecordBatchFormatException">The frame is malformed or a checksum does not match.</exception>
    public static OperationStatus Decode(ReadOnlySpan<byte> frame, Span<byte> destination, out int written)
    {
        written = 0;
        int position = ReadDescriptor(frame, out byte flg, out int blockSizeMax, out long contentSize);
        if (contentSize > destination.Length)
        {
            return OperationStatus.DestinationTooSmall;
        }

        bool blockChecksum = (flg & FlgBlockChecksum) != 0;
        bool linked = (flg & FlgBlockIndependent) == 0;
        while (true)
        {
            uint sizeField = ReadUInt32(frame, ref position, "block size");
            if (sizeField == 0)
            {
                break; // end mark
            }

            int size = (int)(sizeField & ~UncompressedFlag);
            if (size > blockSizeMax || size > frame.Length - position)
            {
                Throw($"block size {size} exceeds the block maximum {blockSizeMax} or the {frame.Length - position} bytes left", position);
            }

            ReadOnlySpan<byte> block = frame.Slice(position, size);
            position += size;
            if (blockChecksum && XxHash32.HashToUInt32(block) != ReadUInt32(frame, ref position, "block checksum"))
            {
                Throw("block checksum mismatch", position);
            }

            int room = destination.Length - written;
            if ((sizeField & UncompressedFlag) != 0)
            {
                if (size > room)
                {
                    return OperationStatus.DestinationTooSmall;
                }

                block.CopyTo(destination[written..]);
                written += size;
                continue;
            }

            Span<byte> target = destination.Slice(written, Math.Min(room, blockSizeMax));
            int decoded = linked
                ? LZ4Codec.Decode(block, target, destination[Math.Max(0, written - LinkedHistoryMax)..written])
                : LZ4Codec.Decode(block, target);
            if (decoded < 0)
            {
                if (room < blockSizeMax)
                {
                    return OperationStatus.DestinationTooSmall;
                }

                Throw("LZ4 block does not decode", position - size);
            }

            written += decoded;
        }

        VerifyTrailer(frame, position, flg, contentSize, destination[..written]);
        return OperationStatus.Done;
    }

    private static int ReadDescriptor(ReadOnlySpan<byte> frame, out byte flg, out int blockSizeMax, out long contentSize)
    {
        int position = 0;
        if (ReadUInt32(frame, ref position, "magic") != Magic)
        {
            Throw("not an LZ4 frame (magic number)", 0);
        }

        if (frame.Length < position + 3)
        {
            Throw("frame descriptor is truncated", position);
        }

        flg = frame[position];
        byte bd = frame[position + 1];
        if ((flg & FlgVersionMask) != FlgVersion01 || (flg & FlgReserved) != 0 || (bd & BdReservedMask) != 0)
        {
            Throw($"unsupported frame version or reserved bits set (FLG 0x{flg:X2}, BD 0x{bd:X2})", position);
        }

        if ((flg & FlgDictionaryId) != 0)
        {
            Throw("frames with a dictionary id are not supported", position);
        }

        int blockSizeId = bd >> 4;
        if (blockSizeId < 4)
        {
            Throw($"block maximum size id {blockSizeId} is not 4 to 7", position + 1);
        }

        // Ids 4..7 are 64 KiB, 256 KiB, 1 MiB, 4 MiB: 1 << (2 × id + 8), e.g. 4 → 1 << 16.
        blockSizeMax = 1 << ((2 * blockSizeId) + 8);
        int descriptorStart = position;
        position += 2;
        contentSize = 0;
        if ((flg & FlgContentSize) != 0)
        {
            if (frame.Length < position + sizeof(ulong))
            {
                Throw("content size is truncated", position);
            }

            ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(frame[position..]);
            contentSize = declared > int.MaxValue ? long.MaxValue : (long)declared;
            position += sizeof(ulong);
        }

        if (position >= frame.Length)
        {
            Throw("header checksum is missing", position);
        }

        if (HeaderChecksum(frame[descriptorStart..position]) != frame[position])
        {
            Throw("header checksum mismatch", position);
        }

        return position + 1;
    }

    private static void VerifyTrailer(ReadOnlySpan<byte> frame, int position, byte flg, long contentSize, ReadOnlySpan<byte> content)
    {
        if ((flg & FlgContentChecksum) != 0
            && XxHash32.HashToUInt32(content) != ReadUInt32(frame, ref position, "content checksum"))
        {
            Throw("content checksum mismatch", position);
        }

        if ((flg & FlgContentSize) != 0 && contentSize != content.Length)
        {
            Throw($"content size {contentSize} declared, {content.Length} decoded", position);
        }

        if (position != frame.Length)
        {
            Throw($"{frame.Length - position} bytes follow the end of the frame", position);
        }
    }

    /// <summary>The header checksum byte: the second byte of XxHash32 (seed 0) over the descriptor.</summary>
    private static byte HeaderChecksum(ReadOnlySpan<byte> descriptor) => (byte)(XxHash32.HashToUInt32(descriptor) >> 8);

    private static uint ReadUInt32(ReadOnlySpan<byte> frame, ref int position, string field)
    {
        if (frame.Length - position < sizeof(uint))
        {
            Throw($"{field} is truncated", position);
        }

        uint value = BinaryPrimitives.ReadUInt32LittleEndian(frame[position..]);
        position += sizeof(uint);
        return value;
    }

    [DoesNotReturn]
    private static void Throw(string what, int position) =>
        throw new RecordBatchFormatException($"Malformed LZ4 frame at byte {position}: {what}.", position, "compressedPayload");

    [DoesNotReturn]
    private static void ThrowDestinationTooSmall(int length, int needed) =>
        throw new ArgumentException($"The destination holds {length} bytes; the frame may need {needed}.", "destination");
}
