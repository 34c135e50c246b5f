using AppendLog.Io.Interop;

namespace AppendLog.Io;

/// <summary>errno values the log reacts to by name (Linux asm-generic numbering, x86_64 and arm64).</summary>
internal static class StorageErrors
{
    /// <summary>I/O error: after a failed write or fdatasync the page state is unknown; the log faults.</summary>
    public const int EIO = (int)Errno.EIO;

    /// <summary>No space left on device: typed and recoverable when seen while reserving space.</summary>
    public const int ENOSPC = (int)Errno.ENOSPC;

    /// <summary>Disk quota exceeded: the same condition as <see cref="ENOSPC"/> for the user, and as recoverable.</summary>
    public const int EDQUOT = (int)Errno.EDQUOT;

    /// <summary>
    /// True when <paramref name="exception"/> reports the disk full: ENOSPC, or EDQUOT (a quota is a disk that is full
    /// for this user; it clears when space is freed or the quota raised). The one definition of "disk full": the
    /// storage layer's <see cref="StorageIOException.IsDiskFull"/> and the appender's space reservation both use it.
    /// HResult carries the errno, for <see cref="StorageIOException"/> and for .NET's own Unix I/O exceptions.
    /// </summary>
    public static bool IsDiskFull(IOException exception) => IsDiskFullErrno(exception.HResult);

    /// <summary>True for ENOSPC and EDQUOT.</summary>
    public static bool IsDiskFullErrno(int errno) => errno is ENOSPC or EDQUOT;
}
