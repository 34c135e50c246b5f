using AppendLog.Io;
using AppendLog.Io.Interop;

namespace AppendLog.Testing;

/// <summary>
/// An open handle on a <see cref="SimulatedInode"/>. Every call goes through its <see cref="SimulatedStorage"/>,
/// which takes the lock, applies injected faults and refuses service after a crash.
/// </summary>
internal sealed class SimulatedFile : IDirectFile
{
    private readonly SimulatedStorage _storage;
    private readonly SimulatedInode _inode;
    private bool _disposed;

    /// <summary>Opens a handle; only <see cref="SimulatedStorage"/> creates these.</summary>
    public SimulatedFile(SimulatedStorage storage, SimulatedInode inode, string path, bool isDirect)
    {
        _storage = storage;
        _inode = inode;
        Path = path;
        IsDirect = isDirect;
    }

    /// <inheritdoc/>
    public string Path { get; }

    /// <inheritdoc/>
    public bool IsDirect { get; }

    /// <inheritdoc/>
    public int Alignment => IoConstants.BlockSize;

    /// <summary>The inode this handle reads and writes.</summary>
    public SimulatedInode Inode => _inode;

    /// <inheritdoc/>
    public long Length => _storage.FileLength(this);

    /// <inheritdoc/>
    public void Write(ReadOnlySpan<byte> buffer, long position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        CheckDirect(buffer.Length, position, Address(buffer));
        _storage.FileWrite(this, buffer, position);
    }

    /// <inheritdoc/>
    public int Read(Span<byte> buffer, long position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        CheckDirect(buffer.Length, position, Address(buffer));
        return _storage.FileRead(this, buffer, position);
    }

    /// <inheritdoc/>
    public void Allocate(long position, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        _storage.FileAllocate(this, position + length);
    }

    /// <inheritdoc/>
    public void SyncData() => _storage.FileSync(this);

    /// <inheritdoc/>
    public void Truncate(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _storage.FileTruncate(this, length);
    }

    /// <summary>Closes the handle. Idempotent.</summary>
    public void Dispose() => _disposed = true;

    /// <summary>Throws EBADF when the handle is closed; called by the storage under its lock.</summary>
    public void ThrowIfClosed()
    {
        if (_disposed)
        {
            throw new StorageIOException(Errno.EBADF, "simulated I/O", Path, "the file is closed");
        }
    }

    private static unsafe nuint Address(ReadOnlySpan<byte> buffer)
    {
        fixed (byte* pointer = buffer)
        {
            return (nuint)pointer;
        }
    }

    private void CheckDirect(int length, long position, nuint address)
    {
        // The kernel's answer to a misaligned O_DIRECT transfer (the sanitizer usually catches it first).
        if (IsDirect && (position % Alignment != 0 || length % Alignment != 0 || address % (nuint)Alignment != 0))
        {
            throw new StorageIOException(Errno.EINVAL, "simulated O_DIRECT I/O", Path, "misaligned transfer");
        }
    }
}
