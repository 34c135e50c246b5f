using System.Buffers.Binary;

namespace AppendLog.Raft.Storage;

/// <summary>
/// The data of a snapshot taken over a <see cref="SegmentedRaftLog"/>: the offset at which the entries after the
/// snapshot begin (i64, little-endian), then the state machine's image. The offset travels with the snapshot so that
/// a follower installing it restarts its log exactly there (<see cref="SegmentedLog.ResetAsync"/>), and offsets stay the
/// same on every member. The bootstrap snapshot has no data: its entries begin where the log does.
/// </summary>
internal static class SnapshotPayload
{
    public const int HeaderBytes = 8;

    public static byte[] Create(long endOffset, ReadOnlySpan<byte> image)
    {
        var data = new byte[HeaderBytes + image.Length];
        BinaryPrimitives.WriteInt64LittleEndian(data, endOffset);
        image.CopyTo(data.AsSpan(HeaderBytes));
        return data;
    }

    /// <summary>The offset after the snapshot, or null for a snapshot without data (the bootstrap one).</summary>
    /// <exception cref="InvalidDataException">The data is too short to hold the offset.</exception>
    public static long? EndOffset(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return null;
        }

        if (data.Length < HeaderBytes)
        {
            throw new InvalidDataException($"A snapshot's data is at least {HeaderBytes} bytes; got {data.Length}.");
        }

        return BinaryPrimitives.ReadInt64LittleEndian(data);
    }

    /// <summary>The offset after the snapshot read from the first bytes of <paramref name="image"/> (see <see cref="EndOffset(ReadOnlySpan{byte})"/>).</summary>
    /// <exception cref="InvalidDataException">The image is too short to hold the offset.</exception>
    public static long? EndOffset(SnapshotImage image)
    {
        Span<byte> header = stackalloc byte[HeaderBytes];
        var read = image.Length == 0 ? 0 : image.Read(0, header);
        return EndOffset(header[..read]);
    }

    public static ReadOnlyMemory<byte> Image(ReadOnlyMemory<byte> data) => data.Length <= HeaderBytes ? ReadOnlyMemory<byte>.Empty : data[HeaderBytes..];
}
