using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using AppendLog.Io.Interop;

namespace AppendLog.Io.Uring;

/// <summary>
/// The io_uring ABI (include/uapi/linux/io_uring.h) and the three system calls, reached through libc's
/// <c>syscall(2)</c>: glibc has no io_uring wrappers and no package binds them. Layouts and numbers are the same
/// on x86_64 and arm64: the syscalls were added in 5.1 with one number (425-427) for every architecture, and the
/// structures use fixed-width fields only.
/// </summary>
[SupportedOSPlatform("linux")]
internal static unsafe partial class IoUringNative
{
    private const string Library = "libc";

    public const long SysIoUringSetup = 425;
    public const long SysIoUringEnter = 426;
    public const long SysIoUringRegister = 427;

    // Setup flags (io_uring_setup(2)); each was added in the kernel named, and an older kernel refuses it with EINVAL.
    public const uint SetupSubmitAll = 1u << 7;      // 5.18: keep submitting the batch after one SQE fails to prepare
    public const uint SetupCoopTaskRun = 1u << 8;    // 5.19: no IPI to interrupt the task when a completion is posted
    public const uint SetupSingleIssuer = 1u << 12;  // 6.0: one task submits; the kernel skips its locking

    // Features reported back in io_uring_params.features.
    public const uint FeatSingleMmap = 1u << 0;      // 5.4: SQ and CQ rings share one mapping
    public const uint FeatNoDrop = 1u << 1;          // 5.5: completions are never dropped on CQ overflow

    // mmap offsets of the three regions.
    public const long OffSqRing = 0;
    public const long OffCqRing = 0x8000000;
    public const long OffSqes = 0x10000000;

    // Opcodes used here (enum io_uring_op).
    public const byte OpNop = 0;
    public const byte OpFsync = 3;
    public const byte OpWriteFixed = 5;
    public const byte OpRead = 22;               // 5.6
    public const byte OpWrite = 23;              // 5.6

    // SQE flags.
    public const byte SqeIoLink = 1 << 2;        // the next SQE starts only after this one succeeds in full
    public const byte SqeAsync = 1 << 4;         // 5.6: issue on an io-wq worker at once, no non-blocking attempt first

    /// <summary>
    /// rw_flags RWF_DSYNC (include/uapi/linux/fs.h): the write completes only once it is durable, as with O_DSYNC:
    /// a FUA write where the device supports it and the blocks are already written, otherwise the write and then a
    /// data sync of its range, done by the kernel on the write's completion.
    /// </summary>
    public const uint RwfDsync = 0x2;

    /// <summary>fsync_flags: fdatasync(2) semantics instead of fsync(2).</summary>
    public const uint FsyncDataSync = 1;

    // io_uring_enter(2) flags.
    public const uint EnterGetEvents = 1;

    // io_uring_register(2) opcodes.
    public const uint RegisterBuffers = 0;
    public const uint UnregisterBuffers = 1;
    public const uint RegisterProbe = 8;

    /// <summary>io_uring_probe_op.flags: the opcode is supported.</summary>
    public const ushort ProbeOpSupported = 1;

    /// <summary>sq ring flags: completions overflowed the CQ ring and wait in the kernel's backlog.</summary>
    public const uint SqCqOverflow = 1u << 1;

    private const int ProtRead = 1;
    private const int ProtWrite = 2;
    private const int MapShared = 1;
    private const int MapPopulate = 0x8000;      // asm-generic mman-common.h, x86_64 and arm64 alike

    [StructLayout(LayoutKind.Sequential)]
    public struct SqRingOffsets
    {
        public uint Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1;
        public ulong UserAddr;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct CqRingOffsets
    {
        public uint Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1;
        public ulong UserAddr;
    }

    /// <summary>struct io_uring_params: 120 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Params
    {
        public uint SqEntries, CqEntries, Flags, SqThreadCpu, SqThreadIdle, Features, WqFd, Resv0, Resv1, Resv2;
        public SqRingOffsets SqOff;
        public CqRingOffsets CqOff;
    }

    /// <summary>struct io_uring_sqe: 64 bytes; only the fields the write path uses are named.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 64)]
    public struct Sqe
    {
        [FieldOffset(0)] public byte Opcode;
        [FieldOffset(1)] public byte Flags;
        [FieldOffset(2)] public ushort IoPrio;
        [FieldOffset(4)] public int Fd;
        [FieldOffset(8)] public ulong Offset;
        [FieldOffset(16)] public ulong Address;
        [FieldOffset(24)] public uint Length;
        [FieldOffset(28)] public uint OpFlags;       // rw_flags, fsync_flags …
        [FieldOffset(32)] public ulong UserData;
        [FieldOffset(40)] public ushort BufIndex;
    }

    /// <summary>struct io_uring_cqe: 16 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Cqe
    {
        public ulong UserData;
        public int Result;
        public uint Flags;
    }

    /// <summary>struct iovec, for buffer registration.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    // syscall(2) is variadic; on x86_64 and arm64 Linux, integer arguments of a variadic call travel exactly as those
    // of a fixed signature (registers, then the stack), and glibc's syscall reads them so.
    [LibraryImport(Library, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall3(long number, long a1, long a2, long a3);

    [LibraryImport(Library, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall4(long number, long a1, long a2, long a3, long a4);

    [LibraryImport(Library, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    [LibraryImport(Library, EntryPoint = "mmap", SetLastError = true)]
    private static partial nint MmapNative(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport(Library, EntryPoint = "munmap", SetLastError = true)]
    private static partial int MunmapNative(nint address, nuint length);

    [LibraryImport(Library, EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFdNative(uint initialValue, int flags);

    [LibraryImport(Library, EntryPoint = "write", SetLastError = true)]
    private static partial nint WriteNative(int fd, void* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    private static partial int CloseNative(int fd);

    /// <summary>io_uring_setup(2): the ring's fd, or -1 with <see cref="LibC.LastErrno"/> set.</summary>
    public static int Setup(uint entries, Params* parameters) =>
        (int)Syscall3(SysIoUringSetup, entries, (long)parameters, 0);

    /// <summary>io_uring_enter(2) without a signal mask: SQEs consumed, or -1 with <see cref="LibC.LastErrno"/> set.</summary>
    public static int Enter(int fd, uint toSubmit, uint minComplete, uint flags) =>
        (int)Syscall6(SysIoUringEnter, fd, toSubmit, minComplete, flags, 0, 0);

    /// <summary>io_uring_register(2): 0 (or a positive result), or -1 with <see cref="LibC.LastErrno"/> set.</summary>
    public static int Register(int fd, uint opcode, void* argument, uint count) =>
        (int)Syscall4(SysIoUringRegister, fd, opcode, (long)argument, count);

    /// <summary>Maps one ring region, shared with the kernel, populated at once (no faults on the hot path).</summary>
    /// <returns>The address, or null with <see cref="LibC.LastErrno"/> set.</returns>
    public static byte* Map(int fd, nuint length, long offset)
    {
        nint address = MmapNative(0, length, ProtRead | ProtWrite, MapShared | MapPopulate, fd, offset);
        return address == -1 ? null : (byte*)address;
    }

    /// <summary>munmap(2).</summary>
    public static int Unmap(byte* address, nuint length) => MunmapNative((nint)address, length);

    /// <summary>EFD_CLOEXEC (= O_CLOEXEC, octal 02000000): no fd leaks into child processes.</summary>
    public const int EventFdCloseOnExec = 0x80000;

    /// <summary>eventfd(2): a counter file descriptor, or -1 with <see cref="LibC.LastErrno"/> set.</summary>
    public static int EventFd(int flags) => EventFdNative(0, flags);

    /// <summary>write(2) of one 8-byte value, retried on EINTR: 8, or -1 with <see cref="LibC.LastErrno"/> set.</summary>
    public static nint WriteCounter(int fd, ulong value)
    {
        nint written;
        do
        {
            written = WriteNative(fd, &value, sizeof(ulong));
        }
        while (written < 0 && LibC.LastErrno == Errno.EINTR);
        return written;
    }

    /// <summary>close(2); never retried (Linux releases the descriptor even on EINTR).</summary>
    public static int Close(int fd) => CloseNative(fd);
}
