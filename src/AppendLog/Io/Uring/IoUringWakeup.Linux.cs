using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using AppendLog.Io.Interop;
using Microsoft.Win32.SafeHandles;

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
/// (a poll, no worker thread). Shutdown, on the owner thread: <see cref="Release"/> (the armed read completes), the
/// ring's <see cref="IoUring.Dispose"/> (which waits for it), then <see cref="Dispose"/>. The eventfd is held by a
/// <see cref="SafeFileHandle"/>, so a <see cref="Signal"/> racing with <see cref="Dispose"/> either writes to this
/// eventfd or throws <see cref="ObjectDisposedException"/>, never to a descriptor number reused meanwhile.
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed unsafe class IoUringWakeup : IDisposable
{
    private readonly ulong _userData;
    private readonly SafeFileHandle _eventFd;
    private ulong* _readBuffer;
    private IoUring? _armedIn; // the ring holding the armed read, or null

    /// <summary>Creates the eventfd.</summary>
    /// <param name="userData">The tag of the wake-up read's completions; must differ from every other tag on the ring.</param>
    /// <exception cref="StorageIOException">eventfd(2) failed (EMFILE, ENOMEM).</exception>
    public IoUringWakeup(ulong userData)
    {
        _userData = userData;
        int fd = IoUringNative.EventFd(IoUringNative.EventFdCloseOnExec);
        if (fd < 0)
        {
            throw LibC.ToException(LibC.LastErrno, "eventfd", "io_uring wake-up");
        }
        _eventFd = new SafeFileHandle(fd, ownsHandle: true);
        _readBuffer = (ulong*)NativeMemory.Alloc(sizeof(ulong));
    }

    /// <summary>The tag of the wake-up read's completions.</summary>
    public ulong UserData => _userData;

    /// <summary>True while a read is armed in a ring (one operation of its <see cref="IoUring.InFlight"/> is ours).</summary>
    public bool IsArmed => _armedIn is not null;

    /// <summary>Arms the read in <paramref name="ring"/> if it is not armed; the owner calls this before it waits.</summary>
    /// <param name="ring">The ring, on its owner thread.</param>
    /// <returns>False when the ring is full (nothing armed; try again after reaping).</returns>
    /// <exception cref="InvalidOperationException">The read is armed in another ring.</exception>
    public bool TryArm(IoUring ring)
    {
        ObjectDisposedException.ThrowIf(_readBuffer is null, this);
        if (_armedIn is not null)
        {
            return ReferenceEquals(_armedIn, ring)
                ? true
                : throw new InvalidOperationException("the wake-up read is armed in another ring");
        }
        int fd = (int)_eventFd.DangerousGetHandle(); // open until Dispose, which refuses while the read is armed
        if (!ring.TryPrepareRead(fd, (byte*)_readBuffer, sizeof(ulong), 0, _userData))
        {
            return false;
        }
        _armedIn = ring;
        return true;
    }

    /// <summary>Handles <paramref name="completion"/> if it is the wake-up read's (the read is then disarmed).</summary>
    /// <param name="completion">A completion reaped from the ring.</param>
    /// <returns>True when it was the wake-up's: the caller looks for new work and re-arms.</returns>
    /// <exception cref="StorageIOException">The read failed.</exception>
    public bool TryConsume(IoUringCompletion completion)
    {
        if (completion.UserData != _userData)
        {
            return false;
        }
        _armedIn = null;
        completion.ThrowIfFailed("io_uring read(eventfd)", "io_uring wake-up");
        return true;
    }

    /// <summary>Wakes the owner (any thread): adds one to the counter, which completes the armed read.</summary>
    /// <exception cref="ObjectDisposedException">The wake-up is disposed.</exception>
    /// <exception cref="StorageIOException">write(2) failed.</exception>
    public void Signal()
    {
        bool added = false;
        try
        {
            _eventFd.DangerousAddRef(ref added); // keeps the descriptor from being closed and reused during the write
            if (IoUringNative.WriteCounter((int)_eventFd.DangerousGetHandle(), 1) < 0)
            {
                throw LibC.ToException(LibC.LastErrno, "write(eventfd)", "io_uring wake-up");
            }
        }
        finally
        {
            if (added)
            {
                _eventFd.DangerousRelease();
            }
        }
    }

    /// <summary>Signals if a read is armed, so it completes and the ring's owner can reap it or dispose the ring.</summary>
    public void Release()
    {
        if (_armedIn is not null && !_eventFd.IsClosed)
        {
            Signal();
        }
    }

    /// <summary>Closes the eventfd and frees the read's buffer. Idempotent.</summary>
    /// <exception cref="InvalidOperationException">
    /// The read is armed in a ring that is still open: the kernel could still write into the buffer. Dispose that
    /// ring first (after <see cref="Release"/>), or reap the read.
    /// </exception>
    public void Dispose()
    {
        if (_readBuffer is null)
        {
            return;
        }
        if (_armedIn is { IsDisposed: false })
        {
            throw new InvalidOperationException("the wake-up read is armed in an open ring: release it and dispose the ring first");
        }
        _eventFd.Dispose();
        NativeMemory.Free(_readBuffer);
        _readBuffer = null;
        _armedIn = null;
    }
}
