using System.Runtime.Versioning;
using AppendLog.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace AppendLog.Io;

/// <summary>The libc half of <see cref="LinuxStorage"/>.</summary>
internal sealed partial class LinuxStorage
{
    [SupportedOSPlatform("linux")]
    private DirectFile OpenLinux(string path, FileCreation mode, DirectIoMode ioMode)
    {
        int flags = LibC.O_RDWR | LibC.O_CLOEXEC | mode switch
        {
            FileCreation.OpenExisting => 0,
            FileCreation.CreateNew => LibC.O_CREAT | LibC.O_EXCL,
            FileCreation.OpenOrCreate => LibC.O_CREAT,
            _ => throw new ArgumentOutOfRangeException(nameof(mode)),
        };
        bool direct = ioMode switch
        {
            DirectIoMode.Disabled => false,
            DirectIoMode.Required => true,
            DirectIoMode.Preferred => PreferDirect(path),
            _ => throw new ArgumentOutOfRangeException(nameof(ioMode)),
        };

        if (direct)
        {
            int fd = LibC.Open(path, flags | LibC.O_DIRECT, FileMode0644);
            if (fd >= 0)
            {
                return new DirectFile(fd, path, isDirect: true);
            }

            Errno errno = LibC.LastErrno;
            if (errno != Errno.EINVAL)
            {
                throw LibC.ToException(errno, "open", path);
            }

            // EINVAL: O_DIRECT refused. The kernel checks O_DIRECT only after it has created the inode, so with
            // O_CREAT | O_EXCL the file may now exist although open failed; O_EXCL also guarantees it did not
            // exist before (that would have been EEXIST), so it is ours to remove.
            if (mode == FileCreation.CreateNew)
            {
                _ = LibC.Unlink(path);
            }

            if (ioMode == DirectIoMode.Required)
            {
                throw LibC.ToException(errno, "open(O_DIRECT)", path);
            }
        }

        int bufferedFd = LibC.Open(path, flags, FileMode0644);
        if (bufferedFd < 0)
        {
            LibC.ThrowLastError("open", path);
        }

        return new DirectFile(bufferedFd, path, isDirect: false);
    }

    /// <summary>Preferred mode tries O_DIRECT unless the probe said for sure that the file system refuses it.</summary>
    [SupportedOSPlatform("linux")]
    private bool PreferDirect(string path)
    {
        DirectIoSupport support = GetDirectIoSupport(DirectoryOf(path));
        return support.SupportsDirectIo || !support.IsConclusive;
    }

    [SupportedOSPlatform("linux")]
    private static void SyncDirectoryLinux(string directory)
    {
        using SafeFileHandle handle = OpenDirectory(directory);
        if (LibC.Fsync(handle) != 0)
        {
            LibC.ThrowLastError("fsync(directory)", directory);
        }
    }

    [SupportedOSPlatform("linux")]
    private static FileSystemSync OpenFileSystemSyncLinux(string directory, (long Type, long Id) fileSystem) =>
        new(OpenDirectory(directory), directory, fileSystem);

    /// <summary>
    /// syncfs(2) through one directory descriptor held for the handle's life: the kernel reports a write-back error
    /// to each descriptor once, for errors seen since it was opened, so a descriptor opened per call could miss one.
    /// </summary>
    [SupportedOSPlatform("linux")]
    private sealed class FileSystemSync(SafeFileHandle handle, string directory, (long Type, long Id) fileSystem) : IFileSystemSync
    {
        public void Sync()
        {
            if (LibC.Syncfs(handle) != 0)
            {
                LibC.ThrowLastError("syncfs", directory);
            }
        }

        public bool Covers(string path) => LibC.GetFileSystemId(path) == fileSystem;

        public void Dispose() => handle.Dispose();
    }

    [SupportedOSPlatform("linux")]
    private static SafeFileHandle OpenDirectory(string directory)
    {
        int fd = LibC.Open(directory, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        if (fd < 0)
        {
            LibC.ThrowLastError("open(directory)", directory);
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    [SupportedOSPlatform("linux")]
    private static SafeFileHandle LockDirectoryLinux(string directory, string lockPath)
    {
        int fd = LibC.Open(lockPath, LibC.O_RDWR | LibC.O_CREAT | LibC.O_CLOEXEC, FileMode0644);
        if (fd < 0)
        {
            LibC.ThrowLastError("open", lockPath);
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        // flock locks belong to the open file description, so two opens in one process conflict too: a second
        // log instance on the same directory is refused just like a second process.
        if (LibC.Flock(handle, LibC.LOCK_EX | LibC.LOCK_NB) == 0)
        {
            return handle;
        }

        Errno errno = LibC.LastErrno;
        handle.Dispose();
        if (errno == Errno.EAGAIN)
        {
            ThrowLocked(directory);
        }

        throw LibC.ToException(errno, "flock", lockPath);
    }

    /// <summary>
    /// Opens the lock file read-only (without creating it) and tries a shared lock without waiting: EWOULDBLOCK means an
    /// exclusive holder. flock locks belong to the open file description, so a holder in this process counts too.
    /// </summary>
    [SupportedOSPlatform("linux")]
    private static bool IsLockHeldLinux(string lockPath)
    {
        int fd = LibC.Open(lockPath, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        if (fd < 0)
        {
            Errno openErrno = LibC.LastErrno;
            if (openErrno is Errno.ENOENT or Errno.ENOTDIR)
            {
                return false;
            }

            throw LibC.ToException(openErrno, "open", lockPath);
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (LibC.Flock(handle, LibC.LOCK_SH | LibC.LOCK_NB) == 0)
        {
            return false; // closing the descriptor drops the shared lock
        }

        Errno errno = LibC.LastErrno;
        if (errno == Errno.EAGAIN)
        {
            return true;
        }

        throw LibC.ToException(errno, "flock", lockPath);
    }

    [SupportedOSPlatform("linux")]
    private static void WriteFileAtomicLinux(string path, string temp, ReadOnlySpan<byte> contents)
    {
        int fd = LibC.Open(temp, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_TRUNC | LibC.O_CLOEXEC, FileMode0644);
        if (fd < 0)
        {
            LibC.ThrowLastError("open", temp);
        }

        try
        {
            using (var file = new DirectFile(fd, temp, isDirect: false))
            {
                file.Write(contents, 0);
                file.SyncData(); // the contents must be durable before the rename can expose them
            }

            if (LibC.Rename(temp, path) != 0)
            {
                LibC.ThrowLastError("rename", temp);
            }
        }
        catch (IOException)
        {
            _ = LibC.Unlink(temp); // best effort: the old file is untouched, do not leave a half-written temp
            throw;
        }

        SyncDirectoryLinux(DirectoryOf(path)); // and the rename itself durable before we return
    }

    private static string DirectoryOf(string path) =>
        System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)) ?? "/";
}
