using AppendLog.Io;

namespace AppendLog.Segments;

/// <summary>
/// Writes a log's checkpoint file (<see cref="Checkpoint"/>): one record at a time (a record is written and synced
/// under this instance's lock), slots alternating by sequence number. The file is opened for each record and closed
/// after it (a record is written at most about once a second): an idle log holds no descriptor for it, which matters
/// with thousands of logs under one descriptor limit. A record prepared before
/// <see cref="Invalidate"/> was called is dropped instead of written: a truncation lowers the data, and a claim taken
/// before it may no longer hold.
/// </summary>
internal sealed class CheckpointFile : IDisposable
{
    private readonly Lock _lock = new();
    private readonly IStorage _storage;
    private readonly string _directory;
    private readonly string _path;
    private readonly byte[] _slot = new byte[Checkpoint.SlotSize];
    private bool _exists;
    private long _sequence;
    private long _generation;
    private bool _disposed;

    public CheckpointFile(IStorage storage, string directory, long lastSequence)
    {
        _storage = storage;
        _directory = directory;
        _path = Path.Combine(directory, Checkpoint.FileName);
        _sequence = lastSequence;
    }

    /// <summary>Bumped by <see cref="Invalidate"/>; a periodic record carries the generation it was taken in.</summary>
    public long Generation => Volatile.Read(ref _generation);

    /// <summary>Records written (for tests and the load generator).</summary>
    public long WriteCount { get; private set; }

    /// <summary>
    /// Reads the newest valid record of the checkpoint file in <paramref name="directory"/> (with the clean record's
    /// index), or null when there is none or the file is missing. Never throws for damage: a damaged checkpoint only
    /// means recovery scans without a floor.
    /// </summary>
    public static (CheckpointRecord Record, byte[]? Index)? Read(IStorage storage, string directory)
    {
        string path = Path.Combine(directory, Checkpoint.FileName);
        if (!storage.FileExists(path))
        {
            return null;
        }

        using var file = storage.Open(path, FileCreation.OpenExisting, DirectIoMode.Disabled);
        long length = file.Length;
        var slots = new byte[(int)Math.Min(length, Checkpoint.IndexStart)];
        ReadFully(file, slots, 0);
        if (Checkpoint.ReadSlots(slots) is not { } found)
        {
            return null;
        }

        if (!found.Clean)
        {
            return (found, null);
        }

        var clean = found;

        // The clean record's index follows the slots (a large segment with a small index interval can have a large
        // index: read only what the record names, and trust it only when it is all there).
        if (clean.IndexLength > 64 * 1024 * 1024 || length < Checkpoint.IndexStart + (long)clean.IndexLength)
        {
            return (clean with { Clean = false }, null);
        }

        var index = new byte[clean.IndexLength];
        ReadFully(file, index, Checkpoint.IndexStart);
        return (clean, index);
    }

    private static void ReadFully(IDirectFile file, Span<byte> buffer, long position)
    {
        while (!buffer.IsEmpty)
        {
            int n = file.Read(buffer, position);
            if (n <= 0)
            {
                buffer.Clear();
                return;
            }

            buffer = buffer[n..];
            position += n;
        }
    }

    /// <summary>
    /// Makes every earlier claim void before data is lowered (truncation, reset): writes a record that claims
    /// nothing, synced, and drops any record still being prepared from before this call.
    /// </summary>
    public void Invalidate()
    {
        lock (_lock)
        {
            _generation++;
            WriteUnderLock(CheckpointRecord.None, index: default);
        }
    }

    /// <summary>
    /// Writes a periodic claim taken in <paramref name="generation"/>; false when it was dropped because the data was
    /// lowered since (or the file is closed).
    /// </summary>
    public bool TryWriteClaim(long generation, long segmentBase, long size, long endOffset, long maxTimestampMs)
    {
        lock (_lock)
        {
            if (generation != _generation || _disposed)
            {
                return false;
            }

            WriteUnderLock(new CheckpointRecord(0, false, segmentBase, size, endOffset, maxTimestampMs, 0), index: default);
            return true;
        }
    }

    /// <summary>Writes the clean-close record: the segment holds exactly <paramref name="size"/> bytes, its index follows.</summary>
    public void WriteClean(long segmentBase, long size, long endOffset, long maxTimestampMs, ReadOnlySpan<byte> index)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            WriteUnderLock(new CheckpointRecord(0, true, segmentBase, size, endOffset, maxTimestampMs, index.Length), index);
        }
    }

    private void WriteUnderLock(CheckpointRecord record, ReadOnlySpan<byte> index)
    {
        bool created = !_exists && !_storage.FileExists(_path);
        using (var file = _storage.Open(_path, FileCreation.OpenOrCreate, DirectIoMode.Disabled))
        {
            record = record with { Sequence = ++_sequence };
            if (!index.IsEmpty)
            {
                // The index first: the slot names its length, and a slot that lands without its index fails the
                // index's own checksum at the next open (then the record is only a claim).
                file.Write(index, Checkpoint.IndexStart);
            }

            Checkpoint.Encode(record, _slot);
            file.Write(_slot, Checkpoint.SlotOf(record.Sequence));
            file.SyncData();
        }

        if (created)
        {
            _storage.SyncDirectory(_directory);
        }

        _exists = true;
        WriteCount++;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
        }
    }
}
