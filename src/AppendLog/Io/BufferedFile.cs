using Microsoft.Win32.SafeHandles;

namespace AppendLog.Io;

/// <summary>
/// The portable fallback for systems other than Linux on x86_64/arm64: a <see cref="FileStream"/> over a
/// handle from <see cref="File.OpenHandle"/>, positional I/O through <see cref="RandomAccess"/>, and
/// <see cref="FileStream.Flush(bool)"/> with <c>true</c> (fsync / FlushFileBuffers) as the data sync.
/// Never direct. On Linux the buffered fallback is <see cref="DirectFile"/> opened without O_DIRECT instead.
/// </summary>
internal sealed class BufferedFile : IDirectFile
{
    private readonly SafeFileHandle _handle;
    private readonly FileStream _stream;

    /// <summary>Opens <paramref name="path"/> read-write.</summary>
    /// <param name="path">The file.</param>
    /// <param name="creation">Create or open.</param>
    /// <exception cref="FileNotFoundException">Open of a missing file.</exception>
    /// <exception cref="IOException">Create of an existing file, or another failure.</exception>
    public BufferedFile(string path, FileCreation creation)
    {
        FileMode mode = creation switch
        {
            FileCreation.OpenExisting => FileMode.Open,
            FileCreation.CreateNew => FileMode.CreateNew,
            FileCreation.OpenOrCreate => FileMode.OpenOrCreate,
            _ => throw new ArgumentOutOfRangeException(nameof(creation)),
        };
        _handle = File.OpenHandle(path, mode, FileAccess.ReadWrite, FileShare.ReadWrite);
        _stream = new FileStream(_handle, FileAccess.ReadWrite, bufferSize: 0);
        Path = path;
    }

    /// <inheritdoc/>
    public string Path { get; }

    /// <inheritdoc/>
    public bool IsDirect => false;

    /// <inheritdoc/>
    public int Alignment => IoConstants.BlockSize;

    /// <inheritdoc/>
    public long Length => RandomAccess.GetLength(_handle);

    /// <inheritdoc/>
    public void Write(ReadOnlySpan<byte> buffer, long position) => RandomAccess.Write(_handle, buffer, position);

    /// <inheritdoc/>
    public int Read(Span<byte> buffer, long position)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int read = RandomAccess.Read(_handle, buffer[total..], position + total);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }

    /// <inheritdoc/>
    public void Allocate(long position, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        long end = position + length;
        if (end > Length)
        {
            RandomAccess.SetLength(_handle, end);
        }
    }

    /// <inheritdoc/>
    public void SyncData() => _stream.Flush(flushToDisk: true);

    /// <inheritdoc/>
    public void Truncate(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        RandomAccess.SetLength(_handle, length);
        _stream.Flush(flushToDisk: true);
    }

    /// <summary>Closes the file. Idempotent.</summary>
    public void Dispose()
    {
        _stream.Dispose();
        _handle.Dispose();
    }
}
