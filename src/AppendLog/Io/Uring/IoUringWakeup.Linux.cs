using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using AppendLog.Io.Interop;

namespace AppendLog.Io.Uring;

/// <summary>
/// Lets any thread wake a ring's owner that sleeps in <see cref="IoUring.SubmitAndWait"/>: an eventfd whose read
/// stays armed in the ring, so new work (appended bytes, a request) interrupts the wait on completions. Only the
/// owner touches the ring; <see cref="Signal"/> is the one member other threads call. An I/O loop serving many logs
/// needs exactly one of these: every log's producers signal it, and one wake-up serves them all.
/// </summary>
/// <remarks>
/// The read completes when the counter is non-zero (eventfd(2)); it returns the counter and resets it, so signals
/// sent while a read is pending merge into one completion. The kernel parks the read on the eventfd's wait queue
/// (a poll, no worker thread). At shutdown <see cref="Release"/> signals once more so the armed read completes and
/// the ring can drain.
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed unsafe class IoUringWakeup : IDisposable
{
    private readonly ulong _userData;
    private readonly ulong* _readBuffer;
    private int _fd;
    private bool _armed;

    /// <summary>Creates the eventfd.</summary>
    /// <param name="userData">The tag of the wake-up read's completions; must differ from every other tag on the ring.</param>
    /// <exception cref="StorageIOException">eventfd(2) failed (EMFILE, ENOMEM).</exception>
    public IoUringWakeup(ulong userData)
    {
        _userData = userData;
        _fd = IoUringNative.EventFd(IoUringNative.EventFdCloseOnExec);
        if (_fd < 0)
        {
            throw LibC.ToException(LibC.LastErrno, "eventfd", "io_uring wake-up");
        }
        _readBuffer = (ulong*)NativeMemory.Alloc(sizeof(ulong));
    }

    /// <summary>The tag of the wake-up read's completions.</summary>
    public ulong UserData => _userData;

    /// <summary>True while a read is armed in the ring (one operation of <see cref="IoUring.InFlight"/> is ours).</summary>
    public bool IsArmed => _armed;

    /// <summary>Arms the read in <paramref name="ring"/> if it is not armed; the owner calls this before it waits.</summary>
    /// <param name="ring">The ring, on its owner thread.</param>
    /// <returns>False when the ring is full (nothing armed; try again after reaping).</returns>
    public bool TryArm(IoUring ring)
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        if (_armed)
        {
            return true;
        }
        _armed = ring.TryPrepareRead(_fd, (byte*)_readBuffer, sizeof(ulong), 0, _userData);
        return _armed;
    }

    /// <summary>
    /// Handles <paramref name="completion"/> if it is the wake-up read's (the read is then disarmed).
    /// </summary>
    /// <param name="completion">A completion reaped from the ring.</param>
    /// <returns>True when it was the wake-up's: the caller looks for new work and re-arms.</returns>
    /// <exception cref="StorageIOException">The read failed.</exception>
    public bool TryConsume(IoUringCompletion completion)
    {
        if (completion.UserData != _userData)
        {
            return false;
        }
        _armed = false;
        completion.ThrowIfFailed("io_uring read(eventfd)", "io_uring wake-up");
        return true;
    }

    /// <summary>Wakes the owner (any thread): adds one to the counter, which completes the armed read.</summary>
    /// <exception cref="StorageIOException">write(2) failed.</exception>
    public void Signal()
    {
        int fd = Volatile.Read(ref _fd);
        ObjectDisposedException.ThrowIf(fd < 0, this);
        if (IoUringNative.WriteCounter(fd, 1) < 0)
        {
            throw LibC.ToException(LibC.LastErrno, "write(eventfd)", "io_uring wake-up");
        }
    }

    /// <summary>
    /// Closes the eventfd and frees the read's buffer. Order at shutdown: <see cref="Release"/> (the armed read
    /// completes), the ring's <see cref="IoUring.Dispose"/> (which waits for it), then this.
    /// </summary>
    public void Dispose()
    {
        if (_fd < 0)
        {
            return;
        }
        _ = IoUringNative.Close(_fd);
        _fd = -1;
        NativeMemory.Free(_readBuffer);
    }

    /// <summary>Signals so the armed read completes; the ring's owner then reaps it (or disposes the ring, which waits for it).</summary>
    public void Release()
    {
        if (_armed && _fd >= 0)
        {
            Signal();
        }
    }
}
