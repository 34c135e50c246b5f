using System.Runtime.Versioning;
using AppendLog.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace AppendLog.Io;

/// <summary>
/// A data file on Linux: a descriptor from open(2), wrapped in a <see cref="SafeFileHandle"/> that owns it,
/// with positional I/O through <see cref="RandomAccess"/> (pwrite/pread, short transfers retried by .NET),
/// fallocate(2), fdatasync(2) and ftruncate(2) through <see cref="LibC"/>.
/// </summary>
/// <remarks>
/// The same class serves both modes: with O_DIRECT (<see cref="IsDirect"/> true) and, as the buffered
/// fallback, the same open without O_DIRECT (<see cref="IsDirect"/> false). Every call after open is
/// identical in the two modes — the buffered fallback still pays fdatasync for every sync — so one class keeps
/// them from drifting apart. <see cref="BufferedFile"/> is the portable fallback for other systems.
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed class DirectFile : IDirectFile
{
    private readonly SafeFileHandle _handle;

    /// <summary>Takes ownership of <paramref name="fd"/>.</summary>
    /// <param name="fd">A descriptor from open(2).</param>
    /// <param name="path">The path it was opened with.</param>
    /// <param name="isDirect">Whether O_DIRECT was among the open flags.</param>
    public DirectFile(int fd, string path, bool isDirect)
    {
        _handle = new SafeFileHandle(fd, ownsHandle: true);
        Path = path;
        IsDirect = isDirect;
    }

    /// <inheritdoc/>
    public string Path { get; }

    /// <inheritdoc/>
    public bool IsDirect { get; }

    /// <inheritdoc/>
    public int Alignment => IoConstants.BlockSize;

    /// <summary>
    /// True once fallocate(2) reported EOPNOTSUPP for this file; <see cref="Allocate"/> then only extends the
    /// size with ftruncate(2), which reserves no blocks, so ENOSPC can surface later at write or sync time.
    /// </summary>
    public bool FallocateUnsupported { get; private set; }

    /// <summary>The descriptor, for an I/O loop that submits this file's writes and syncs to the kernel itself.</summary>
    internal SafeFileHandle Handle => _handle;

    /// <inheritdoc/>
    public long Length => RandomAccess.GetLength(_handle);

    /// <inheritdoc/>
    public void Write(ReadOnlySpan<byte> buffer, long position)
    {
        try
        {
            RandomAccess.Write(_handle, buffer, position);
        }
        catch (IOException ex) when (ex is not StorageIOException)
        {
            throw Wrap(ex, "pwrite");
        }
    }

    /// <inheritdoc/>
    public int ReadScatter(IReadOnlyList<Memory<byte>> buffers, long position)
    {
        long requested = 0;
        foreach (var b in buffers)
        {
            requested += b.Length;
        }

        long total;
        try
        {
            total = RandomAccess.Read(_handle, buffers, position); // preadv(2): one request for all the buffers
        }
        catch (IOException ex) when (ex is not StorageIOException)
        {
            throw Wrap(ex, "preadv");
        }

        if (total == requested || total == 0 || (IsDirect && total % IoConstants.BlockSize != 0))
        {
            return (int)total; // all of it, or the end of file (see Read on short O_DIRECT counts)
        }

        // A short count at a block boundary (end of file, or the kernel split the request): continue buffer by buffer.
        long skipped = 0;
        foreach (var b in buffers)
        {
            if (skipped + b.Length <= total)
            {
                skipped += b.Length;
                continue;
            }

            int from = (int)(total - skipped);
            int read = Read(b.Span[from..], position + total);
            total += read;
            skipped += b.Length;
            if (read < b.Length - from)
            {
                break;
            }
        }

        return (int)total;
    }

    /// <inheritdoc/>
    public int Read(Span<byte> buffer, long position)
    {
        // pread on a regular file returns a short count only at end of file; the loop covers anything else the
        // contract ("less than requested only at end of file") might meet. It stops at a short count that is not
        // block-aligned: under O_DIRECT that is the end of file (for example 5000 of 8192 bytes), and asking again
        // at position 5000 would be a misaligned transfer whose answer (0 or EINVAL) varies by file system.
        int total = 0;
        try
        {
            while (total < buffer.Length)
            {
                int read = RandomAccess.Read(_handle, buffer[total..], position + total);
                total += read;
                if (read == 0 || (IsDirect && total % IoConstants.BlockSize != 0))
                {
                    break;
                }
            }
        }
        catch (IOException ex) when (ex is not StorageIOException)
        {
            throw Wrap(ex, "pread");
        }

        return total;
    }

    /// <inheritdoc/>
    public void Allocate(long position, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (!FallocateUnsupported)
        {
            // Mode 0: allocate blocks and grow the size to position + length if it is larger.
            if (LibC.Fallocate(_handle, 0, position, length) == 0)
            {
                return;
            }

            Errno errno = LibC.LastErrno;
            if (errno != Errno.EOPNOTSUPP)
            {
                throw LibC.ToException(errno, "fallocate", Path);
            }

            FallocateUnsupported = true;
        }

        // Fallback (file systems without fallocate): grow the size only; blocks are not reserved.
        long end = position + length;
        if (end > Length && LibC.Ftruncate(_handle, end) != 0)
        {
            LibC.ThrowLastError("ftruncate", Path);
        }
    }

    /// <inheritdoc/>
    public void SyncData()
    {
        if (LibC.Fdatasync(_handle) != 0)
        {
            LibC.ThrowLastError("fdatasync", Path);
        }
    }

    /// <inheritdoc/>
    public void Truncate(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (LibC.Ftruncate(_handle, length) != 0)
        {
            LibC.ThrowLastError("ftruncate", Path);
        }

        // fsync, not fdatasync: the size change is the point, and the caller expects it durable on return.
        if (LibC.Fsync(_handle) != 0)
        {
            LibC.ThrowLastError("fsync", Path);
        }
    }

    /// <summary>Closes the descriptor. Idempotent.</summary>
    public void Dispose() => _handle.Dispose();

    /// <summary>
    /// .NET reports Unix I/O failures as <see cref="IOException"/> with the raw errno in HResult; rewrap them so
    /// every failure from this layer has the same type and names its errno.
    /// </summary>
    private StorageIOException Wrap(IOException ex, string operation)
    {
        var errno = (Errno)ex.HResult;
        return new StorageIOException(errno, operation, Path, ex.Message, ex);
    }
}
