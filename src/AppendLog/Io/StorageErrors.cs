namespace AppendLog.Io;

/// <summary>errno values the log reacts to by name (Linux asm-generic numbering, x86_64 and arm64).</summary>
internal static class StorageErrors
{
    /// <summary>I/O error: after a failed write or fdatasync the page state is unknown; the log faults.</summary>
    public const int EIO = 5;

    /// <summary>No space left on device: typed and recoverable when seen while reserving space.</summary>
    public const int ENOSPC = 28;

    /// <summary>True when <paramref name="exception"/> reports ENOSPC (HResult carries the errno).</summary>
    public static bool IsDiskFull(IOException exception) => exception.HResult == ENOSPC;
}
