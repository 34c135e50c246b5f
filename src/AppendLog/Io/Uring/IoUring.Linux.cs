using System.Runtime.Versioning;
using AppendLog.Io.Interop;
using static AppendLog.Io.Uring.IoUringNative;

namespace AppendLog.Io.Uring;

/// <summary>
/// One io_uring instance: a submission ring the caller fills with writes and data syncs, one
/// <c>io_uring_enter</c> that submits them all (and optionally waits), and a completion ring reaped in batches.
/// A write linked to its <c>fdatasync</c> (<see cref="TryPrepareWriteThenDataSync"/>) goes to the kernel in one
/// call, and the sync starts only once the write has completed in full.
/// </summary>
/// <remarks>
/// <para><b>Thread model.</b> The ring belongs to the thread that created it: only that thread prepares, submits,
/// reaps, registers and disposes with operations in flight (checked on every call). That is what
/// <see cref="IoUringSetupFlags.SingleIssuer"/> promises the kernel, and the shape of an I/O loop that owns its
/// ring; other threads hand work to the owner, they never touch the ring.</para>
/// <para><b>Memory ordering.</b> The rings are shared with the kernel. The SQ tail and the CQ head are ours: we
/// publish them with <see cref="Volatile.Write(ref uint, uint)"/> (a release, so the SQEs, resp. our reads of the
/// CQEs, are ordered before it). The SQ head and the CQ tail are the kernel's: we read them with
/// <see cref="Volatile.Read(ref readonly uint)"/> (an acquire, so the CQEs it covers are read after it). This is
/// liburing's smp_store_release / smp_load_acquire pairing.</para>
/// <para><b>Bounds.</b> Every consumed SQE produces exactly one CQE (no CQE skipping is asked for), so the ring
/// never holds more operations prepared plus in flight than the CQ ring has entries: the CQ ring cannot overflow,
/// and a full ring is reported to the caller (a <c>TryPrepare…</c> returns false) instead of queued in the
/// kernel's overflow list.</para>
/// <para><b>Fallback.</b> Callers ask <see cref="IoUringSupport.Probe"/> first and keep the pwrite/fdatasync path
/// when io_uring is missing, disabled (sysctl <c>kernel.io_uring_disabled</c>, seccomp profiles of container
/// runtimes) or too old.</para>
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed unsafe class IoUring : IDisposable
{
    /// <summary>The largest ring this type creates: a bound on pinned memory and on operations in flight.</summary>
    public const int EntriesMax = 4096;

    /// <summary>The flag sets tried at setup, best first; EINVAL means "this kernel does not know one of them".</summary>
    private static readonly IoUringSetupFlags[] s_setupFlagsByPreference =
    [
        IoUringSetupFlags.SingleIssuer | IoUringSetupFlags.CoopTaskRun | IoUringSetupFlags.SubmitAll,
        IoUringSetupFlags.CoopTaskRun | IoUringSetupFlags.SubmitAll,
        IoUringSetupFlags.SubmitAll,
        IoUringSetupFlags.None,
    ];

    private readonly int _ownerThreadId;
    private readonly byte* _sqRing;
    private readonly nuint _sqRingBytes;
    private readonly byte* _cqRing; // equals _sqRing when the kernel maps both rings at once (FEAT_SINGLE_MMAP)
    private readonly nuint _cqRingBytes;
    private readonly Sqe* _sqes;
    private readonly nuint _sqesBytes;

    private readonly uint* _sqHead;   // the kernel's: SQEs consumed
    private readonly uint* _sqTail;   // ours: SQEs published
    private readonly uint* _sqFlags;  // the kernel's
    private readonly uint _sqMask;
    private readonly uint* _cqHead;   // ours: CQEs reaped
    private readonly uint* _cqTail;   // the kernel's: CQEs posted
    private readonly uint _cqMask;
    private readonly Cqe* _cqes;

    private int _fd;
    private uint _sqTailPrepared;     // ours, ahead of *_sqTail by the SQEs prepared since the last submit
    private int _inFlight;            // submitted to the kernel, completion not yet reaped
    private bool _linkOpen;           // the last prepared SQE links to the next one: a chain is half prepared
    private bool _buffersRegistered;

    /// <summary>Creates a ring of at least <paramref name="entries"/> submission entries, owned by the calling thread.</summary>
    /// <param name="entries">Submission entries, 1 to <see cref="EntriesMax"/> (the kernel rounds up to a power of two).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="entries"/> is out of range.</exception>
    /// <exception cref="StorageIOException">io_uring_setup or mmap failed (ENOSYS, EPERM, ENOMEM …).</exception>
    public IoUring(int entries)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(entries, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(entries, EntriesMax);
        _ownerThreadId = Environment.CurrentManagedThreadId;

        Params p = default;
        (_fd, SetupFlags) = SetupWithBestFlags((uint)entries, &p);
        Features = p.Features;
        SubmissionEntries = (int)p.SqEntries;
        CompletionEntries = (int)p.CqEntries;
        try
        {
            _sqRingBytes = p.SqOff.Array + p.SqEntries * sizeof(uint);
            _cqRingBytes = p.CqOff.Cqes + p.CqEntries * (uint)sizeof(Cqe);
            bool singleMap = (p.Features & FeatSingleMmap) != 0;
            if (singleMap)
            {
                _sqRingBytes = _cqRingBytes = Math.Max(_sqRingBytes, _cqRingBytes);
            }
            _sqRing = MapOrThrow(_sqRingBytes, OffSqRing);
            _cqRing = singleMap ? _sqRing : MapOrThrow(_cqRingBytes, OffCqRing);
            _sqesBytes = p.SqEntries * (uint)sizeof(Sqe);
            _sqes = (Sqe*)MapOrThrow(_sqesBytes, OffSqes);
        }
        catch
        {
            ReleaseMappings();
            _ = Close(_fd);
            throw;
        }

        _sqHead = (uint*)(_sqRing + p.SqOff.Head);
        _sqTail = (uint*)(_sqRing + p.SqOff.Tail);
        _sqFlags = (uint*)(_sqRing + p.SqOff.Flags);
        _sqMask = *(uint*)(_sqRing + p.SqOff.RingMask);
        _cqHead = (uint*)(_cqRing + p.CqOff.Head);
        _cqTail = (uint*)(_cqRing + p.CqOff.Tail);
        _cqMask = *(uint*)(_cqRing + p.CqOff.RingMask);
        _cqes = (Cqe*)(_cqRing + p.CqOff.Cqes);
        _sqTailPrepared = *_sqTail;

        // SQEs are used in ring order, so the indirection array is the identity, written once.
        uint* array = (uint*)(_sqRing + p.SqOff.Array);
        for (uint i = 0; i < p.SqEntries; i++)
        {
            array[i] = i;
        }
    }

    /// <summary>The optional setup flags this kernel accepted.</summary>
    public IoUringSetupFlags SetupFlags { get; }

    /// <summary>The IORING_FEAT_* bits the kernel reported.</summary>
    public uint Features { get; }

    /// <summary>Submission ring entries (a power of two, at least what was asked).</summary>
    public int SubmissionEntries { get; }

    /// <summary>Completion ring entries (twice the submission entries by default).</summary>
    public int CompletionEntries { get; }

    /// <summary>Operations submitted whose completion has not been reaped yet.</summary>
    public int InFlight => _inFlight;

    /// <summary>Operations prepared and not yet submitted.</summary>
    /// <exception cref="ObjectDisposedException">The ring is disposed (its memory is unmapped).</exception>
    public int Prepared
    {
        get
        {
            ObjectDisposedException.ThrowIf(_fd < 0, this);
            return (int)(_sqTailPrepared - Volatile.Read(ref *_sqHead));
        }
    }

    /// <summary>True once <see cref="Dispose"/> closed the ring: the kernel no longer touches any buffer it was given.</summary>
    public bool IsDisposed => _fd < 0;

    /// <summary>
    /// How many more operations can be prepared now: bounded by the free SQ entries and by the CQ entries not yet
    /// promised to an operation prepared or in flight.
    /// </summary>
    public int FreeEntries
    {
        get
        {
            int prepared = Prepared;
            return Math.Min(SubmissionEntries - prepared, CompletionEntries - prepared - _inFlight);
        }
    }

    /// <summary>Registered buffers (IORING_REGISTER_BUFFERS) are in place for <see cref="TryPrepareWriteFixed"/>.</summary>
    public bool HasRegisteredBuffers => _buffersRegistered;

    /// <summary>Prepares a write of <paramref name="length"/> bytes at <paramref name="buffer"/> to <paramref name="fd"/> at <paramref name="position"/>.</summary>
    /// <param name="fd">An open file descriptor the caller keeps open until the completion is reaped.</param>
    /// <param name="buffer">The data; the caller keeps it alive and unchanged until the completion is reaped.</param>
    /// <param name="length">Bytes to write.</param>
    /// <param name="position">File position.</param>
    /// <param name="userData">The tag the completion carries.</param>
    /// <param name="linkNext">The next prepared operation starts only after this one completes in full (IOSQE_IO_LINK).</param>
    /// <param name="writeFlags">pwritev2(2)'s RWF_* flags, for example <see cref="IoUringNative.RwfDsync"/> (0: none).</param>
    /// <returns>False when the ring is full (<see cref="FreeEntries"/> is 0): submit and reap first.</returns>
    public bool TryPrepareWrite(int fd, byte* buffer, int length, long position, ulong userData, bool linkNext,
        uint writeFlags = 0) =>
        TryPrepareReadWrite(OpWrite, fd, buffer, length, position, 0, userData, linkNext, writeFlags);

    /// <summary>
    /// Prepares a write from registered buffer <paramref name="bufferIndex"/> (IORING_OP_WRITE_FIXED): the kernel
    /// skips pinning and mapping the pages on every write. <paramref name="buffer"/> must lie inside that buffer.
    /// </summary>
    /// <param name="fd">An open file descriptor the caller keeps open until the completion is reaped.</param>
    /// <param name="buffer">The data, inside the registered buffer.</param>
    /// <param name="length">Bytes to write.</param>
    /// <param name="position">File position.</param>
    /// <param name="bufferIndex">Index of the registered buffer holding the data.</param>
    /// <param name="userData">The tag the completion carries.</param>
    /// <param name="linkNext">The next prepared operation starts only after this one completes in full.</param>
    /// <param name="writeFlags">pwritev2(2)'s RWF_* flags (0: none).</param>
    /// <returns>False when the ring is full.</returns>
    /// <exception cref="InvalidOperationException">No buffers are registered.</exception>
    public bool TryPrepareWriteFixed(int fd, byte* buffer, int length, long position, ushort bufferIndex,
        ulong userData, bool linkNext, uint writeFlags = 0)
    {
        if (!_buffersRegistered)
        {
            throw new InvalidOperationException("WRITE_FIXED needs registered buffers (RegisterBuffers)");
        }
        return TryPrepareReadWrite(OpWriteFixed, fd, buffer, length, position, bufferIndex, userData, linkNext, writeFlags);
    }

    /// <summary>Prepares an fdatasync of <paramref name="fd"/> (IORING_OP_FSYNC with IORING_FSYNC_DATASYNC).</summary>
    /// <param name="fd">An open file descriptor the caller keeps open until the completion is reaped.</param>
    /// <param name="userData">The tag the completion carries.</param>
    /// <param name="linkNext">The next prepared operation starts only after this one succeeds.</param>
    /// <returns>False when the ring is full.</returns>
    public bool TryPrepareDataSync(int fd, ulong userData, bool linkNext)
    {
        if (!TryNextSqe(out Sqe* sqe))
        {
            return false;
        }
        sqe->Opcode = OpFsync;
        sqe->Fd = fd;
        sqe->OpFlags = FsyncDataSync; // offset and length 0: the whole file, as fdatasync(2)
        Finish(sqe, userData, linkNext);
        return true;
    }

    /// <summary>Prepares a read of up to <paramref name="length"/> bytes of <paramref name="fd"/> at <paramref name="position"/> into <paramref name="buffer"/>.</summary>
    /// <param name="fd">An open file descriptor the caller keeps open until the completion is reaped.</param>
    /// <param name="buffer">Where the bytes go; alive until the completion is reaped.</param>
    /// <param name="length">Bytes to read at most.</param>
    /// <param name="position">File position (ignored by files without one, such as an eventfd).</param>
    /// <param name="userData">The tag the completion carries.</param>
    /// <returns>False when the ring is full.</returns>
    public bool TryPrepareRead(int fd, byte* buffer, int length, long position, ulong userData) =>
        TryPrepareReadWrite(OpRead, fd, buffer, length, position, 0, userData, linkNext: false);

    /// <summary>Prepares an operation that does nothing and completes with 0: a ring round trip.</summary>
    /// <param name="userData">The tag the completion carries.</param>
    /// <returns>False when the ring is full.</returns>
    public bool TryPrepareNop(ulong userData)
    {
        if (!TryNextSqe(out Sqe* sqe))
        {
            return false;
        }
        sqe->Opcode = OpNop;
        Finish(sqe, userData, linkNext: false);
        return true;
    }

    /// <summary>
    /// Prepares a write and, linked to it, an fdatasync of the same file: one submission for "make this durable".
    /// The sync starts only after the write completed in full; if the write fails or is short, the sync completes
    /// with ECANCELED and never runs. Both or neither are prepared.
    /// </summary>
    /// <param name="fd">An open file descriptor the caller keeps open until both completions are reaped.</param>
    /// <param name="buffer">The data; alive and unchanged until the write's completion is reaped.</param>
    /// <param name="length">Bytes to write.</param>
    /// <param name="position">File position.</param>
    /// <param name="writeUserData">The write completion's tag.</param>
    /// <param name="syncUserData">The sync completion's tag.</param>
    /// <param name="registeredBufferIndex">Write with WRITE_FIXED from this registered buffer, or null for a plain write.</param>
    /// <param name="onWorker">
    /// Issue the write on an io-wq worker (IOSQE_ASYNC): the worker that completes it runs the linked sync next, so the
    /// pair costs no round trip through the submitting thread between write and sync. False: the write is tried
    /// without blocking from the submitting thread, and the sync (which never runs without blocking) goes to a worker.
    /// </param>
    /// <returns>False when fewer than two entries are free.</returns>
    public bool TryPrepareWriteThenDataSync(int fd, byte* buffer, int length, long position, ulong writeUserData,
        ulong syncUserData, ushort? registeredBufferIndex = null, bool onWorker = false)
    {
        CheckOwner();
        if (FreeEntries < 2)
        {
            return false;
        }
        bool prepared = registeredBufferIndex is ushort index
            ? TryPrepareWriteFixed(fd, buffer, length, position, index, writeUserData, linkNext: true)
            : TryPrepareWrite(fd, buffer, length, position, writeUserData, linkNext: true);
        if (prepared && onWorker)
        {
            _sqes[(_sqTailPrepared - 1) & _sqMask].Flags |= SqeAsync;
        }
        prepared &= TryPrepareDataSync(fd, syncUserData, linkNext: false);
        if (!prepared)
        {
            throw new InvalidOperationException("invariant: two free entries were counted, yet one was refused");
        }
        return true;
    }

    /// <summary>Submits every prepared operation without waiting for completions.</summary>
    /// <returns>Operations the kernel consumed.</returns>
    /// <exception cref="StorageIOException">io_uring_enter failed.</exception>
    public int Submit() => SubmitAndWait(0);

    /// <summary>
    /// Submits every prepared operation and, in the same system call, waits until at least
    /// <paramref name="completionsMin"/> completions are ready to reap (counting those already posted).
    /// </summary>
    /// <param name="completionsMin">Completions to wait for, at most <see cref="InFlight"/> after the submission.</param>
    /// <returns>Operations the kernel consumed.</returns>
    /// <exception cref="ArgumentOutOfRangeException">More completions asked for than operations could produce.</exception>
    /// <exception cref="InvalidOperationException">A linked chain is half prepared, or the caller is not the owner.</exception>
    /// <exception cref="ObjectDisposedException">The ring is disposed.</exception>
    /// <exception cref="StorageIOException">io_uring_enter failed.</exception>
    public int SubmitAndWait(int completionsMin)
    {
        CheckOwner();
        if (_linkOpen)
        {
            throw new InvalidOperationException("the last prepared operation links to one not prepared yet");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(completionsMin);
        int prepared = Prepared;
        ArgumentOutOfRangeException.ThrowIfGreaterThan(completionsMin, _inFlight + prepared); // posted, unreaped ones are in _inFlight
        Volatile.Write(ref *_sqTail, _sqTailPrepared); // release: the SQEs are visible before the tail
        if (prepared == 0 && completionsMin == 0)
        {
            return 0;
        }

        uint flags = completionsMin > 0 ? EnterGetEvents : 0;
        int consumed;
        do
        {
            consumed = Enter(_fd, (uint)prepared, (uint)completionsMin, flags);
        }
        while (consumed < 0 && LibC.LastErrno == Errno.EINTR); // interrupted before anything was submitted
        if (consumed < 0)
        {
            throw LibC.ToException(LibC.LastErrno, "io_uring_enter", $"io_uring fd {_fd}");
        }
        // With SUBMIT_ALL the kernel takes the whole batch; without it, it may stop early, and the rest stays in the
        // ring (head < tail) for the next call. Either way the kernel's head says what it took.
        int taken = prepared - Prepared;
        if (taken != consumed)
        {
            throw new InvalidOperationException($"invariant: io_uring_enter reported {consumed} consumed, the head moved {taken}");
        }
        _inFlight += consumed;
        if ((Volatile.Read(ref *_sqFlags) & SqCqOverflow) != 0)
        {
            throw new InvalidOperationException("invariant: the completion ring overflowed, though in-flight operations are bounded by its size");
        }
        return consumed;
    }

    /// <summary>
    /// Copies the completions posted so far (up to <paramref name="completions"/>.Length) and frees their slots:
    /// one acquire of the tail and one release of the head for the whole batch. Does not enter the kernel; with
    /// <see cref="IoUringSetupFlags.CoopTaskRun"/> a completion becomes visible once this thread entered the kernel
    /// after it happened, which <see cref="SubmitAndWait"/> does.
    /// </summary>
    /// <param name="completions">Where to copy them, oldest first.</param>
    /// <returns>The number copied.</returns>
    public int Reap(Span<IoUringCompletion> completions)
    {
        CheckOwner();
        uint head = *_cqHead; // ours: nobody else writes it
        uint tail = Volatile.Read(ref *_cqTail); // acquire: the CQEs up to the tail are visible after this read
        int count = (int)Math.Min(tail - head, (uint)completions.Length);
        for (int i = 0; i < count; i++)
        {
            Cqe* cqe = _cqes + ((head + (uint)i) & _cqMask);
            completions[i] = new IoUringCompletion(cqe->UserData, cqe->Result);
        }
        Volatile.Write(ref *_cqHead, head + (uint)count); // release: our reads of the CQEs happen before the kernel reuses them
        _inFlight -= count;
        if (_inFlight < 0)
        {
            throw new InvalidOperationException("invariant: more completions reaped than operations submitted");
        }
        return count;
    }

    /// <summary>
    /// Registers <paramref name="buffers"/> (IORING_REGISTER_BUFFERS): their pages are pinned once, and
    /// <see cref="TryPrepareWriteFixed"/> names them by index. Pinned pages count against RLIMIT_MEMLOCK; ENOMEM
    /// means the limit is too low, and the caller falls back to plain writes.
    /// </summary>
    /// <param name="buffers">Address and length of each buffer, 1 to 1,024 buffers (each at most 1 GiB).</param>
    /// <exception cref="InvalidOperationException">Buffers are registered already or operations are in flight.</exception>
    /// <exception cref="StorageIOException">The kernel refused (ENOMEM: memlock limit; EFAULT; EINVAL).</exception>
    public void RegisterBuffers(ReadOnlySpan<(nint Address, nint Length)> buffers)
    {
        CheckOwner();
        ArgumentOutOfRangeException.ThrowIfLessThan(buffers.Length, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(buffers.Length, 1024);
        if (_buffersRegistered || _inFlight != 0)
        {
            throw new InvalidOperationException("register buffers once, with nothing in flight");
        }
        IoVec* vectors = stackalloc IoVec[buffers.Length];
        for (int i = 0; i < buffers.Length; i++)
        {
            vectors[i] = new IoVec { Base = (void*)buffers[i].Address, Length = (nuint)buffers[i].Length };
        }
        if (Register(_fd, IoUringNative.RegisterBuffers, vectors, (uint)buffers.Length) < 0)
        {
            throw LibC.ToException(LibC.LastErrno, "io_uring_register(BUFFERS)", $"io_uring fd {_fd}");
        }
        _buffersRegistered = true;
    }

    /// <summary>IORING_REGISTER_PROBE into <paramref name="probe"/> (struct io_uring_probe with room for <paramref name="opsMax"/> ops).</summary>
    /// <returns>Null on success, otherwise the errno's description.</returns>
    internal string? RegisterProbe(byte* probe, int opsMax)
    {
        CheckOwner();
        return Register(_fd, IoUringNative.RegisterProbe, probe, (uint)opsMax) < 0 ? LibC.LastErrno.ToString() : null;
    }

    /// <summary>
    /// Waits for every operation in flight, then unmaps the rings and closes the ring. Prepared operations never
    /// submitted are dropped. On another thread than the owner it only works with nothing in flight.
    /// </summary>
    /// <exception cref="InvalidOperationException">Operations are in flight and the caller is not the owner.</exception>
    public void Dispose()
    {
        if (_fd < 0)
        {
            return;
        }
        if (_inFlight > 0)
        {
            CheckOwner(); // the kernel may still read our buffers: drain before they can be freed
            Span<IoUringCompletion> drained = stackalloc IoUringCompletion[64];
            _sqTailPrepared = *_sqTail; // drop what was prepared and never published
            _linkOpen = false;
            while (_inFlight > 0)
            {
                _ = SubmitAndWait(Math.Min(_inFlight, drained.Length));
                _ = Reap(drained);
            }
        }
        ReleaseMappings();
        _ = Close(_fd);
        _fd = -1;
    }

    private static (int Fd, IoUringSetupFlags Flags) SetupWithBestFlags(uint entries, Params* p)
    {
        foreach (IoUringSetupFlags flags in s_setupFlagsByPreference)
        {
            *p = default;
            p->Flags = (uint)flags;
            int fd = Setup(entries, p);
            if (fd >= 0)
            {
                return (fd, flags);
            }
            Errno errno = LibC.LastErrno;
            if (errno != Errno.EINVAL || flags == IoUringSetupFlags.None)
            {
                throw LibC.ToException(errno, "io_uring_setup", $"{entries} entries, flags {flags}");
            }
        }
        throw new InvalidOperationException("unreachable: the last flag set is None");
    }

    private byte* MapOrThrow(nuint length, long offset)
    {
        byte* address = Map(_fd, length, offset);
        return address is not null
            ? address
            : throw LibC.ToException(LibC.LastErrno, "mmap(io_uring)", $"io_uring fd {_fd}, offset {offset:x}");
    }

    private void ReleaseMappings()
    {
        if (_sqes is not null)
        {
            _ = Unmap((byte*)_sqes, _sqesBytes);
        }
        if (_cqRing is not null && _cqRing != _sqRing)
        {
            _ = Unmap(_cqRing, _cqRingBytes);
        }
        if (_sqRing is not null)
        {
            _ = Unmap(_sqRing, _sqRingBytes);
        }
    }

    private bool TryPrepareReadWrite(byte opcode, int fd, byte* buffer, int length, long position, ushort bufferIndex,
        ulong userData, bool linkNext, uint writeFlags = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        if (!TryNextSqe(out Sqe* sqe))
        {
            return false;
        }
        sqe->Opcode = opcode;
        sqe->Fd = fd;
        sqe->Address = (ulong)buffer;
        sqe->Length = (uint)length;
        sqe->Offset = (ulong)position;
        sqe->BufIndex = bufferIndex;
        sqe->OpFlags = writeFlags;
        Finish(sqe, userData, linkNext);
        return true;
    }

    private bool TryNextSqe(out Sqe* sqe)
    {
        CheckOwner();
        if (FreeEntries <= 0)
        {
            sqe = null;
            return false;
        }
        sqe = _sqes + (_sqTailPrepared & _sqMask);
        *sqe = default; // every field the kernel reads starts at zero: no stale flags from the slot's last use
        return true;
    }

    private void Finish(Sqe* sqe, ulong userData, bool linkNext)
    {
        sqe->UserData = userData;
        sqe->Flags = linkNext ? SqeIoLink : (byte)0;
        _linkOpen = linkNext;
        _sqTailPrepared++;
    }

    /// <summary>Every use but <see cref="Dispose"/>: the ring is open and this is its owner thread.</summary>
    private void CheckOwner()
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        if (Environment.CurrentManagedThreadId != _ownerThreadId)
        {
            throw new InvalidOperationException(
                "an io_uring instance is used only by the thread that created it (single issuer)");
        }
    }
}
