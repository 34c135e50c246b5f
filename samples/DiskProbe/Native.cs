using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace DiskProbe;

/// <summary>
/// The few Linux calls the probe needs that .NET does not expose: open(2) with O_DIRECT, fdatasync(2) and
/// fallocate(2). Writes and reads go through <see cref="RandomAccess"/> on the returned handle (pwrite/pread).
/// Flag values are the asm-generic ones shared by x86_64 and arm64, except O_DIRECT (0x4000 on x86_64,
/// 0x10000 on arm64, from the kernel's arch/*/include/uapi/asm/fcntl.h).
/// </summary>
internal static partial class Native
{
    private const int O_RDWR = 0x2;
    private const int O_CREAT = 0x40;
    private const int O_TRUNC = 0x200;
    private const int O_CLOEXEC = 0x80000;

    public static int O_DIRECT => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        var a => throw new PlatformNotSupportedException($"O_DIRECT's value is not known here for {a}"),
    };

    /// <summary>Creates (or truncates) <paramref name="path"/> for read/write, with O_DIRECT when asked.</summary>
    public static SafeFileHandle Create(string path, bool direct)
    {
        int flags = O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0);
        int fd = Open(path, flags, 0x1A4 /* 0644 */);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"open({path}, {(direct ? "O_DIRECT" : "buffered")}) failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    public static void DataSync(SafeFileHandle file)
    {
        if (FDataSync(file) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"fdatasync failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
        }
    }

    /// <summary>Reserves [offset, offset + length) without writing it (mode 0: extends the file size too).</summary>
    public static void Allocate(SafeFileHandle file, long offset, long length)
    {
        if (FAllocate(file, 0, offset, length) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"fallocate failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FDataSync(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FAllocate(SafeFileHandle fd, int mode, long offset, long length);
}
