using AppendLog.Io;
using AppendLog.Io.Interop;

namespace AppendLog.Testing;

/// <summary>
/// A deterministic, fault-injecting stand-in for the file system behind the <see cref="IStorage"/> seam
/// (in the spirit of TigerBeetle's src/testing/storage.zig). Synchronous and thread-safe: one lock serializes
/// every operation, so the appender may write from several threads and sync from another.
/// </summary>
/// <remarks>
/// <para><b>State.</b> Per file (an inode): a durable image and a volatile overlay of 512-byte sectors, plus a
/// durable and a volatile length (<see cref="SimulatedInode"/>). Per storage: a volatile namespace (what
/// <see cref="FileExists"/> and <see cref="ListFiles"/> see), a durable namespace, and per directory the list
/// of namespace operations (create, delete, rename) not yet made durable by <see cref="SyncDirectory"/>.
/// Directories themselves are durable at once (<see cref="CreateDirectory"/> promises that).</para>
/// <para><b>Determinism.</b> Faults drawn with a probability use <c>new Random(seed)</c> from the constructor;
/// <see cref="Crash"/> uses its own seed and visits directories, names and sectors in sorted order. The same
/// seed and the same sequence of calls give the same result; concurrent callers make the call order, and so
/// probabilistic faults, depend on scheduling — use <see cref="InjectError"/> (the N-th call) where that matters.</para>
/// <para><b>Fault model</b> (fault → how to cause it → what the simulator does → what the log must do):</para>
/// <code>
/// | Fault                 | Inject with                         | Simulator does                                           | Expected outcome in the log                                |
/// |-----------------------|-------------------------------------|----------------------------------------------------------|------------------------------------------------------------|
/// | Power cut             | Crash(seed)                         | returns a new storage holding only what survived; the    | reopen + recovery yields a prefix of the appends holding   |
/// |                       |                                     | old instance answers every later call with EIO           | every acknowledged record                                  |
/// | Lost / torn writes    | Crash(seed)                         | per file, unsynced sectors all kept, all dropped, or     | torn tail found by CRC/offset check and truncated; data    |
/// |                       |                                     | torn (each sector old or new independently); unsynced    | covered by a completed SyncData never lost                 |
/// |                       |                                     | growth of the length kept or lost (coin flip)            |                                                            |
/// | Lost namespace change | Crash(seed) before SyncDirectory    | per directory a random prefix of the pending creates,    | a segment whose creation was not dir-synced may vanish:    |
/// |                       |                                     | deletes and renames survives                             | sync the directory before acknowledging data in it         |
/// | EIO on write          | InjectError / SetErrorProbability   | a random subset of the write's sectors lands; throws     | log faults (LogFaultedException), never retries            |
/// | EIO on fdatasync      | InjectError / SetErrorProbability   | each dirty sector either reaches the disk or is "lost":  | log faults; nothing is acknowledged past the last sync     |
/// |                       |   (StorageOperation.SyncData)       | still readable, never written by a later sync, gone at   | that succeeded (Fsyncgate: a later sync succeeding proves  |
/// |                       |                                     | a crash; throws                                          | nothing)                                                   |
/// | ENOSPC on fallocate   | DiskFull = true                     | Allocate past the current end throws ENOSPC, no change   | LogDiskFullException; appends succeed after DiskFull=false |
/// | ENOSPC on write       | DiskFull = true, write past the end | throws ENOSPC, no change (writes inside allocated space  | log faults: the appender allocates before it writes, so    |
/// |                       |                                     | still succeed, as on a real disk)                        | this is a write into unreserved space                      |
/// | Bit flip (bit rot)    | FlipBit(path, position, bit)        | flips one bit of the durable image                       | LogCorruptedException naming file and position (not tail)  |
/// | Latency spike         | BeforeOperation hook                | runs the hook before taking the lock (sleep, barrier);   | only timing changes; writes may complete out of order      |
/// |                       |                                     | lets a test hold one write while others complete         |                                                            |
/// | Late completion       | AfterOperation hook (SyncData)      | the sync took effect (or failed); its return is held     | durability advances in sync start order: a later sync's    |
/// |                       |                                     | while later syncs complete and are reported first        | success reported first moves nothing past the held one     |
/// | Misaligned O_DIRECT   | (a bug)                             | EINVAL, as the kernel; SanitizingFile reports it first   | AppendLogInvariantException                                |
/// | Read error            | InjectError(StorageOperation.Read)  | throws, no change                                        | the read fails with the I/O error                          |
/// </code>
/// <para><b>Not modelled:</b> a sector rewritten twice between syncs surviving with its intermediate content
/// (we keep only old or newest); lengths torn independently of data beyond the coin flip; ENOSPC from
/// fdatasync of buffered delayed allocations (inject it with <see cref="InjectError"/>); cross-directory
/// renames (refused); hard links.</para>
/// </remarks>
internal sealed class SimulatedStorage : IStorage
{
    private readonly Lock _lock = new();
    private readonly Random _random;
    private readonly HashSet<string> _directories = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SimulatedInode> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SimulatedInode> _durableNames = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<DirectoryOperation>> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<StorageOperation, (int Countdown, Errno Errno)> _nthFaults = [];
    private readonly Dictionary<StorageOperation, (double Probability, Errno Errno)> _randomFaults = [];
    private readonly Dictionary<StorageOperation, long> _counts = [];
    private readonly HashSet<string> _locks = new(StringComparer.Ordinal);
    private long _inodeIdNext;
    private bool _crashed;
    private volatile bool _diskFull;

    /// <summary>Creates an empty storage (only the root directory exists).</summary>
    /// <param name="seed">Seeds every random choice of probabilistic faults.</param>
    /// <param name="supportsDirectIo">Whether opens with O_DIRECT succeed (false mimics a file system without it).</param>
    public SimulatedStorage(int seed, bool supportsDirectIo = true)
    {
        Seed = seed;
        SupportsDirectIo = supportsDirectIo;
        _random = new Random(seed);
        _ = _directories.Add("/");
    }

    /// <summary>The seed this storage was created with.</summary>
    public int Seed { get; }

    /// <summary>Whether opens with O_DIRECT succeed.</summary>
    public bool SupportsDirectIo { get; }

    /// <summary>What <see cref="GetDirectIoSupport"/> reports as <see cref="DirectIoSupport.IsTmpfs"/>, so tests can
    /// check that the log warns about tmpfs. It changes nothing else: the simulator never loses data on reboot.</summary>
    public bool IsTmpfs { get; init; }

    /// <summary>
    /// While true, allocations and writes that would grow a file fail with ENOSPC; writes inside a file's current
    /// size still succeed. Set it back to false to "free space". Survives <see cref="Crash"/>.
    /// </summary>
    public bool DiskFull
    {
        get => _diskFull;
        set => _diskFull = value;
    }

    /// <summary>
    /// Called with the operation and path before each file operation and directory sync, outside the lock: a
    /// test can delay or block one call (a latency spike, a write held back while later ones complete).
    /// </summary>
    public Action<StorageOperation, string>? BeforeOperation { get; set; }

    /// <summary>
    /// Called after an fdatasync took effect (or failed: the exception it is about to throw, else null), outside the
    /// lock, before the call returns: a test can hold a completion back while later operations complete and are
    /// reported first (a sync that failed reported after a later one that succeeded).
    /// </summary>
    public Action<StorageOperation, string, Exception?>? AfterOperation { get; set; }

    /// <summary>Makes the <paramref name="nth"/> next call (1 = the very next) of <paramref name="operation"/> fail.</summary>
    /// <param name="operation">The operation to fail.</param>
    /// <param name="nth">Which call from now, counting from 1.</param>
    /// <param name="errno">The error it fails with.</param>
    public void InjectError(StorageOperation operation, int nth, Errno errno = Errno.EIO)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(nth);
        lock (_lock)
        {
            _nthFaults[operation] = (nth, errno);
        }
    }

    /// <summary>Makes each call of <paramref name="operation"/> fail with probability <paramref name="probability"/>.</summary>
    /// <param name="operation">The operation to fail.</param>
    /// <param name="probability">In [0, 1]; 0 turns it off.</param>
    /// <param name="errno">The error it fails with.</param>
    public void SetErrorProbability(StorageOperation operation, double probability, Errno errno = Errno.EIO)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(probability, 0.0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(probability, 1.0);
        lock (_lock)
        {
            _randomFaults[operation] = (probability, errno);
        }
    }

    /// <summary>Removes every injected error (not <see cref="DiskFull"/>).</summary>
    public void ClearFaults()
    {
        lock (_lock)
        {
            _nthFaults.Clear();
            _randomFaults.Clear();
        }
    }

    /// <summary>How many times <paramref name="operation"/> was called (faulted calls included).</summary>
    /// <returns>The count.</returns>
    public long GetOperationCount(StorageOperation operation)
    {
        lock (_lock)
        {
            return _counts.GetValueOrDefault(operation);
        }
    }

    /// <summary>Flips bit <paramref name="bit"/> (0 = least significant) of the durable byte at <paramref name="position"/>.</summary>
    /// <param name="path">An existing file.</param>
    /// <param name="position">A byte position below the file's durable length.</param>
    /// <param name="bit">The bit, 0 to 7.</param>
    public void FlipBit(string path, long position, int bit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfNegative(bit);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bit, 7);
        lock (_lock)
        {
            Inode(path).FlipDurableBit(position, bit);
        }
    }

    /// <summary>The durable content of a file (what a crash would keep for sure).</summary>
    /// <returns>A copy of the durable image.</returns>
    public byte[] GetDurableImage(string path)
    {
        lock (_lock)
        {
            return Inode(path).DurableImage();
        }
    }

    /// <summary>The volatile content of a file (what reads see now).</summary>
    /// <returns>A copy of the volatile image.</returns>
    public byte[] GetVolatileImage(string path)
    {
        lock (_lock)
        {
            return Inode(path).VolatileImage();
        }
    }

    /// <summary>
    /// Simulates a power cut: returns a new storage holding what survived, chosen from <paramref name="seed"/> as
    /// the fault model describes. This instance is dead afterwards: every call on it or its files throws EIO.
    /// The new storage keeps <see cref="SupportsDirectIo"/> and <see cref="DiskFull"/>; injected errors, locks
    /// and the hook are gone with the process.
    /// </summary>
    /// <param name="seed">Seeds the choices; the new storage's own faults are seeded with it too.</param>
    /// <returns>The storage after reboot.</returns>
    public SimulatedStorage Crash(int seed)
    {
        lock (_lock)
        {
            ThrowIfCrashed("crash");
            _crashed = true;
            var random = new Random(seed);
            var names = new Dictionary<string, SimulatedInode>(_durableNames, StringComparer.Ordinal);
            foreach (string directory in _pending.Keys.Order(StringComparer.Ordinal))
            {
                List<DirectoryOperation> operations = _pending[directory];
                int survivors = random.Next(operations.Count + 1);
                foreach (DirectoryOperation operation in operations.Take(survivors))
                {
                    operation.ApplyTo(names);
                }
            }

            var next = new SimulatedStorage(seed, SupportsDirectIo) { DiskFull = DiskFull, IsTmpfs = IsTmpfs };
            next._directories.UnionWith(_directories);
            var crashed = new Dictionary<SimulatedInode, SimulatedInode>(ReferenceEqualityComparer.Instance);
            foreach ((string name, SimulatedInode inode) in names.OrderBy(static p => p.Key, StringComparer.Ordinal))
            {
                if (!crashed.TryGetValue(inode, out SimulatedInode? survivor))
                {
                    survivor = inode.Crash(next._inodeIdNext++, random);
                    crashed[inode] = survivor;
                }

                next._names[name] = survivor;
                next._durableNames[name] = survivor;
            }

            return next;
        }
    }

    /// <inheritdoc/>
    public IDirectFile Open(string path, FileCreation mode, DirectIoMode ioMode)
    {
        string full = Normalize(path);
        lock (_lock)
        {
            ThrowIfCrashed(full);
            string directory = DirectoryOf(full);
            if (!_directories.Contains(directory))
            {
                throw NotFound("open", full);
            }

            bool exists = _names.TryGetValue(full, out SimulatedInode? inode);
            if (mode == FileCreation.OpenExisting && !exists)
            {
                throw NotFound("open", full);
            }

            if (mode == FileCreation.CreateNew && exists)
            {
                throw new StorageIOException(Errno.EEXIST, "open", full, "simulated");
            }

            bool direct = ioMode != DirectIoMode.Disabled && SupportsDirectIo;
            if (ioMode == DirectIoMode.Required && !SupportsDirectIo)
            {
                throw new StorageIOException(Errno.EINVAL, "open(O_DIRECT)", full, "simulated file system refuses O_DIRECT");
            }

            if (inode is null)
            {
                ThrowIfFault(StorageOperation.Create, full);
                inode = new SimulatedInode(_inodeIdNext++);
                _names[full] = inode;
                AddPending(directory, DirectoryOperation.Create(full, inode));
            }

            return new SanitizingFile(new SimulatedFile(this, inode, full, direct));
        }
    }

    /// <inheritdoc/>
    /// <remarks>Answers from <see cref="SupportsDirectIo"/> and <see cref="IsTmpfs"/>; no probe file is created.</remarks>
    public DirectIoSupport GetDirectIoSupport(string directory)
    {
        string full = Normalize(directory);
        lock (_lock)
        {
            ThrowIfCrashed(full);
            if (!_directories.Contains(full))
            {
                throw new DirectoryNotFoundException($"Simulated directory '{full}' does not exist.");
            }

            return new DirectIoSupport(SupportsDirectIo, IsTmpfs, SupportsDirectIo ? null : "EINVAL (22) (simulated)");
        }
    }

    /// <inheritdoc/>
    public bool FileExists(string path)
    {
        lock (_lock)
        {
            ThrowIfCrashed(path);
            return _names.ContainsKey(Normalize(path));
        }
    }

    /// <inheritdoc/>
    public void CreateDirectory(string path)
    {
        lock (_lock)
        {
            ThrowIfCrashed(path);
            for (string? d = Normalize(path); d is not null && d != "/"; d = Path.GetDirectoryName(d))
            {
                _ = _directories.Add(d);
            }
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> ListFiles(string directory)
    {
        string full = Normalize(directory);
        lock (_lock)
        {
            ThrowIfCrashed(full);
            if (!_directories.Contains(full))
            {
                throw new DirectoryNotFoundException($"Simulated directory '{full}' does not exist.");
            }

            return _names.Keys.Where(n => DirectoryOf(n) == full).Select(Path.GetFileName).OfType<string>()
                .Order(StringComparer.Ordinal).ToList();
        }
    }

    /// <inheritdoc/>
    public void DeleteFile(string path)
    {
        string full = Normalize(path);
        BeforeOperation?.Invoke(StorageOperation.Delete, full);
        lock (_lock)
        {
            ThrowIfCrashed(full);
            if (_names.Remove(full))
            {
                AddPending(DirectoryOf(full), DirectoryOperation.Delete(full));
            }
        }
    }

    /// <inheritdoc/>
    public void RenameFile(string from, string to)
    {
        string source = Normalize(from);
        string target = Normalize(to);
        BeforeOperation?.Invoke(StorageOperation.Rename, source);
        lock (_lock)
        {
            ThrowIfCrashed(source);
            if (DirectoryOf(source) != DirectoryOf(target))
            {
                throw new NotSupportedException("The simulator models renames within one directory only.");
            }

            if (!_names.Remove(source, out SimulatedInode? inode))
            {
                throw NotFound("rename", source);
            }

            _names[target] = inode;
            AddPending(DirectoryOf(target), DirectoryOperation.Rename(source, target, inode));
        }
    }

    /// <inheritdoc/>
    public void SyncDirectory(string directory)
    {
        string full = Normalize(directory);
        BeforeOperation?.Invoke(StorageOperation.SyncDirectory, full);
        lock (_lock)
        {
            ThrowIfCrashed(full);
            ThrowIfFault(StorageOperation.SyncDirectory, full);
            if (_pending.Remove(full, out List<DirectoryOperation>? operations))
            {
                foreach (DirectoryOperation operation in operations)
                {
                    operation.ApplyTo(_durableNames);
                }
            }
        }
    }

    /// <summary>Whether <see cref="OpenFileSystemSync"/> offers a handle (false mimics a platform without syncfs).</summary>
    public bool SupportsFileSystemSync { get; init; } = true;

    /// <inheritdoc/>
    public IFileSystemSync? OpenFileSystemSync(string directory)
    {
        string full = Normalize(directory);
        lock (_lock)
        {
            ThrowIfCrashed(full);
            if (!_directories.Contains(full))
            {
                throw NotFound("open", full);
            }
        }

        return SupportsFileSystemSync ? new FileSystemSyncHandle(this) : null;
    }

    /// <summary>
    /// syncfs: every file's overlay and length become durable and every directory's pending namespace changes apply,
    /// as <see cref="FileSync"/> and <see cref="SyncDirectory"/> on everything. An injected failure fails every dirty
    /// file's sync the way a failed fdatasync does (each dirty sector reached the disk or is lost) and applies no
    /// namespace change.
    /// </summary>
    internal void FileSystemSync()
    {
        BeforeOperation?.Invoke(StorageOperation.SyncFileSystem, "/");
        Exception? failure = null;
        lock (_lock)
        {
            ThrowIfCrashed("/");
            var inodes = _names.Values.Distinct().OrderBy(static inode => inode.Id).ToList();
            if (NextFault(StorageOperation.SyncFileSystem) is { } errno)
            {
                foreach (SimulatedInode inode in inodes)
                {
                    inode.FailSync(_random);
                }

                failure = Injected(errno, "syncfs", "/");
            }
            else
            {
                foreach (SimulatedInode inode in inodes)
                {
                    inode.Sync();
                }

                foreach (List<DirectoryOperation> operations in _pending.OrderBy(static p => p.Key, StringComparer.Ordinal).Select(static p => p.Value))
                {
                    foreach (DirectoryOperation operation in operations)
                    {
                        operation.ApplyTo(_durableNames);
                    }
                }

                _pending.Clear();
            }
        }

        AfterOperation?.Invoke(StorageOperation.SyncFileSystem, "/", failure);
        if (failure is not null)
        {
            throw failure;
        }
    }

    private sealed class FileSystemSyncHandle(SimulatedStorage storage) : IFileSystemSync
    {
        public void Sync() => storage.FileSystemSync();

        public bool Covers(string directory) => true;

        public void Dispose()
        {
        }
    }

    /// <inheritdoc/>
    public IDisposable LockDirectory(string directory, string lockFileName)
    {
        string full = Normalize(directory);
        lock (_lock)
        {
            ThrowIfCrashed(full);
            string lockPath = Path.Combine(full, lockFileName);
            if (!_directories.Contains(full))
            {
                throw NotFound("open", lockPath);
            }

            if (!_names.ContainsKey(lockPath))
            {
                var inode = new SimulatedInode(_inodeIdNext++);
                _names[lockPath] = inode;
                AddPending(full, DirectoryOperation.Create(lockPath, inode));
            }

            if (!_locks.Add(lockPath))
            {
                throw new LogLockedException(directory);
            }

            return new DirectoryLock(this, lockPath);
        }
    }

    /// <inheritdoc/>
    public bool IsLockHeld(string directory, string lockFileName)
    {
        string lockPath = Path.Combine(Normalize(directory), lockFileName);
        lock (_lock)
        {
            return _locks.Contains(lockPath);
        }
    }

    /// <inheritdoc/>
    public void WriteFileAtomic(string path, ReadOnlySpan<byte> contents)
    {
        string full = Normalize(path);
        string temp = full + LinuxStorage.TempSuffix;
        DeleteFile(temp);
        using (IDirectFile file = Open(temp, FileCreation.CreateNew, DirectIoMode.Disabled))
        {
            file.Write(contents, 0);
            file.SyncData();
        }

        RenameFile(temp, full);
        SyncDirectory(DirectoryOf(full));
    }

    /// <inheritdoc/>
    public byte[]? ReadSmallFile(string path)
    {
        string full = Normalize(path);
        lock (_lock)
        {
            ThrowIfCrashed(full);
            return _names.TryGetValue(full, out SimulatedInode? inode) ? inode.VolatileImage() : null;
        }
    }

    /// <summary>The volatile length of <paramref name="file"/>.</summary>
    internal long FileLength(SimulatedFile file)
    {
        lock (_lock)
        {
            Check(file);
            return file.Inode.VolatileLength;
        }
    }

    /// <summary>A write through <paramref name="file"/>, with faults applied.</summary>
    internal void FileWrite(SimulatedFile file, ReadOnlySpan<byte> buffer, long position)
    {
        BeforeOperation?.Invoke(StorageOperation.Write, file.Path);
        lock (_lock)
        {
            Check(file);
            if (NextFault(StorageOperation.Write) is { } errno)
            {
                if (errno != Errno.ENOSPC)
                {
                    file.Inode.Write(buffer, position, () => _random.Next(2) == 0);
                }

                throw Injected(errno, "pwrite", file.Path);
            }

            if (DiskFull && position + buffer.Length > file.Inode.VolatileLength)
            {
                throw new StorageIOException(Errno.ENOSPC, "pwrite", file.Path, "simulated disk full");
            }

            file.Inode.Write(buffer, position);
        }
    }

    /// <summary>A read through <paramref name="file"/>, with faults applied.</summary>
    internal int FileRead(SimulatedFile file, Span<byte> buffer, long position)
    {
        BeforeOperation?.Invoke(StorageOperation.Read, file.Path);
        lock (_lock)
        {
            Check(file);
            ThrowIfFault(StorageOperation.Read, file.Path);
            return file.Inode.Read(buffer, position);
        }
    }

    /// <summary>fallocate through <paramref name="file"/> up to <paramref name="end"/>, with faults applied.</summary>
    internal void FileAllocate(SimulatedFile file, long end)
    {
        BeforeOperation?.Invoke(StorageOperation.Allocate, file.Path);
        lock (_lock)
        {
            Check(file);
            ThrowIfFault(StorageOperation.Allocate, file.Path);
            if (DiskFull && end > file.Inode.VolatileLength)
            {
                throw new StorageIOException(Errno.ENOSPC, "fallocate", file.Path, "simulated disk full");
            }

            file.Inode.Grow(end);
        }
    }

    /// <summary>fdatasync through <paramref name="file"/>, with faults applied.</summary>
    internal void FileSync(SimulatedFile file)
    {
        BeforeOperation?.Invoke(StorageOperation.SyncData, file.Path);
        Exception? failure = null;
        lock (_lock)
        {
            Check(file);
            if (NextFault(StorageOperation.SyncData) is { } errno)
            {
                file.Inode.FailSync(_random);
                failure = Injected(errno, "fdatasync", file.Path);
            }
            else
            {
                file.Inode.Sync();
            }
        }

        AfterOperation?.Invoke(StorageOperation.SyncData, file.Path, failure);
        if (failure is not null)
        {
            throw failure;
        }
    }

    /// <summary>ftruncate + fsync through <paramref name="file"/>, with faults applied.</summary>
    internal void FileTruncate(SimulatedFile file, long length)
    {
        BeforeOperation?.Invoke(StorageOperation.Truncate, file.Path);
        lock (_lock)
        {
            Check(file);
            ThrowIfFault(StorageOperation.Truncate, file.Path);
            file.Inode.TruncateDurably(length);
        }
    }

    private static string Normalize(string path)
    {
        string full = Path.GetFullPath(path);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }

    private static string DirectoryOf(string fullPath) => Path.GetDirectoryName(fullPath) ?? "/";

    private static FileNotFoundException NotFound(string operation, string path) =>
        new($"{operation} failed: simulated '{path}' does not exist.", path) { HResult = (int)Errno.ENOENT };

    private static StorageIOException Injected(Errno errno, string operation, string path) =>
        new(errno, operation, path, "injected by the simulator");

    private SimulatedInode Inode(string path)
    {
        ThrowIfCrashed(path);
        string full = Normalize(path);
        return _names.TryGetValue(full, out SimulatedInode? inode) ? inode : throw NotFound("inspect", full);
    }

    private void AddPending(string directory, DirectoryOperation operation)
    {
        if (!_pending.TryGetValue(directory, out List<DirectoryOperation>? operations))
        {
            operations = [];
            _pending[directory] = operations;
        }

        operations.Add(operation);
    }

    private void Check(SimulatedFile file)
    {
        ThrowIfCrashed(file.Path);
        file.ThrowIfClosed();
    }

    private void ThrowIfCrashed(string path)
    {
        if (_crashed)
        {
            throw new StorageIOException(Errno.EIO, "simulated I/O", path, "the storage crashed; use the instance Crash returned");
        }
    }

    private void ThrowIfFault(StorageOperation operation, string path)
    {
        if (NextFault(operation) is { } errno)
        {
            throw Injected(errno, operation.ToString(), path);
        }
    }

    private Errno? NextFault(StorageOperation operation)
    {
        _counts[operation] = _counts.GetValueOrDefault(operation) + 1;
        if (_nthFaults.TryGetValue(operation, out (int Countdown, Errno Errno) nth))
        {
            if (nth.Countdown == 1)
            {
                _ = _nthFaults.Remove(operation);
                return nth.Errno;
            }

            _nthFaults[operation] = (nth.Countdown - 1, nth.Errno);
        }

        if (_randomFaults.TryGetValue(operation, out (double Probability, Errno Errno) random)
            && random.Probability > 0
            && _random.NextDouble() < random.Probability)
        {
            return random.Errno;
        }

        return null;
    }

    private void Unlock(string lockPath)
    {
        lock (_lock)
        {
            _ = _locks.Remove(lockPath);
        }
    }

    /// <summary>A namespace change waiting for its directory's sync.</summary>
    private sealed record DirectoryOperation(string Path, string? From, SimulatedInode? Inode)
    {
        public static DirectoryOperation Create(string path, SimulatedInode inode) => new(path, null, inode);

        public static DirectoryOperation Delete(string path) => new(path, null, null);

        public static DirectoryOperation Rename(string from, string to, SimulatedInode inode) => new(to, from, inode);

        public void ApplyTo(Dictionary<string, SimulatedInode> names)
        {
            if (From is not null)
            {
                _ = names.Remove(From);
            }

            if (Inode is null)
            {
                _ = names.Remove(Path);
            }
            else
            {
                names[Path] = Inode;
            }
        }
    }

    private sealed class DirectoryLock(SimulatedStorage storage, string lockPath) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                storage.Unlock(lockPath);
            }
        }
    }
}
