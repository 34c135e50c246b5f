namespace AppendLog.Io.Uring;

/// <summary>
/// The optional io_uring_setup(2) flags a ring asks for, newest first; a kernel that does not know one refuses the
/// whole setup with EINVAL, so <see cref="IoUring"/> retries without it and reports what it obtained.
/// Values are the IORING_SETUP_* bits of include/uapi/linux/io_uring.h.
/// </summary>
[Flags]
internal enum IoUringSetupFlags : uint
{
    /// <summary>None of the optional flags: any kernel with io_uring (5.1) accepts this.</summary>
    None = 0,

    /// <summary>IORING_SETUP_SUBMIT_ALL (5.18): one SQE that fails to prepare does not stop the rest of the batch.</summary>
    SubmitAll = 1u << 7,

    /// <summary>
    /// IORING_SETUP_COOP_TASKRUN (5.19): a completion posted by a kernel worker does not interrupt the submitting
    /// thread with an IPI; it is delivered the next time that thread enters the kernel, which the loop does to wait.
    /// </summary>
    CoopTaskRun = 1u << 8,

    /// <summary>IORING_SETUP_SINGLE_ISSUER (6.0): only the creating thread submits, so the kernel skips its locking.</summary>
    SingleIssuer = 1u << 12,
}
