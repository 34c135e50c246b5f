using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using AppendLog.Raft.Core;

namespace AppendLog.Raft.Transport;

/// <summary>
/// A frame on a Raft TCP connection: <c>u32 payloadLength | u32 CRC-32C(payload) | payload</c> (little-endian), the
/// payload one <see cref="RaftMessageCodec"/> message. TCP's own checksum is 16 bits and misses errors that
/// offloading NICs and middleboxes introduce; a frame that fails its CRC closes the connection (the stream cannot
/// be resynchronized) and Raft retransmits.
/// </summary>
internal static class RaftFrame
{
    public const int HeaderBytes = 8;

    /// <summary>The largest payload accepted: above the largest AppendEntries (RaftOptions.MaximumBatchBytes, 1 MiB by
    /// default, plus per-entry overhead) with room for a snapshot message. A length above it means a broken peer.</summary>
    public const int PayloadBytesMax = 64 * 1024 * 1024;

    /// <summary>Writes <paramref name="message"/> as one frame, unless its payload would exceed <see cref="PayloadBytesMax"/>.</summary>
    /// <returns>False (and nothing written) when the message does not fit a frame.</returns>
    public static bool TryWrite(RaftMessage message, IBufferWriter<byte> destination)
    {
        var size = RaftMessageCodec.EncodedSizeBytes(message);
        if (size > PayloadBytesMax)
        {
            return false;
        }

        WriteFrame(message, (int)size, destination);
        return true;
    }

    public static void Write(RaftMessage message, IBufferWriter<byte> destination)
    {
        var size = RaftMessageCodec.EncodedSize(message);
        Invariant.Assert(size <= PayloadBytesMax, "an outgoing message fits one frame");
        WriteFrame(message, size, destination);
    }

    private static void WriteFrame(RaftMessage message, int size, IBufferWriter<byte> destination)
    {
        var span = destination.GetSpan(HeaderBytes + size)[..(HeaderBytes + size)];
        var payload = span[HeaderBytes..];
        RaftMessageCodec.Encode(message, payload);
        BinaryPrimitives.WriteInt32LittleEndian(span, size);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, payload));
        destination.Advance(HeaderBytes + size);
    }

    /// <summary>Reads one frame's payload length from its header, checking the bound.</summary>
    /// <exception cref="InvalidDataException">The length is negative or above <see cref="PayloadBytesMax"/>.</exception>
    public static int PayloadLength(ReadOnlySpan<byte> header)
    {
        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (length is < 0 or > PayloadBytesMax)
        {
            throw new InvalidDataException($"A frame of {length} bytes is outside [0, {PayloadBytesMax}].");
        }

        return length;
    }

    /// <summary>Checks a payload against the CRC-32C in its header.</summary>
    /// <exception cref="InvalidDataException">The CRC does not match.</exception>
    public static void CheckPayload(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(header[4..]) != Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, payload))
        {
            throw new InvalidDataException("A Raft frame failed its CRC-32C.");
        }
    }
}
