using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using AppendLog.Io.Interop;

namespace AppendLog.Io;

/// <summary>
/// Probes a directory once for O_DIRECT support. Opening with O_DIRECT is not proof: some file systems accept
/// the flag and refuse the transfer, so the probe also writes one aligned block.
/// </summary>
/// <remarks>
/// <para>The probe file is an O_TMPFILE (an unnamed inode, gone on close; Linux 3.11+, ext4/xfs/btrfs/tmpfs),
/// so nothing is left behind even if the process dies mid-probe. Where O_TMPFILE is refused (EOPNOTSUPP, or
/// EISDIR on kernels that predate it) a named file <c>.appendlog-direct-probe</c> is created with O_EXCL and
/// unlinked at once.</para>
/// <para>tmpfs accepts O_DIRECT since Linux 6.6, so it is detected separately through statfs(2)'s f_type; a log
/// on tmpfs loses everything at reboot and callers should warn.</para>
/// </remarks>
[SupportedOSPlatform("linux")]
internal static class DirectIoProbe
{
    /// <summary>The name of the fallback probe file.</summary>
    public const string ProbeFileName = ".appendlog-direct-probe";

    /// <summary>Probes <paramref name="directory"/>, which must exist.</summary>
    /// <param name="directory">The directory whose file system is probed.</param>
    /// <returns>What the file system supports.</returns>
    public static DirectIoSupport Probe(string directory)
    {
        bool isTmpfs = LibC.GetFileSystemType(directory) == LibC.TmpfsMagic;
        if (!LibC.IsSupported)
        {
            return new DirectIoSupport(false, isTmpfs, $"architecture {RuntimeInformation.ProcessArchitecture}");
        }

        Errno errno = TryTmpfile(directory);
        if (errno is Errno.EOPNOTSUPP or Errno.EISDIR)
        {
            errno = TryNamedFile(directory);
        }

        // Only EINVAL says "this file system refuses O_DIRECT"; any other error says nothing about it.
        return errno switch
        {
            Errno.None => new DirectIoSupport(true, isTmpfs, null),
            Errno.EINVAL => new DirectIoSupport(false, isTmpfs, $"{errno} ({(int)errno})"),
            _ => new DirectIoSupport(false, isTmpfs, $"{errno} ({(int)errno})", IsConclusive: false),
        };
    }

    private static Errno TryTmpfile(string directory)
    {
        int fd = LibC.Open(directory, LibC.O_TMPFILE | LibC.O_RDWR | LibC.O_DIRECT | LibC.O_CLOEXEC, 0x180);
        if (fd < 0)
        {
            Errno errno = LibC.LastErrno;
            // EINVAL is ambiguous: O_TMPFILE or O_DIRECT refused. Tell them apart with a plain O_TMPFILE open.
            return errno == Errno.EINVAL ? ClassifyEinval(directory) : errno;
        }

        return WriteOneBlock(fd, directory);
    }

    private static Errno ClassifyEinval(string directory)
    {
        int fd = LibC.Open(directory, LibC.O_TMPFILE | LibC.O_RDWR | LibC.O_CLOEXEC, 0x180);
        if (fd < 0)
        {
            return Errno.EOPNOTSUPP; // O_TMPFILE itself is refused: fall back to a named probe file.
        }

        _ = LibC.Close(fd);
        return Errno.EINVAL; // O_TMPFILE works, so it was O_DIRECT that was refused.
    }

    private static Errno TryNamedFile(string directory)
    {
        string path = System.IO.Path.Combine(directory, ProbeFileName);
        // O_EXCL never opens a file someone else made. A leftover from a probe killed mid-way is removed first.
        _ = LibC.Unlink(path);
        int fd = LibC.Open(path, LibC.O_CREAT | LibC.O_EXCL | LibC.O_RDWR | LibC.O_DIRECT | LibC.O_CLOEXEC, 0x180);
        Errno errno = fd < 0 ? LibC.LastErrno : Errno.None;
        // The kernel checks O_DIRECT after creating the inode, so the file can exist even when open failed.
        if (fd >= 0 || errno == Errno.EINVAL)
        {
            _ = LibC.Unlink(path);
        }

        return fd < 0 ? errno : WriteOneBlock(fd, path);
    }

    private static unsafe Errno WriteOneBlock(int fd, string path)
    {
        // One aligned block proves the transfer path, not just the open flag.
        void* block = NativeMemory.AlignedAlloc(IoConstants.BlockSize, IoConstants.BlockSize);
        try
        {
            NativeMemory.Clear(block, IoConstants.BlockSize);
            using var file = new DirectFile(fd, path, isDirect: true);
            file.Write(new ReadOnlySpan<byte>(block, IoConstants.BlockSize), 0);
            return Errno.None;
        }
        catch (StorageIOException ex)
        {
            return ex.Errno;
        }
        finally
        {
            NativeMemory.AlignedFree(block);
        }
    }
}
