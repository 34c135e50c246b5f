using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace AppendLog.LoadGen.Engines;

/// <summary>
/// The four system calls the minimal group-commit loop needs, declared here so the floor depends on nothing
/// of AppendLog's own I/O layer. Every failure becomes an <see cref="IOException"/> carrying errno.
/// </summary>
[SupportedOSPlatform("linux")]
internal static partial class MinimalLoopFile
{
    private const string Library = "libc";

    // asm-generic/fcntl.h values, shared by x86_64 and arm64 except O_DIRECT (below).
    private const int OWriteOnly = 0x1;
    private const int OCreate = 0x40;
    private const int OCloseOnExec = 0x80000;

    /// <summary>errno 4: a signal interrupted the call before it did anything; repeat it.</summary>
    private const int EIntr = 4;

    /// <summary>O_DIRECT: 040000 on x86_64 (asm-generic), 0200000 on arm64 (arch/arm64 fcntl.h).</summary>
    private static int ODirect => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        Architecture other => throw new PlatformNotSupportedException($"O_DIRECT's value is not known here for {other}"),
    };

    /// <summary>open(2) with O_DIRECT | O_WRONLY | O_CREAT | O_CLOEXEC, mode 0644.</summary>
    public static int OpenDirect(string path)
    {
        int fd;
        do
        {
            fd = Open(path, OWriteOnly | OCreate | OCloseOnExec | ODirect, 0b110_100_100);
        }
        while (fd < 0 && Marshal.GetLastPInvokeError() == EIntr);
        return fd >= 0 ? fd : throw Error("open", path);
    }

    /// <summary>One pwrite(2) of exactly <paramref name="count"/> bytes; a short write is an error, not retried.</summary>
    public static unsafe void WriteExactly(int fd, byte* buffer, int count, long position)
    {
        nint written;
        do
        {
            written = PWrite(fd, buffer, (nuint)count, position);
        }
        while (written < 0 && Marshal.GetLastPInvokeError() == EIntr);
        if (written < 0)
        {
            throw Error("pwrite", $"{count} bytes at {position}");
        }
        if (written != count)
        {
            throw new IOException($"pwrite: short write of {written} of {count} bytes at {position}");
        }
    }

    public static void DataSync(int fd)
    {
        int result;
        do
        {
            result = FDataSync(fd);
        }
        while (result < 0 && Marshal.GetLastPInvokeError() == EIntr);
        if (result < 0)
        {
            throw Error("fdatasync", $"fd {fd}");
        }
    }

    /// <summary>fallocate(2) mode 0: allocates unwritten extents for [offset, offset + length) and grows the size.</summary>
    public static void Allocate(int fd, long offset, long length)
    {
        int result;
        do
        {
            result = FAllocate(fd, 0, offset, length);
        }
        while (result < 0 && Marshal.GetLastPInvokeError() == EIntr);
        if (result < 0)
        {
            throw Error("fallocate", $"[{offset}, {offset + length})");
        }
    }

    public static void CloseFile(int fd)
    {
        if (Close(fd) < 0)
        {
            throw Error("close", $"fd {fd}");
        }
    }

    private static IOException Error(string call, string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{call} ({what}) failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})", errno);
    }

    // open is variadic in C; the mode argument travels in the same register as for a fixed signature on x86_64
    // and arm64 Linux.
    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, uint mode);

    [LibraryImport(Library, EntryPoint = "pwrite", SetLastError = true)]
    private static unsafe partial nint PWrite(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport(Library, EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FDataSync(int fd);

    [LibraryImport(Library, EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FAllocate(int fd, int mode, long offset, long length);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
