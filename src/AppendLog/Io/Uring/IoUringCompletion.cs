using System.Runtime.InteropServices;
using AppendLog.Io.Interop;

namespace AppendLog.Io.Uring;

/// <summary>
/// One reaped completion (struct io_uring_cqe): the submitter's tag and the operation's result, which is what the
/// system call would have returned (bytes written, 0) or the negated errno.
/// </summary>
/// <param name="UserData">The tag given when the operation was prepared.</param>
/// <param name="Result">Bytes transferred or 0 on success; -errno on failure.</param>
internal readonly record struct IoUringCompletion(ulong UserData, int Result)
{
    /// <summary>True when the operation failed (<see cref="Result"/> is a negated errno).</summary>
    public bool Failed => Result < 0;

    /// <summary>The errno of a failed operation, <see cref="Errno.None"/> otherwise.</summary>
    public Errno Errno => Result < 0 ? (Errno)(-Result) : Errno.None;

    /// <summary>
    /// The exception for a failed operation, shaped as every other system-call failure of the I/O layer, so the log
    /// maps it the same way (EIO after a write or sync faults the log; ENOSPC is typed).
    /// </summary>
    /// <param name="operation">What was asked, for example <c>io_uring write</c>.</param>
    /// <param name="path">The file it was applied to.</param>
    /// <returns>A <see cref="StorageIOException"/> carrying <see cref="Errno"/>.</returns>
    /// <exception cref="InvalidOperationException">The operation did not fail.</exception>
    public StorageIOException ToException(string operation, string path)
    {
        if (!Failed)
        {
            throw new InvalidOperationException($"{operation} on '{path}' succeeded with {Result}; there is no error");
        }
        return new StorageIOException(Errno, operation, path, Marshal.GetPInvokeErrorMessage(-Result));
    }

    /// <summary>Throws <see cref="ToException"/>'s exception when the operation failed.</summary>
    /// <param name="operation">What was asked.</param>
    /// <param name="path">The file it was applied to.</param>
    /// <exception cref="StorageIOException">The operation failed.</exception>
    public void ThrowIfFailed(string operation, string path)
    {
        if (Failed)
        {
            throw ToException(operation, path);
        }
    }
}
