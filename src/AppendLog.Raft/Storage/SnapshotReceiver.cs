using AppendLog.Raft.Core;
namespace AppendLog.Raft.Storage;

/// <summary>
/// Assembles the image of a leader's snapshot from its chunks (the receiving half of InstallSnapshot with offset and
/// done, Raft paper §7). One image is assembled at a time, identified by the snapshot's (index, term) and length:
/// <list type="table">
/// <listheader><term>chunk</term><description>action → answer</description></listheader>
/// <item><term>of another snapshot (or none yet), offset 0</term><description>start over with this one; write → bytes held</description></item>
/// <item><term>of another snapshot, offset &gt; 0</term><description>nothing → 0 (the leader restarts from the beginning)</description></item>
/// <item><term>offset ≤ bytes held</term><description>write it at its offset (a repeat rewrites the same bytes) → bytes held</description></item>
/// <item><term>offset &gt; bytes held (one was lost)</term><description>nothing → bytes held (the leader resends from there)</description></item>
/// <item><term>the image is whole</term><description>make it durable and hand it out → its length, and the image</description></item>
/// </list>
/// So a lost chunk, a duplicate, a reconnection or a leader that restarts its transfer all converge: the leader always
/// sends from the count the follower last answered. An image half received when the member stops is discarded.
/// </summary>
internal abstract class SnapshotReceiver
{
    private (long Index, long Term, long Length)? _current;
    private long _received;

    /// <summary>Bytes held of the image being assembled (tests).</summary>
    public long Received => _received;

    public (long Received, SnapshotImage? Image) Receive(SnapshotMetadata metadata, long length, long offset, ReadOnlySpan<byte> chunk)
    {
        if (length < 0 || offset < 0 || offset > length || chunk.Length > length - offset)
        {
            throw new InvalidDataException($"A snapshot chunk of {chunk.Length} bytes at {offset} does not fit an image of {length}.");
        }

        var key = (metadata.Index, metadata.Term, length);
        if (_current != key)
        {
            if (offset != 0)
            {
                return (0, null);
            }

            Abandon();
            Begin(metadata.Index, length);
            _current = key;
            _received = 0;
        }

        if (offset > _received)
        {
            return (_received, null);
        }

        Write(offset, chunk);
        _received = Math.Max(_received, offset + chunk.Length);
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

    protected abstract void Begin(long index, long length);

    protected abstract void Write(long offset, ReadOnlySpan<byte> chunk);

    /// <summary>The image is whole: make it durable and return it.</summary>
    protected abstract SnapshotImage Complete(long index);

    protected abstract void Discard();
}

/// <summary>Assembles images in memory (the simulator's <see cref="MemoryRaftLog"/>).</summary>
internal sealed class MemorySnapshotReceiver : SnapshotReceiver
{
    private byte[] _bytes = [];

    protected override void Begin(long index, long length) => _bytes = new byte[checked((int)length)];

    protected override void Write(long offset, ReadOnlySpan<byte> chunk) => chunk.CopyTo(_bytes.AsSpan((int)offset));

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
/// </summary>
internal sealed class FileSnapshotReceiver(string directory) : SnapshotReceiver
{
    /// <summary>Bytes written between fdatasyncs of the file being received: keeps the final sync (on the Raft loop) short.</summary>
    private const long SyncEveryBytes = 64L * 1024 * 1024;

    private FileStream? _file;
    private long _unsyncedBytes;

    private string TempPath => Path.Combine(directory, SnapshotFile.ReceiveFileName);

    protected override void Begin(long index, long length)
    {
        _file = new FileStream(TempPath, FileMode.Create, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        _unsyncedBytes = 0;
    }

    protected override void Write(long offset, ReadOnlySpan<byte> chunk)
    {
        RandomAccess.Write(_file!.SafeFileHandle, chunk, offset);
        _unsyncedBytes += chunk.Length;
        if (_unsyncedBytes >= SyncEveryBytes)
        {
            _file.Flush(flushToDisk: true);
            _unsyncedBytes = 0;
        }
    }

    protected override SnapshotImage Complete(long index)
    {
        _file!.Flush(flushToDisk: true);
        _file.Dispose();
        _file = null;
        return SnapshotFile.Publish(directory, TempPath, index);
    }

    protected override void Discard()
    {
        _file?.Dispose();
        _file = null;
        File.Delete(TempPath);
    }
}
