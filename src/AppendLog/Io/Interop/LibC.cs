using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace AppendLog.Io.Interop;

/// <summary>
/// The libc calls the I/O layer makes, and the errno → exception mapping. Every call that can return
/// EINTR is retried here, so callers see either success or a real error.
/// </summary>
/// <remarks>
/// <para>Open flag values are per architecture. x86_64 uses include/uapi/asm-generic/fcntl.h; arm64 does
/// <em>not</em> for two of the flags we need: arch/arm64/include/uapi/asm/fcntl.h (like arch/arm) overrides
/// O_DIRECTORY = 040000 and O_DIRECT = 0200000, which are exactly swapped against asm-generic
/// (O_DIRECT = 040000, O_DIRECTORY = 0200000). Using the x86_64 values on arm64 would ask for O_DIRECTORY
/// when we mean O_DIRECT. Any other architecture is treated as unsupported (<see cref="IsSupported"/>).</para>
/// <para>"libc" resolves to the C library through the runtime's loader (on glibc, libc.so.6).</para>
/// </remarks>
[SupportedOSPlatform("linux")]
internal static partial class LibC
{
    private const string Library = "libc";

    /// <summary>O_RDONLY (asm-generic, all supported architectures).</summary>
    public const int O_RDONLY = 0x0;

    /// <summary>O_WRONLY.</summary>
    public const int O_WRONLY = 0x1;

    /// <summary>O_RDWR.</summary>
    public const int O_RDWR = 0x2;

    /// <summary>O_CREAT (octal 0100).</summary>
    public const int O_CREAT = 0x40;

    /// <summary>O_EXCL (octal 0200).</summary>
    public const int O_EXCL = 0x80;

    /// <summary>O_TRUNC (octal 01000).</summary>
    public const int O_TRUNC = 0x200;

    /// <summary>O_CLOEXEC (octal 02000000): no fd leaks into child processes.</summary>
    public const int O_CLOEXEC = 0x80000;

    /// <summary>__O_TMPFILE (octal 020000000); O_TMPFILE is this plus O_DIRECTORY.</summary>
    private const int OTmpfileBase = 0x400000;

    /// <summary>flock(2) LOCK_SH.</summary>
    public const int LOCK_SH = 1;

    /// <summary>flock(2) LOCK_EX.</summary>
    public const int LOCK_EX = 2;

    /// <summary>flock(2) LOCK_NB: fail with EWOULDBLOCK instead of waiting.</summary>
    public const int LOCK_NB = 4;

    /// <summary>RLIMIT_NOFILE from include/uapi/asm-generic/resource.h (x86_64 and arm64 share it).</summary>
    private const int RlimitNofile = 7;

    /// <summary>TMPFS_MAGIC from include/uapi/linux/magic.h, the f_type statfs(2) reports for tmpfs.</summary>
    public const long TmpfsMagic = 0x01021994;

    /// <summary>sizeof(struct statfs) is 120 bytes on x86_64 and arm64; we pass a larger buffer.</summary>
    private const int StatfsBufferSize = 256;

    /// <summary>True on x86_64 and arm64, the architectures whose flag values are known here.</summary>
    public static bool IsSupported { get; } =
        RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>O_DIRECT: 040000 on x86_64 (asm-generic), 0200000 on arm64.</summary>
    public static int O_DIRECT { get; } =
        RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x10000 : 0x4000;

    /// <summary>O_DIRECTORY: 0200000 on x86_64 (asm-generic), 040000 on arm64.</summary>
    public static int O_DIRECTORY { get; } =
        RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x4000 : 0x10000;

    /// <summary>O_TMPFILE: an unnamed file in the given directory, gone when closed.</summary>
    public static int O_TMPFILE => OTmpfileBase | O_DIRECTORY;

    /// <summary>The errno of the last call made through this class on this thread.</summary>
    public static Errno LastErrno => (Errno)Marshal.GetLastPInvokeError();

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenNative(string path, int flags, int mode);

    /// <summary>glibc's malloc_trim: gives free heap memory back to the system (after the pool frees idle chunks).</summary>
    [LibraryImport(Library, EntryPoint = "malloc_trim")]
    internal static partial int MallocTrim(nuint pad);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    private static partial int CloseNative(int fd);

    [LibraryImport(Library, EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FallocateNative(int fd, int mode, long offset, long length);

    [LibraryImport(Library, EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FdatasyncNative(int fd);

    [LibraryImport(Library, EntryPoint = "fsync", SetLastError = true)]
    private static partial int FsyncNative(int fd);

    [LibraryImport(Library, EntryPoint = "syncfs", SetLastError = true)]
    private static partial int SyncfsNative(int fd);

    [LibraryImport(Library, EntryPoint = "ftruncate", SetLastError = true)]
    private static partial int FtruncateNative(int fd, long length);

    [LibraryImport(Library, EntryPoint = "flock", SetLastError = true)]
    private static partial int FlockNative(int fd, int operation);

    [LibraryImport(Library, EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RenameNative(string from, string to);

    [LibraryImport(Library, EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int UnlinkNative(string path);

    [LibraryImport(Library, EntryPoint = "getrlimit", SetLastError = true)]
    private static unsafe partial int GetrlimitNative(int resource, ulong* limits);

    [LibraryImport(Library, EntryPoint = "statfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatfsNative(string path, byte* buffer);

    /// <summary>open(2), retried on EINTR.</summary>
    /// <returns>The file descriptor, or -1 with <see cref="LastErrno"/> set.</returns>
    public static int Open(string path, int flags, int mode)
    {
        int fd;
        do
        {
            fd = OpenNative(path, flags, mode);
        }
        while (fd < 0 && LastErrno == Errno.EINTR);
        return fd;
    }

    /// <summary>close(2). Never retried: on Linux the descriptor is released even when close reports EINTR.</summary>
    public static int Close(int fd) => CloseNative(fd);

    /// <summary>fallocate(2), retried on EINTR.</summary>
    /// <returns>0, or -1 with <see cref="LastErrno"/> set.</returns>
    public static int Fallocate(SafeHandle fd, int mode, long offset, long length) =>
        Retry(fd, static (raw, state) => FallocateNative(raw, state.mode, state.offset, state.length),
            (mode, offset, length));

    /// <summary>fdatasync(2), retried on EINTR.</summary>
    public static int Fdatasync(SafeHandle fd) =>
        Retry(fd, static (raw, _) => FdatasyncNative(raw), 0);

    /// <summary>fsync(2), retried on EINTR.</summary>
    public static int Fsync(SafeHandle fd) =>
        Retry(fd, static (raw, _) => FsyncNative(raw), 0);

    /// <summary>
    /// syncfs(2), retried on EINTR: writes back and commits the whole file system holding <paramref name="fd"/>, then
    /// flushes the device's cache (since Linux 5.8 it also reports write-back errors seen since the descriptor opened).
    /// </summary>
    public static int Syncfs(SafeHandle fd) =>
        Retry(fd, static (raw, _) => SyncfsNative(raw), 0);

    /// <summary>ftruncate(2), retried on EINTR.</summary>
    public static int Ftruncate(SafeHandle fd, long length) =>
        Retry(fd, static (raw, len) => FtruncateNative(raw, len), length);

    /// <summary>flock(2); with LOCK_NB it does not block, so it is not retried.</summary>
    public static int Flock(SafeHandle fd, int operation) =>
        Retry(fd, static (raw, op) => FlockNative(raw, op), operation);

    /// <summary>rename(2): atomically replaces <paramref name="to"/>.</summary>
    public static int Rename(string from, string to) => RenameNative(from, to);

    /// <summary>unlink(2).</summary>
    public static int Unlink(string path) => UnlinkNative(path);

    /// <summary>statfs(2) and returns f_type, or null when the call fails.</summary>
    public static unsafe long? GetFileSystemType(string path)
    {
        // f_type is the first field of struct statfs on both x86_64 and arm64, a 64-bit word.
        byte* buffer = stackalloc byte[StatfsBufferSize];
        return StatfsNative(path, buffer) == 0 ? *(long*)buffer : null;
    }

    /// <summary>
    /// statfs(2) and returns (f_type, f_fsid) — which file system a path lives on — or null when the call fails or the
    /// file system reports no id (f_fsid zero: then nothing tells two such file systems apart).
    /// </summary>
    public static unsafe (long Type, long Id)? GetFileSystemId(string path)
    {
        // struct statfs on x86_64 and arm64: seven 64-bit words (f_type, f_bsize, f_blocks, f_bfree, f_bavail,
        // f_files, f_ffree), then f_fsid (two ints, 8 bytes) at byte 56.
        byte* buffer = stackalloc byte[StatfsBufferSize];
        if (StatfsNative(path, buffer) != 0)
        {
            return null;
        }

        long id = *(long*)(buffer + 56);
        return id == 0 ? null : (*(long*)buffer, id);
    }

    /// <summary>
    /// The soft limit on this process's file descriptors (getrlimit(2) RLIMIT_NOFILE: one past the highest descriptor
    /// number open(2) may return), or null when the call fails. The .NET runtime raises the soft limit to the hard one
    /// at startup, so this is usually what <c>ulimit -n</c> set.
    /// </summary>
    public static unsafe long? GetOpenFileLimit()
    {
        // struct rlimit on 64-bit Linux: two unsigned 64-bit words, rlim_cur then rlim_max; RLIM_INFINITY is all ones.
        ulong* limits = stackalloc ulong[2];
        if (GetrlimitNative(RlimitNofile, limits) != 0)
        {
            return null;
        }

        return limits[0] > long.MaxValue ? long.MaxValue : (long)limits[0];
    }

    /// <summary>The exception for <paramref name="errno"/>, raised by <paramref name="operation"/> on <paramref name="path"/>.</summary>
    /// <returns><see cref="FileNotFoundException"/> for ENOENT, otherwise a <see cref="StorageIOException"/>.</returns>
    public static IOException ToException(Errno errno, string operation, string path)
    {
        string detail = Marshal.GetPInvokeErrorMessage((int)errno);
        return errno switch
        {
            Errno.ENOENT => new FileNotFoundException($"{operation} failed: '{path}' does not exist ({detail}).", path)
            {
                HResult = (int)Errno.ENOENT,
            },
            _ => new StorageIOException(errno, operation, path, detail),
        };
    }

    /// <summary>Throws the exception for the calling thread's last errno.</summary>
    public static void ThrowLastError(string operation, string path) =>
        throw ToException(LastErrno, operation, path);

    private static int Retry<TState>(SafeHandle handle, Func<int, TState, int> call, TState state)
    {
        bool added = false;
        try
        {
            // AddRef keeps the fd from being closed and reused by another thread during the call.
            handle.DangerousAddRef(ref added);
            int fd = (int)handle.DangerousGetHandle();
            int result;
            do
            {
                result = call(fd, state);
            }
            while (result < 0 && LastErrno == Errno.EINTR);
            return result;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }
}
