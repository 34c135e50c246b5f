using System.Buffers.Binary;
using System.IO.Hashing;
using AppendLog.Raft.Core;
namespace AppendLog.Raft.Storage;

/// <summary>
/// Assembles the image of a leader's snapshot from its chunks (the receiving half of InstallSnapshot with offset and
/// done, Raft paper §7). One image is assembled at a time, identified by the snapshot's (index, term), its length and
/// its sender (two leaders' images of one index hold the same state but not necessarily the same bytes):
/// <list type="table">
/// <listheader><term>chunk</term><description>action → answer</description></listheader>
/// <item><term>of another snapshot (or none yet), offset 0</term><description>start over with this one; write → bytes held</description></item>
/// <item><term>of another snapshot, offset &gt; 0</term><description>nothing → 0 (the leader restarts from the beginning)</description></item>
/// <item><term>offset ≤ bytes held</term><description>write it at its offset (a repeat rewrites the same bytes) → bytes held</description></item>
/// <item><term>offset &gt; bytes held (one was lost)</term><description>nothing → bytes held (the leader resends from there)</description></item>
/// <item><term>the image is whole</term><description>make it durable and hand it out → its length, and the image</description></item>
/// </list>
/// So a lost chunk, a duplicate, a reconnection or a leader that restarts its transfer all converge: the leader always
/// sends from the count the follower last answered. The file receiver also keeps a half-received image across a restart
/// of the member, from its last durable progress record (see <see cref="FileSnapshotReceiver"/>).
/// </summary>
internal abstract class SnapshotReceiver
{
    private (long Index, long Term, long Length, RaftNodeId Sender)? _current;
    private long _received;

    /// <summary>Bytes held of the image being assembled (tests).</summary>
    public long Received => _received;

    public (long Received, SnapshotImage? Image) Receive(
        SnapshotMetadata metadata, long length, long offset, ReadOnlySpan<byte> chunk, RaftNodeId sender = default)
    {
        if (length < 0 || offset < 0 || offset > length || chunk.Length > length - offset)
        {
            throw new InvalidDataException($"A snapshot chunk of {chunk.Length} bytes at {offset} does not fit an image of {length}.");
        }

        var key = (metadata.Index, metadata.Term, length, sender);
        if (_current != key)
        {
            if (offset != 0)
            {
                return (0, null);
            }

            Abandon();
            Begin(metadata.Index, metadata.Term, length, sender);
            _current = key;
            _received = 0;
        }

        if (offset > _received)
        {
            return (_received, null);
        }

        _received = Math.Max(_received, offset + chunk.Length);
        Write(offset, chunk, _received);
        if (_received < length)
        {
            return (_received, null);
        }

        var image = Complete(metadata.Index);
        Invariant.Assert(image.Length == length, "a completed image has the length the leader announced");
        _current = null;
        _received = 0;
        return (length, image);
    }

    /// <summary>Drops the image being assembled (at a crash in the simulator, or when another snapshot starts).</summary>
    public void Abandon()
    {
        if (_current is not null)
        {
            Discard();
            _current = null;
            _received = 0;
        }
    }

    /// <summary>Takes up an image half received before a restart: <paramref name="received"/> bytes of it are durable.</summary>
    protected void Resume(long index, long term, long length, RaftNodeId sender, long received)
    {
        Invariant.Assert(received >= 0 && received < length, "a resumed image is part received");
        _current = (index, term, length, sender);
        _received = received;
    }

    protected abstract void Begin(long index, long term, long length, RaftNodeId sender);

    /// <summary>Writes <paramref name="chunk"/> at <paramref name="offset"/>; the first <paramref name="received"/> bytes are then held.</summary>
    protected abstract void Write(long offset, ReadOnlySpan<byte> chunk, long received);

    /// <summary>The image is whole: make it durable and return it.</summary>
    protected abstract SnapshotImage Complete(long index);

    protected abstract void Discard();
}

/// <summary>Assembles images in memory (the simulator's <see cref="MemoryRaftLog"/>).</summary>
internal sealed class MemorySnapshotReceiver : SnapshotReceiver
{
    private byte[] _bytes = [];

    protected override void Begin(long index, long term, long length, RaftNodeId sender) => _bytes = new byte[checked((int)length)];

    protected override void Write(long offset, ReadOnlySpan<byte> chunk, long received) => chunk.CopyTo(_bytes.AsSpan((int)offset));

    protected override SnapshotImage Complete(long index)
    {
        var image = new MemorySnapshotImage(_bytes);
        _bytes = [];
        return image;
    }

    protected override void Discard() => _bytes = [];
}

/// <summary>
/// Assembles images in a file beside the snapshot file (<see cref="SnapshotFile.ReceiveFileName"/>): memory holds one
/// chunk at a time whatever the image's size. A whole image is fsynced and renamed to its place
/// (<see cref="SnapshotFile.Publish"/>, which fsyncs the directory), so a crash leaves either no image or a whole one.
/// <para>
/// Resumption across a restart: every <c>syncEveryBytes</c> the file is fdatasynced and then a progress record
/// (<see cref="SnapshotFile.ReceiveProgressFileName"/>) is replaced atomically, naming the snapshot (index, term, length,
/// sender) and how many bytes of the file are durable. A receiver created over a directory that holds a record and a
/// file at least that long takes the image up from there: the leader's next chunk is answered with that count, and the
/// leader sends from it. The record is deleted, and the directory synced, before a new image's file is created, so a
/// record never describes another image's bytes; it is deleted with the file when the image completes or is dropped.
/// Record layout (little-endian): magic u32 "ALSR", version u32 = 1, index i64, term i64, length i64, sender u64,
/// received i64, CRC-32C u32 of what precedes it.
/// </para>
/// </summary>
internal sealed class FileSnapshotReceiver : SnapshotReceiver
{
    /// <summary>Bytes written between fdatasyncs of the file being received: keeps the final sync (on the Raft loop) short,
    /// and is how much a restart may have to receive again.</summary>
    public const long DefaultSyncEveryBytes = 64L * 1024 * 1024;

    private const uint ProgressMagic = 0x52534C41; // "ALSR" read little-endian
    private const uint ProgressVersion = 1;
    private const int ProgressBytes = 4 + 4 + 8 + 8 + 8 + 8 + 8 + 4;

    private readonly string _directory;
    private readonly long _syncEveryBytes;
    private FileStream? _file;
    private (long Index, long Term, long Length, RaftNodeId Sender) _image;
    private long _unsyncedBytes;

    public FileSnapshotReceiver(string directory, long syncEveryBytes = DefaultSyncEveryBytes)
    {
        _directory = directory;
        _syncEveryBytes = syncEveryBytes;
        if (ReadProgress(directory) is { } progress && File.Exists(TempPath) && new FileInfo(TempPath).Length >= progress.Received)
        {
            _file = new FileStream(TempPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
            _image = (progress.Index, progress.Term, progress.Length, progress.Sender);
            Resume(progress.Index, progress.Term, progress.Length, progress.Sender, progress.Received);
        }
    }

    private string TempPath => Path.Combine(_directory, SnapshotFile.ReceiveFileName);

    private static string ProgressPath(string directory) => Path.Combine(directory, SnapshotFile.ReceiveProgressFileName);

    /// <summary>The progress record in <paramref name="directory"/>, or null when there is none or it is damaged.</summary>
    public static (long Index, long Term, long Length, RaftNodeId Sender, long Received)? ReadProgress(string directory)
    {
        var path = ProgressPath(directory);
        if (!File.Exists(path))
        {
            return null;
        }

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length != ProgressBytes
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes) != ProgressMagic
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4)) != ProgressVersion
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(ProgressBytes - 4)) != Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, bytes.AsSpan(0, ProgressBytes - 4)))
        {
            return null;
        }

        var index = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(8));
        var term = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(16));
        var length = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(24));
        var sender = new RaftNodeId(BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(32)));
        var received = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(40));
        return received > 0 && received < length ? (index, term, length, sender, received) : null;
    }

    protected override void Begin(long index, long term, long length, RaftNodeId sender)
    {
        DeleteProgress();
        _file = new FileStream(TempPath, FileMode.Create, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        _image = (index, term, length, sender);
        _unsyncedBytes = 0;
    }

    protected override void Write(long offset, ReadOnlySpan<byte> chunk, long received)
    {
        RandomAccess.Write(_file!.SafeFileHandle, chunk, offset);
        _unsyncedBytes += chunk.Length;
        if (_unsyncedBytes >= _syncEveryBytes && received < _image.Length)
        {
            _file.Flush(flushToDisk: true);
            _unsyncedBytes = 0;
            WriteProgress(received);
        }
    }

    protected override SnapshotImage Complete(long index)
    {
        _file!.Flush(flushToDisk: true);
        _file.Dispose();
        _file = null;
        var image = SnapshotFile.Publish(_directory, TempPath, index);
        File.Delete(ProgressPath(_directory));
        return image;
    }

    protected override void Discard()
    {
        _file?.Dispose();
        _file = null;
        File.Delete(TempPath);
        File.Delete(ProgressPath(_directory));
    }

    /// <summary>The member stops: close the file, keeping it and its progress record for the next start to resume.</summary>
    public void Close()
    {
        _file?.Dispose();
        _file = null;
    }

    /// <summary>Records that the first <paramref name="received"/> bytes of the file are durable (after its fdatasync).</summary>
    private void WriteProgress(long received)
    {
        var bytes = new byte[ProgressBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, ProgressMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), ProgressVersion);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8), _image.Index);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(16), _image.Term);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(24), _image.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(32), _image.Sender.Value);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(40), received);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(ProgressBytes - 4), Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, bytes.AsSpan(0, ProgressBytes - 4)));
        var path = ProgressPath(_directory);
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(bytes);
            file.Flush(flushToDisk: true);
        }

        // No directory sync: a rename lost at a crash leaves the previous record of this image (fewer bytes, all durable)
        // or none (start over). Both are safe.
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Deletes the record durably, so that it cannot survive a crash beside another image's bytes.</summary>
    private void DeleteProgress()
    {
        if (File.Exists(ProgressPath(_directory)))
        {
            File.Delete(ProgressPath(_directory));
            FileHardStateStore.SyncDirectory(_directory);
        }
    }
}
