using Microsoft.Win32.SafeHandles;

namespace AppendLog.Appender;

/// <summary>What one ring operation of a <see cref="IRingWork"/> is.</summary>
internal enum RingOperationKind
{
    /// <summary>Not a ring operation: the executor runs <see cref="IIoWork.Execute"/> on a thread instead.</summary>
    None,

    /// <summary>A write of <see cref="RingOperation.Length"/> bytes at <see cref="RingOperation.Buffer"/> to <see cref="RingOperation.Position"/>.</summary>
    Write,

    /// <summary>fdatasync(2) of the file.</summary>
    DataSync,
}

/// <summary>
/// One operation an I/O loop can hand to the kernel without a thread of its own. The work keeps
/// <see cref="RingOperation.Buffer"/> alive and unchanged until <see cref="IRingWork.CompleteRing"/>, and the
/// executor keeps <see cref="RingOperation.Handle"/> open meanwhile (a reference on the handle).
/// </summary>
internal readonly record struct RingOperation(RingOperationKind Kind, SafeFileHandle? Handle, nint Buffer, int Length, long Position)
{
    public static RingOperation None => default;
}

/// <summary>
/// A unit of I/O that can also run as one io_uring operation: a write of a chunk's range or a data sync of one
/// segment. Any other case (a buffered file, a simulated one, a sync of two segments, a directory entry not yet
/// durable) answers <see cref="RingOperationKind.None"/>, and the executor runs <see cref="IIoWork.Execute"/> on a thread
/// as for every other work.
/// </summary>
internal interface IRingWork : IIoWork
{
    /// <summary>
    /// Describes the operation and marks it started (the same bookkeeping <see cref="IIoWork.Execute"/> does before its
    /// system call). Called once per run on the loop thread; <see cref="RingOperationKind.None"/> starts nothing.
    /// </summary>
    RingOperation BeginRing();

    /// <summary>
    /// The operation's result as the system call would return it (bytes written, 0, or −errno), on the loop thread:
    /// reports back to the owner as <see cref="IIoWork.Execute"/> does. Returns false, having reported nothing, when
    /// the operation must run again through <see cref="IIoWork.Execute"/> on a thread (a short write: writing the
    /// same range again is idempotent).
    /// </summary>
    bool CompleteRing(int result);
}
