using AppendLog.Raft.Core;
using Microsoft.Win32.SafeHandles;

namespace AppendLog.Raft.Storage;

/// <summary>
/// The bytes of a snapshot (<see cref="RaftSnapshot.Data"/>): in memory (the simulator, small test snapshots, the
/// bootstrap snapshot) or in a file on disk (a <see cref="ReplicatedLog"/>'s snapshots, whose size is bounded by the disk,
/// not by memory). Immutable once created. A leader reads it chunk by chunk to send it (<see cref="Read"/>); a state
/// machine restores from it as a stream (<see cref="OpenRead"/>).
/// </summary>
internal abstract class SnapshotImage
{
    public static readonly SnapshotImage Empty = new MemorySnapshotImage(ReadOnlyMemory<byte>.Empty);

    /// <summary>The image's size in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>Copies bytes from <paramref name="offset"/> into <paramref name="destination"/>; returns how many (fewer only at the end).</summary>
    public abstract int Read(long offset, Span<byte> destination);

    /// <summary>
    /// A read-only stream over the image's bytes from <paramref name="start"/> on, which it shows as a whole stream
    /// (position 0, length <c>Length - start</c>); the caller disposes it. Reads go to the image one call at a time, so
    /// any size streams in bounded memory.
    /// </summary>
    public Stream OpenRead(long start = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start, Length);
        return new ImageStream(this, start);
    }

    /// <summary>The whole image in one array (tests and small images only: it allocates the whole length).</summary>
    public byte[] ToArray()
    {
        var bytes = new byte[checked((int)Length)];
        var done = 0;
        while (done < bytes.Length)
        {
            var read = Read(done, bytes.AsSpan(done));
            Invariant.Assert(read > 0, "an image yields every byte of its length");
            done += read;
        }

        return bytes;
    }

    public static implicit operator SnapshotImage(ReadOnlyMemory<byte> bytes) => new MemorySnapshotImage(bytes);

    public static implicit operator SnapshotImage(byte[] bytes) => new MemorySnapshotImage(bytes);
}

/// <summary>An image held in memory.</summary>
internal sealed class MemorySnapshotImage(ReadOnlyMemory<byte> bytes) : SnapshotImage
{
    public ReadOnlyMemory<byte> Bytes { get; } = bytes;

    public override long Length => Bytes.Length;

    public override int Read(long offset, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, Length);
        var available = Bytes.Span[(int)offset..];
        var count = Math.Min(available.Length, destination.Length);
        available[..count].CopyTo(destination);
        return count;
    }

}

/// <summary>
/// An image in a file. The file is opened once, when the image is created, and the handle is kept for the image's
/// life: storage may delete an older snapshot's file (a newer one replaced it) while a restore or a send still reads it,
/// and on Linux an unlinked file stays readable through an open handle. The handle closes with the image (finalizer of
/// <see cref="SafeFileHandle"/>) or with <see cref="Close"/>.
/// </summary>
internal sealed class FileSnapshotImage : SnapshotImage
{
    private readonly SafeFileHandle _handle;

    public FileSnapshotImage(string path)
    {
        Path = path;
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        Length = RandomAccess.GetLength(_handle);
    }

    public string Path { get; }

    public override long Length { get; }

    public override int Read(long offset, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, Length);
        var wanted = (int)Math.Min(destination.Length, Length - offset);
        var done = 0;
        while (done < wanted)
        {
            var read = RandomAccess.Read(_handle, destination[done..wanted], offset + done);
            if (read == 0)
            {
                throw new IOException($"The snapshot file '{Path}' ended at {offset + done} bytes; {Length} were expected.");
            }

            done += read;
        }

        return done;
    }

    /// <summary>Closes the file now (reads after this fail).</summary>
    public void Close() => _handle.Dispose();
}

/// <summary>A read-only stream with its own position over a shared image, from <c>start</c> on.</summary>
internal sealed class ImageStream(SnapshotImage image, long start) : Stream
{
    private long _position;

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => image.Length - start;

    public override long Position
    {
        get => _position;
        set => _position = Math.Clamp(value, 0, Length);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_position >= Length || buffer.IsEmpty)
        {
            return 0;
        }

        var read = image.Read(start + _position, buffer);
        _position += read;
        return read;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Read(buffer.Span));
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => Length + offset,
        };
        return _position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
