using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using AppendLog.Raft.Core;

namespace AppendLog.Raft.Storage;

/// <summary>
/// The node's <see cref="HardState"/> in one small file, replaced atomically: write <c>hardstate.tmp</c>, fsync it,
/// rename it over <c>hardstate</c>, fsync the directory (without the last step the rename itself may be lost by a
/// power cut, and the vote with it). A reader therefore sees either the old or the new file, never a torn one; the
/// file also carries a CRC-32C so damage is reported, never mistaken for "term 0, no vote".
/// <para>
/// Only term and vote must be durable before acting (Raft §5.2, Figure 2). The commit index is stored with them but
/// a change of the commit index alone is not written: it costs two fsyncs and a rename per commit, and a restarted
/// node that remembers an older commit index only re-learns it from the leader (etcd persists it for the same
/// reason, as a hint). The stored commit index is always at or below the durable log, because the log is synced
/// before this store (the Ready contract).
/// </para>
/// Layout (little-endian, 36 bytes): magic u32 "ALHS", version u32 = 1, term i64, vote u64, commit i64, CRC-32C u32 of
/// the 32 bytes before it.
/// </summary>
internal sealed partial class FileHardStateStore : IHardStateStore
{
    public const string FileName = "hardstate";

    private const uint Magic = 0x53484C41; // "ALHS" read little-endian
    private const uint Version = 1;
    private const int FileSize = 36;

    private readonly string _path;
    private readonly string _tempPath;
    private readonly string _directory;
    private HardState _durable;
    private HardState _volatile;

    public FileHardStateStore(string directory)
    {
        _directory = directory;
        _path = Path.Combine(directory, FileName);
        _tempPath = _path + ".tmp";
        _durable = Read();
        _volatile = _durable;
    }

    /// <summary>How many times the file was replaced (for tests: commit-only changes do not count).</summary>
    public int WriteCount { get; private set; }

    public HardState Load() => _durable;

    public void Save(HardState state) => _volatile = state;

    public ValueTask SyncAsync(CancellationToken cancellationToken)
    {
        if (_volatile.Term != _durable.Term || _volatile.Vote != _durable.Vote)
        {
            Write(_volatile);
            _durable = _volatile;
        }

        return ValueTask.CompletedTask;
    }

    private HardState Read()
    {
        if (!File.Exists(_path))
        {
            return default;
        }

        var bytes = File.ReadAllBytes(_path);
        if (bytes.Length != FileSize
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes) != Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4)) != Version
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(32)) != Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, bytes.AsSpan(0, 32)))
        {
            throw new InvalidDataException($"The Raft hard state file '{_path}' is damaged; refusing to forget the term and vote.");
        }

        return new HardState(
            BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(8)),
            new RaftNodeId(BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(16))),
            BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(24)));
    }

    private void Write(HardState state)
    {
        var bytes = new byte[FileSize];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), Version);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8), state.Term);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(16), state.Vote.Value);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(24), state.Commit);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(32), Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, bytes.AsSpan(0, 32)));
        using (var file = new FileStream(_tempPath, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(bytes);
            file.Flush(flushToDisk: true);
        }

        File.Move(_tempPath, _path, overwrite: true);
        SyncDirectory(_directory);
        WriteCount++;
    }

    /// <summary>fsync(2) on the directory, so a rename in it is durable. .NET cannot open a directory as a file.</summary>
    internal static void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // The flag value below is Linux's; other systems are not supported by the core's I/O layer either.
        }

        const int ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY (Linux x64/arm64 value)
        var fd = Open(directory, ReadOnlyDirectory);
        if (fd < 0)
        {
            throw new IOException($"open('{directory}') for fsync failed: errno {Marshal.GetLastPInvokeError()}.");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync('{directory}') failed: errno {Marshal.GetLastPInvokeError()}.");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
