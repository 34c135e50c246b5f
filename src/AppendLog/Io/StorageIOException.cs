using AppendLog.Io.Interop;

namespace AppendLog.Io;

/// <summary>
/// A system call of the I/O layer failed. Carries the errno by name (<see cref="Errno"/>), the operation and
/// the path; <see cref="Exception.HResult"/> holds the raw errno too, as .NET's own Unix I/O exceptions do.
/// Both <c>LinuxStorage</c> and the test simulator throw this type, so the layers above map one shape:
/// <see cref="IsDiskFull"/> at <see cref="IDirectFile.Allocate"/> becomes <c>LogDiskFullException</c>;
/// anything from <see cref="IDirectFile.Write"/> or <see cref="IDirectFile.SyncData"/> faults the log.
/// </summary>
internal sealed class StorageIOException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="errno">The errno the system call reported.</param>
    /// <param name="operation">The system call or operation, for example <c>fallocate</c>.</param>
    /// <param name="path">The file or directory it was applied to.</param>
    /// <param name="detail">The system's description of the errno (strerror), or null.</param>
    /// <param name="innerException">The exception .NET raised for the same failure, if any.</param>
    public StorageIOException(Errno errno, string operation, string path, string? detail = null,
        Exception? innerException = null)
        : base($"{operation} failed for '{path}': {errno} ({(int)errno}){(detail is null ? "" : ": " + detail)}",
            innerException)
    {
        Errno = errno;
        Operation = operation;
        Path = path;
        HResult = (int)errno;
    }

    /// <summary>The errno the system call reported.</summary>
    public Errno Errno { get; }

    /// <summary>The failed operation, for example <c>fallocate</c> or <c>pwrite</c>.</summary>
    public string Operation { get; }

    /// <summary>The file or directory the operation was applied to.</summary>
    public string Path { get; }

    /// <summary>True for ENOSPC and EDQUOT: out of space, a condition that clears when space is freed.</summary>
    public bool IsDiskFull => StorageErrors.IsDiskFullErrno((int)Errno);
}
