namespace AppendLog.Io;

/// <summary>
/// One open data file. Narrow on purpose: positional writes and reads, space reservation, data sync,
/// truncation. When <see cref="IsDirect"/> is true, every buffer, position and length passed to
/// <see cref="Write"/> and <see cref="Read"/> must be a multiple of <see cref="Alignment"/> and the
/// buffer's address aligned to it (O_DIRECT's rule); callers guarantee it, implementations assert it.
/// Methods are synchronous and thread-safe: the appender decides which thread performs each system call
/// (writes and fdatasync on the I/O workers, docs/internals.md section 4), so the seam does not hide a thread-pool hop.
/// </summary>
internal interface IDirectFile : IDisposable
{
    /// <summary>The file's path, used in exception messages.</summary>
    string Path { get; }

    /// <summary>True when the file bypasses the page cache (O_DIRECT).</summary>
    bool IsDirect { get; }

    /// <summary>The required alignment of buffers, positions and lengths in bytes (4096).</summary>
    int Alignment { get; }

    /// <summary>The current file size in bytes (fstat).</summary>
    long Length { get; }

    /// <summary>Writes all of <paramref name="buffer"/> at <paramref name="position"/> (retrying short writes).</summary>
    /// <exception cref="IOException">EIO, ENOSPC or another errno; <c>HResult</c> carries the errno.</exception>
    void Write(ReadOnlySpan<byte> buffer, long position);

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="position"/>.</summary>
    /// <returns>Bytes read; less than requested only at end of file.</returns>
    int Read(Span<byte> buffer, long position);

    /// <summary>
    /// Reads consecutive bytes from <paramref name="position"/> into <paramref name="buffers"/>, filling each in turn, as
    /// one request where the implementation can (preadv(2)): a sequential reader asks for several pool chunks at once,
    /// since the disk serves one large request far faster than the same bytes as small ones (docs/internals.md, section 8).
    /// Every buffer but the last must be a whole number of blocks under O_DIRECT.
    /// </summary>
    /// <returns>Bytes read; less than the buffers hold only at end of file.</returns>
    int ReadScatter(IReadOnlyList<Memory<byte>> buffers, long position)
    {
        int total = 0;
        foreach (var buffer in buffers)
        {
            int read = Read(buffer.Span, position + total);
            total += read;
            if (read < buffer.Length)
            {
                break;
            }
        }

        return total;
    }

    /// <summary>
    /// Reserves <c>[position, position + length)</c> on disk (fallocate(2) mode 0: the file size grows to cover it).
    /// </summary>
    /// <exception cref="IOException">ENOSPC (disk full) or another errno.</exception>
    void Allocate(long position, long length);

    /// <summary>fdatasync(2): every completed write to this file is on stable storage when it returns.</summary>
    /// <exception cref="IOException">EIO or another errno: the page state is then unknown and the caller must fault.</exception>
    void SyncData();

    /// <summary>Sets the file size (ftruncate(2)) and syncs the change.</summary>
    void Truncate(long length);
}
