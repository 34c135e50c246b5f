namespace AppendLog.Io;

/// <summary>
/// The file-system seam: everything the log does to a directory goes through here, so that the
/// fault-injecting simulator (tests/AppendLog.Testing) can stand in for the kernel.
/// Paths are absolute or relative to the process; the log only ever passes paths it built itself.
/// </summary>
internal interface IStorage
{
    /// <summary>Opens (or creates) a data file. The returned file reports the mode it obtained.</summary>
    /// <param name="path">The file's path.</param>
    /// <param name="mode">Create or open.</param>
    /// <param name="ioMode">Whether O_DIRECT is required, preferred or disabled.</param>
    /// <exception cref="FileNotFoundException">Open of a missing file.</exception>
    /// <exception cref="IOException">Any other failure, with the errno in the message.</exception>
    IDirectFile Open(string path, FileCreation mode, DirectIoMode ioMode);

    /// <summary>
    /// What <paramref name="directory"/>'s file system offers: whether O_DIRECT works there and whether it is
    /// tmpfs. Probed once per directory and cached. The log reads it when it opens a directory, to report the mode
    /// it will obtain (property, log line, metric) and to warn about tmpfs, before any segment is opened.
    /// </summary>
    /// <param name="directory">An existing directory.</param>
    DirectIoSupport GetDirectIoSupport(string directory);

    /// <summary>True when the file exists.</summary>
    bool FileExists(string path);

    /// <summary>Creates the directory (and parents) if missing, then makes the entry durable.</summary>
    void CreateDirectory(string path);

    /// <summary>Names of the files (not directories) directly inside <paramref name="directory"/>.</summary>
    IReadOnlyList<string> ListFiles(string directory);

    /// <summary>Deletes a file; a missing file is not an error.</summary>
    void DeleteFile(string path);

    /// <summary>Atomically renames <paramref name="from"/> to <paramref name="to"/>, replacing it.</summary>
    void RenameFile(string from, string to);

    /// <summary>fsync(2) on the directory: makes creations, renames and deletions in it durable.</summary>
    void SyncDirectory(string directory);

    /// <summary>
    /// Opens a handle that syncs the whole file system holding <paramref name="directory"/> (syncfs(2)), or returns
    /// null where that is not offered (not Linux). One call then makes every completed write and namespace change of
    /// every file on that file system durable.
    /// </summary>
    /// <param name="directory">An existing directory.</param>
    IFileSystemSync? OpenFileSystemSync(string directory);

    /// <summary>
    /// Takes an exclusive advisory lock on the directory: on the file <paramref name="lockFileName"/> inside it (created
    /// when missing, never deleted). A log locks <see cref="LinuxStorage.LockFileName"/> in its own directory; a
    /// <see cref="LogManager"/> locks <see cref="LinuxStorage.ManagerLockFileName"/> in its root.
    /// </summary>
    /// <returns>The lock; disposing releases it.</returns>
    /// <exception cref="LogLockedException">Another process (or instance) holds it.</exception>
    IDisposable LockDirectory(string directory, string lockFileName);

    /// <summary>
    /// True when someone (another process or another instance in this one) holds a lock on the file
    /// <paramref name="lockFileName"/> in <paramref name="directory"/>; false when nobody does or the file does not exist
    /// (nothing is created). The check takes and drops a shared lock, so it can make a concurrent
    /// <see cref="LockDirectory"/> of the same file fail for that instant: callers that take a lock retry briefly.
    /// </summary>
    /// <exception cref="IOException">The lock file exists but cannot be opened or checked.</exception>
    bool IsLockHeld(string directory, string lockFileName);

    /// <summary>Writes a small metadata file atomically and durably (write temp, fsync, rename, fsync dir).</summary>
    void WriteFileAtomic(string path, ReadOnlySpan<byte> contents);

    /// <summary>Reads a whole small metadata file, or returns null when it does not exist.</summary>
    byte[]? ReadSmallFile(string path);
}

/// <summary>How <see cref="IStorage.Open"/> treats an existing or missing file.</summary>
internal enum FileCreation
{
    /// <summary>Open an existing file; fail when missing.</summary>
    OpenExisting,

    /// <summary>Create a new file; fail when it exists.</summary>
    CreateNew,

    /// <summary>Open the file, creating it when missing.</summary>
    OpenOrCreate,
}

/// <summary>A handle on one file system that makes everything written to it durable at once (syncfs(2)).</summary>
internal interface IFileSystemSync : IDisposable
{
    /// <summary>
    /// Every write completed and every namespace change made on the file system before the call is on stable storage
    /// when it returns (write-back, journal commit, device cache flush).
    /// </summary>
    /// <exception cref="IOException">EIO or another errno: what was written since the last success is in doubt.</exception>
    void Sync();

    /// <summary>True when <paramref name="directory"/> (existing) is on the file system this handle syncs.</summary>
    bool Covers(string directory);
}
