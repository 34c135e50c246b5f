using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using Snappier;
using ZstdSharp;

namespace AppendLog.Format;

/// <summary>
/// The four Kafka codecs over a batch's records section: compress for the encoder, decompress for readers and the
/// raw-batch validator. Attribute bits 0-2 name the codec (Kafka <c>CompressionType</c>): 1 GZIP, 2 Snappy, 3 LZ4,
/// 4 ZSTD; 5 to 7 are unassigned.
/// </summary>
/// <remarks>
/// <para>What each codec's payload is, as Kafka's clients write it:</para>
/// <list type="table">
/// <listheader><term>Codec</term><description>Payload, and what we write</description></listheader>
/// <item><term>GZIP (1)</term><description>A gzip stream (RFC 1952), as Java's <c>GZIPOutputStream</c> writes; read and
/// written with <see cref="GZipStream"/> (level Optimal = zlib 6, Kafka's default).</description></item>
/// <item><term>Snappy (2)</term><description>The Java producer writes snappy-java's "xerial" framing: the 8-byte magic
/// <c>82 53 4E 41 50 50 59 00</c>, version 1 and compatible version 1 (int32 big-endian each), then blocks of
/// [int32 big-endian compressed length, raw snappy block], each of at most 32 KiB input. librdkafka and kafkajs's
/// snappy codec write one raw snappy block instead. We read both (the magic tells them apart, as librdkafka does)
/// and write the xerial framing, which every Kafka client reads.</description></item>
/// <item><term>LZ4 (3)</term><description>An LZ4 frame (see <see cref="Lz4Frame"/>).</description></item>
/// <item><term>ZSTD (4)</term><description>One or more zstd frames, content size optional (level 3, Kafka's
/// default).</description></item>
/// </list>
/// <para>Every decoder writes into a caller's span whose length is the decompression limit, so a small batch that
/// inflates without bound cannot take memory; every malformed payload becomes a
/// <see cref="RecordBatchFormatException"/> with the check name <c>compressedPayload</c>.</para>
/// </remarks>
internal static class BatchCompression
{
    /// <summary>The check name carried by every payload error.</summary>
    public const string PayloadCheck = "compressedPayload";

    /// <summary>Input bytes per xerial Snappy block: snappy-java's default block size, which Kafka uses.</summary>
    public const int SnappyBlockSize = 32 * 1024;

    /// <summary>The zstd level Kafka's producer uses by default (<c>compression.zstd.level</c> = 3).</summary>
    public const int ZstdLevel = 3;

    /// <summary>The smallest gzip member: a 10-byte header and an 8-byte trailer.</summary>
    private const int GzipHeaderAndTrailerSize = 18;

    /// <summary>The xerial header: magic (8), version (4), compatible version (4).</summary>
    private const int XerialHeaderSize = 16;

    /// <summary>
    /// A gzip member of no content (RFC 1952): header 1F 8B, deflate (8), no flags, mtime 0, xfl 0, OS 255 (unknown);
    /// one final empty fixed-Huffman block (03 00); CRC-32 0 and ISIZE 0.
    /// </summary>
    private static ReadOnlySpan<byte> EmptyGzipMember => [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];

    private static ReadOnlySpan<byte> XerialMagic => [0x82, (byte)'S', (byte)'N', (byte)'A', (byte)'P', (byte)'P', (byte)'Y', 0];

    [ThreadStatic]
    private static Compressor? t_zstdCompressor;

    [ThreadStatic]
    private static Decompressor? t_zstdDecompressor;

    [ThreadStatic]
    private static MemoryStream? t_gzipOutput;

    /// <summary>True for the codecs this library reads and writes: none, GZIP, Snappy, LZ4, ZSTD.</summary>
    public static bool IsSupported(CompressionCodec codec) => codec is CompressionCodec.None or CompressionCodec.Gzip
        or CompressionCodec.Snappy or CompressionCodec.Lz4 or CompressionCodec.Zstd;

    /// <summary>The most bytes <see cref="Compress"/> can write for <paramref name="sourceLength"/> input bytes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The codec is none or unsupported, or the bound overflows an int.</exception>
    public static int MaxCompressedLength(CompressionCodec codec, int sourceLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sourceLength);
        long size = codec switch
        {
            CompressionCodec.Lz4 => Lz4Frame.MaxEncodedLength(sourceLength),

            // Deflate's stored blocks cost 5 bytes per 64 KiB at worst (zlib deflateBound is n + n/4096 + n/16384 + 13);
            // n/8 + 64 is far above that and above gzip's 18-byte wrapper: 100 KiB → 115 264.
            CompressionCodec.Gzip => sourceLength + (sourceLength / 8L) + 64,
            CompressionCodec.Snappy => XerialHeaderSize + SnappyBound(sourceLength),
            CompressionCodec.Zstd => (long)Compressor.GetCompressBound(sourceLength),
            _ => throw new ArgumentOutOfRangeException(nameof(codec), codec, "Not a compression codec."),
        };
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, int.MaxValue, nameof(sourceLength));
        return (int)size;
    }

    /// <summary>Compresses <paramref name="source"/> with <paramref name="codec"/>.</summary>
    /// <param name="codec">GZIP, Snappy, LZ4 or ZSTD.</param>
    /// <param name="source">The records section.</param>
    /// <param name="destination">At least <see cref="MaxCompressedLength"/> bytes.</param>
    /// <returns>The payload's length in bytes.</returns>
    /// <exception cref="ArgumentException">The destination is too small, or the codec is none or unsupported.</exception>
    public static int Compress(CompressionCodec codec, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        int max = MaxCompressedLength(codec, source.Length);
        if (destination.Length < max)
        {
            throw new ArgumentException($"The destination holds {destination.Length} bytes; the payload may need {max}.", nameof(destination));
        }

        return codec switch
        {
            CompressionCodec.Lz4 => Lz4Frame.Encode(source, destination),
            CompressionCodec.Gzip => GzipCompress(source, destination),
            CompressionCodec.Snappy => XerialCompress(source, destination),
            _ => (t_zstdCompressor ??= new Compressor(ZstdLevel)).Wrap(source, destination),
        };
    }

    /// <summary>Decompresses a records section compressed with <paramref name="codec"/>.</summary>
    /// <param name="codec">GZIP, Snappy, LZ4 or ZSTD.</param>
    /// <param name="payload">The compressed records section; nothing may follow it.</param>
    /// <param name="destination">Where the records go; its length is the decompression limit.</param>
    /// <param name="written">The records section's length when <see cref="OperationStatus.Done"/> is returned.</param>
    /// <returns><see cref="OperationStatus.Done"/>, or <see cref="OperationStatus.DestinationTooSmall"/> when the records
    /// need more than <paramref name="destination"/> (retry larger, or treat it as over the limit).</returns>
    /// <exception cref="RecordBatchFormatException">The payload is malformed (check <c>compressedPayload</c>).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The codec is none or unsupported.</exception>
    public static OperationStatus Decompress(CompressionCodec codec, ReadOnlySpan<byte> payload, Span<byte> destination, out int written)
    {
        if (codec == CompressionCodec.None || !IsSupported(codec))
        {
            throw new ArgumentOutOfRangeException(nameof(codec), codec, "Not a compression codec.");
        }

        if (payload.IsEmpty)
        {
            // An empty payload is an empty records section: Kafka's log cleaner writes a batch whose records were all
            // removed as a bare header that keeps the codec bits. The record count then decides.
            written = 0;
            return OperationStatus.Done;
        }

        try
        {
            return codec switch
            {
                CompressionCodec.Lz4 => Lz4Frame.Decode(payload, destination, out written),
                CompressionCodec.Gzip => GzipDecompress(payload, destination, out written),
                CompressionCodec.Snappy => SnappyDecompress(payload, destination, out written),
                _ => ZstdDecompress(payload, destination, out written),
            };
        }
        catch (Exception ex) when (ex is InvalidDataException or ZstdException or IndexOutOfRangeException or ArgumentException)
        {
            // The packages report damage in their own ways (InvalidDataException from GZipStream and Snappier,
            // ZstdException from ZstdSharp, ArgumentOutOfRangeException from Snappier for a bad length): one type here.
            throw new RecordBatchFormatException($"Malformed {codec} payload: {ex.Message}", 0, PayloadCheck);
        }
    }

    private static long SnappyBound(int sourceLength)
    {
        long blocks = ((long)sourceLength + SnappyBlockSize - 1) / SnappyBlockSize;
        int full = sourceLength / SnappyBlockSize;
        int last = sourceLength % SnappyBlockSize;
        return (blocks * 4) + ((long)full * Snappy.GetMaxCompressedLength(SnappyBlockSize)) + (last > 0 ? Snappy.GetMaxCompressedLength(last) : 0);
    }

    private static int GzipCompress(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (source.IsEmpty)
        {
            // GZipStream writes nothing at all for no input; write the empty member other clients write.
            EmptyGzipMember.CopyTo(destination);
            return EmptyGzipMember.Length;
        }

        // GZipStream writes only to a stream: compress into the thread's reusable buffer, then copy.
        var output = t_gzipOutput ??= new MemoryStream();
        output.SetLength(0);
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(source);
        }

        var written = output.GetBuffer().AsSpan(0, (int)output.Length);
        written.CopyTo(destination);
        if (output.Capacity > 4 * 1024 * 1024)
        {
            t_gzipOutput = null; // do not keep a large batch's buffer for the thread's life
        }

        return written.Length;
    }

    private static OperationStatus GzipDecompress(ReadOnlySpan<byte> payload, Span<byte> destination, out int written)
    {
        OperationStatus status;
        using (var gzip = new GZipStream(new MemoryStream(payload.ToArray(), writable: false), CompressionMode.Decompress))
        {
            status = ReadAll(gzip, destination, out written);
        }

        // GZipStream returns what it inflated from a stream cut short without complaint, so check the trailer
        // (RFC 1952 §2.3: CRC-32 and ISIZE, little-endian) against the output. Kafka's clients (Java's
        // GZIPOutputStream, zlib in librdkafka) write one gzip member, whose trailer ends the payload.
        if (status == OperationStatus.Done)
        {
            if (payload.Length < GzipHeaderAndTrailerSize
                || BinaryPrimitives.ReadUInt32LittleEndian(payload[^4..]) != (uint)written
                || BinaryPrimitives.ReadUInt32LittleEndian(payload[^8..]) != System.IO.Hashing.Crc32.HashToUInt32(destination[..written]))
            {
                throw new InvalidDataException("the gzip stream is cut short, or its trailer does not match the content");
            }
        }

        return status;
    }

    private static OperationStatus ZstdDecompress(ReadOnlySpan<byte> payload, Span<byte> destination, out int written)
    {
        var decompressor = t_zstdDecompressor ??= new Decompressor();
        return decompressor.TryUnwrap(payload, destination, out written) ? OperationStatus.Done : OperationStatus.DestinationTooSmall;
    }

    private static OperationStatus SnappyDecompress(ReadOnlySpan<byte> payload, Span<byte> destination, out int written)
    {
        if (!payload.StartsWith(XerialMagic))
        {
            return SnappyBlock(payload, destination, out written);
        }

        if (payload.Length < XerialHeaderSize)
        {
            throw new InvalidDataException("the xerial header is cut short");
        }

        written = 0;
        int position = XerialHeaderSize;
        while (position < payload.Length)
        {
            if (payload.Length - position < 4)
            {
                throw new InvalidDataException($"a xerial block length at byte {position} is cut short");
            }

            int length = BinaryPrimitives.ReadInt32BigEndian(payload[position..]);
            position += 4;
            if (length <= 0 || length > payload.Length - position)
            {
                throw new InvalidDataException($"the xerial block length {length} at byte {position - 4} is outside 1..{payload.Length - position}");
            }

            var status = SnappyBlock(payload.Slice(position, length), destination[written..], out int blockWritten);
            if (status != OperationStatus.Done)
            {
                return status;
            }

            written += blockWritten;
            position += length;
        }

        return OperationStatus.Done;
    }

    private static OperationStatus SnappyBlock(ReadOnlySpan<byte> block, Span<byte> destination, out int written)
    {
        written = 0;
        int length = Snappy.GetUncompressedLength(block);
        if (length > destination.Length)
        {
            return OperationStatus.DestinationTooSmall;
        }

        if (!Snappy.TryDecompress(block, destination[..length], out written) || written != length)
        {
            throw new InvalidDataException("a snappy block does not decompress to its stated length");
        }

        return OperationStatus.Done;
    }

    private static int XerialCompress(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        XerialMagic.CopyTo(destination);
        BinaryPrimitives.WriteInt32BigEndian(destination[8..], 1); // version
        BinaryPrimitives.WriteInt32BigEndian(destination[12..], 1); // compatible version
        int position = XerialHeaderSize;
        while (!source.IsEmpty)
        {
            var block = source[..Math.Min(source.Length, SnappyBlockSize)];
            source = source[block.Length..];
            int length = Snappy.Compress(block, destination[(position + 4)..]);
            BinaryPrimitives.WriteInt32BigEndian(destination[position..], length);
            position += 4 + length;
        }

        return position;
    }

    /// <summary>Reads <paramref name="stream"/> to its end into <paramref name="destination"/>.</summary>
    private static OperationStatus ReadAll(Stream stream, Span<byte> destination, out int written)
    {
        written = 0;
        while (written < destination.Length)
        {
            int n = stream.Read(destination[written..]);
            if (n == 0)
            {
                return OperationStatus.Done;
            }

            written += n;
        }

        Span<byte> probe = stackalloc byte[1];
        return stream.Read(probe) == 0 ? OperationStatus.Done : OperationStatus.DestinationTooSmall;
    }
}
