using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.Versioning;
using AppendLog.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace AppendLog.Io;

/// <summary>
/// The real <see cref="IStorage"/>. On Linux (x86_64, arm64) it goes through open(2)/fallocate(2)/fdatasync(2)
/// and friends (<see cref="LibC"/>), with O_DIRECT where <see cref="DirectIoMode"/> and the directory's
/// <see cref="DirectIoProbe"/> allow. Elsewhere it runs buffered through <see cref="BufferedFile"/> and
/// <see cref="FileStream.Flush(bool)"/>; there directory syncs are not available and are skipped.
/// Every file it opens is wrapped in a <see cref="SanitizingFile"/>.
/// </summary>
internal sealed partial class LinuxStorage : IStorage
{
    /// <summary>The lock file <see cref="LockDirectory"/> creates inside the directory. Never deleted: unlinking
    /// it would let a second process lock a fresh inode while the first still holds the old one.</summary>
    public const string LockFileName = ".lock";

    /// <summary>
    /// The lock file a <see cref="LogManager"/> holds in its root directory for its lifetime. The logs it opens take no
    /// lock of their own (the manager's registry keeps them exclusive in-process), and a log opened on its own checks
    /// that no manager holds its parent directory (see <see cref="SegmentedLog"/>'s open). Never deleted.
    /// </summary>
    public const string ManagerLockFileName = ".manager.lock";

    /// <summary>The suffix of the temporary file <see cref="WriteFileAtomic"/> writes before renaming it.</summary>
    public const string TempSuffix = ".tmp";

    /// <summary>The largest metadata file <see cref="WriteFileAtomic"/> and <see cref="ReadSmallFile"/> accept,
    /// in bytes. Metadata is a few hundred bytes; anything near this is a bug or a wrong path.</summary>
    public const int SmallFileSizeMax = 1 << 20;

    private const int FileMode0644 = 0x1A4; // rw-r--r--

    private readonly ConcurrentDictionary<string, DirectIoSupport> _probes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(long Type, long Id), DirectIoSupport> _probesByFileSystem = new();
    private long _probeCount;

    /// <summary>Probes run by this instance (each opens, writes and removes a file): for tests.</summary>
    internal long ProbeCount => Interlocked.Read(ref _probeCount);

    /// <summary>True where the libc path is used: Linux on an architecture whose flag values we know.</summary>
    [SupportedOSPlatformGuard("linux")]
    private static bool IsNativeLinux => OperatingSystem.IsLinux() && LibC.IsSupported;

    /// <inheritdoc/>
    /// <remarks>
    /// A conclusive answer is cached for the lifetime of this instance: one probe per file system (identified by
    /// statfs's type and id), not per directory or file, so a thousand logs under one root cost one probe. Where the
    /// file system reports no id, per directory.
    /// </remarks>
    public DirectIoSupport GetDirectIoSupport(string directory)
    {
        string full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(directory));
        if (!IsNativeLinux)
        {
            return new DirectIoSupport(false, false, "not Linux on x86_64 or arm64");
        }

        if (_probes.TryGetValue(full, out DirectIoSupport known))
        {
            return known;
        }

        var fileSystem = LibC.GetFileSystemId(full);
        if (fileSystem is { } fs && _probesByFileSystem.TryGetValue(fs, out known))
        {
            return _probes.GetOrAdd(full, known);
        }

        // Two racing callers may both probe; the first result stored wins and both results agree anyway.
        Interlocked.Increment(ref _probeCount);
        DirectIoSupport probed = DirectIoProbe.Probe(full);
        if (!probed.IsConclusive)
        {
            return probed;
        }

        if (fileSystem is { } probedFs)
        {
            probed = _probesByFileSystem.GetOrAdd(probedFs, probed);
        }

        return _probes.GetOrAdd(full, probed);
    }

    /// <inheritdoc/>
    public IDirectFile Open(string path, FileCreation mode, DirectIoMode ioMode)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        IDirectFile file;
        if (IsNativeLinux)
        {
            file = OpenLinux(path, mode, ioMode);
        }
        else
        {
            if (ioMode == DirectIoMode.Required)
            {
                throw new StorageIOException(Errno.EINVAL, "open(O_DIRECT)", path,
                    "direct I/O is only implemented on Linux x86_64 and arm64");
            }

            file = new BufferedFile(path, mode);
        }

        return new SanitizingFile(file);
    }

    /// <inheritdoc/>
    public bool FileExists(string path) => File.Exists(path);

    /// <inheritdoc/>
    public void CreateDirectory(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        var missing = new List<string>();
        for (string? d = full; d is not null && !Directory.Exists(d); d = System.IO.Path.GetDirectoryName(d))
        {
            missing.Add(d);
        }

        _ = Directory.CreateDirectory(full);
        // Each new directory's entry lives in its parent: fsync the parents, deepest first.
        foreach (string created in missing)
        {
            SyncDirectory(System.IO.Path.GetDirectoryName(created)!);
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> ListFiles(string directory)
    {
        var names = new List<string>();
        foreach (string file in Directory.EnumerateFiles(directory))
        {
            names.Add(System.IO.Path.GetFileName(file));
        }

        names.Sort(StringComparer.Ordinal);
        return names;
    }

    /// <inheritdoc/>
    public void DeleteFile(string path)
    {
        if (IsNativeLinux)
        {
            if (LibC.Unlink(path) != 0 && LibC.LastErrno != Errno.ENOENT)
            {
                LibC.ThrowLastError("unlink", path);
            }
        }
        else
        {
            File.Delete(path);
        }
    }

    /// <inheritdoc/>
    public void RenameFile(string from, string to)
    {
        if (IsNativeLinux)
        {
            if (LibC.Rename(from, to) != 0)
            {
                LibC.ThrowLastError("rename", from);
            }
        }
        else
        {
            File.Move(from, to, overwrite: true);
        }
    }

    /// <inheritdoc/>
    public void SyncDirectory(string directory)
    {
        if (IsNativeLinux)
        {
            SyncDirectoryLinux(directory);
        }

        // Elsewhere .NET offers no directory fsync; namespace changes are as durable as the OS makes them.
    }

    /// <inheritdoc/>
    public IFileSystemSync? OpenFileSystemSync(string directory) =>
        IsNativeLinux && LibC.GetFileSystemId(directory) is { } fileSystem ? OpenFileSystemSyncLinux(directory, fileSystem) : null;

    /// <inheritdoc/>
    public IDisposable LockDirectory(string directory, string lockFileName)
    {
        string lockPath = System.IO.Path.Combine(directory, lockFileName);
        if (IsNativeLinux)
        {
            return LockDirectoryLinux(directory, lockPath);
        }

        try
        {
            // .NET takes an exclusive lock for FileShare.None (flock on Unix, share mode on Windows).
            return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex) when (ex is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new LogLockedException(directory);
        }
    }

    /// <inheritdoc/>
    public bool IsLockHeld(string directory, string lockFileName)
    {
        string lockPath = System.IO.Path.Combine(directory, lockFileName);
        if (IsNativeLinux)
        {
            return IsLockHeldLinux(lockPath);
        }

        try
        {
            using var probe = new FileStream(lockPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return false;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return false;
        }
        catch (IOException)
        {
            return true; // a sharing violation: the holder opened it with FileShare.None
        }
    }

    /// <inheritdoc/>
    public void WriteFileAtomic(string path, ReadOnlySpan<byte> contents)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(contents.Length, SmallFileSizeMax, nameof(contents));
        string temp = path + TempSuffix;
        if (IsNativeLinux)
        {
            WriteFileAtomicLinux(path, temp, contents);
            return;
        }

        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(contents);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }

    /// <inheritdoc/>
    public byte[]? ReadSmallFile(string path)
    {
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }

        using (handle)
        {
            long length = RandomAccess.GetLength(handle);
            if (length > SmallFileSizeMax)
            {
                throw new StorageIOException(Errno.EFBIG, "read", path,
                    $"{length} bytes is more than the {SmallFileSizeMax}-byte limit for metadata files");
            }

            byte[] contents = new byte[length];
            int total = 0;
            while (total < contents.Length)
            {
                int read = RandomAccess.Read(handle, contents.AsSpan(total), total);
                if (read == 0)
                {
                    break;
                }

                total += read;
            }

            return total == contents.Length ? contents : contents[..total];
        }
    }

    [DoesNotReturn]
    private static void ThrowLocked(string directory) => throw new LogLockedException(directory);
}
