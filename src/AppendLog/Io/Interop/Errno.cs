namespace AppendLog.Io.Interop;

/// <summary>
/// The Linux errno values the I/O layer maps by name. Linux uses the asm-generic numbering
/// (include/uapi/asm-generic/errno-base.h and errno.h) on x86_64 and arm64 alike; only alpha, mips,
/// parisc and sparc differ, and those are not supported targets.
/// </summary>
internal enum Errno
{
    /// <summary>Not an errno: the value used when none was reported.</summary>
    None = 0,

    /// <summary>Operation not permitted.</summary>
    EPERM = 1,

    /// <summary>No such file or directory.</summary>
    ENOENT = 2,

    /// <summary>Interrupted system call; the wrappers retry.</summary>
    EINTR = 4,

    /// <summary>I/O error: the device failed. After a write or sync, page state is unknown.</summary>
    EIO = 5,

    /// <summary>Bad file descriptor.</summary>
    EBADF = 9,

    /// <summary>Try again; also EWOULDBLOCK, which flock(LOCK_NB) reports for a held lock.</summary>
    EAGAIN = 11,

    /// <summary>Out of memory.</summary>
    ENOMEM = 12,

    /// <summary>Permission denied.</summary>
    EACCES = 13,

    /// <summary>Device or resource busy: io_uring_enter while completions wait in the overflow backlog.</summary>
    EBUSY = 16,

    /// <summary>File exists (O_CREAT | O_EXCL).</summary>
    EEXIST = 17,

    /// <summary>Not a directory.</summary>
    ENOTDIR = 20,

    /// <summary>Is a directory.</summary>
    EISDIR = 21,

    /// <summary>Invalid argument: O_DIRECT refused at open, or a misaligned O_DIRECT transfer.</summary>
    EINVAL = 22,

    /// <summary>Too many open files in this process.</summary>
    EMFILE = 24,

    /// <summary>File too large.</summary>
    EFBIG = 27,

    /// <summary>No space left on device.</summary>
    ENOSPC = 28,

    /// <summary>Read-only file system.</summary>
    EROFS = 30,

    /// <summary>File name too long.</summary>
    ENAMETOOLONG = 36,

    /// <summary>Function not implemented: a kernel built without the system call (io_uring).</summary>
    ENOSYS = 38,

    /// <summary>Operation not supported (also ENOTSUP): fallocate on a file system without it.</summary>
    EOPNOTSUPP = 95,

    /// <summary>Disk quota exceeded: treated like <see cref="ENOSPC"/>.</summary>
    EDQUOT = 122,

    /// <summary>Operation canceled: an io_uring operation linked to one that failed or completed short.</summary>
    ECANCELED = 125,
}
