using System.Buffers.Binary;
using System.IO.Hashing;
using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;

namespace AppendLog.Raft.Storage;

/// <summary>
/// The snapshot kept beside the log: what it covers (index, term, membership), the offset at which the entries after it
/// begin in the SegmentedLog, and the application's state-machine image. Batches the snapshot covers may stay on disk
/// until their whole segment is below it (prefix truncation deletes whole segments); the adapter skips them at open.
/// Replaced atomically like the hard state (temp file, fsync, rename, directory fsync).
/// <para>
/// <see cref="Flags.ResetPending"/> marks a snapshot installed from the leader whose log reset
/// (<see cref="SegmentedLog.ResetAsync"/>) may not have finished: it is written before the reset and rewritten without
/// the flag after it, and an adapter that opens with the flag set repeats the reset first. That makes the install
/// all-or-nothing although a crash in the middle of the reset leaves part of the old log.
/// </para>
/// <para>
/// <see cref="Flags.ExternalData"/> marks a snapshot whose image is a file of its own beside this one
/// (<see cref="DataFileName"/>, named by the snapshot's index): a <see cref="ReplicatedLog"/>'s images are written there
/// by the state machine (taken) or chunk by chunk from the leader (received), fsynced and renamed into place before
/// this file names them, so this file stays small and an image is bounded by the disk, not by memory. Older images are
/// deleted once a newer snapshot is recorded (a reader holding one open keeps reading it).
/// </para>
/// <para>Layout (little-endian): magic u32 "ALSN", version u32 = 4, flags u32 (versions 2 and later), index i64, term i64,
/// endOffset i64, voters i32 + u64 each, learners i32 + u64 each, member addresses i32 + (u64 id, u16 length, UTF-8
/// bytes) each (version 4), then the data: with <see cref="Flags.ExternalData"/> its length i64 (version 3 and later),
/// otherwise its length i32 + bytes; then CRC-32C u32 of everything before it. Version 1 files (no flags), version 2
/// files (inline data) and version 3 files (no addresses) are still read.</para>
/// </summary>
internal static class SnapshotFile
{
    public const string FileName = "snapshot";

    private const uint Magic = 0x4E534C41; // "ALSN" read little-endian
    private const uint Version = 4;

    /// <summary>Where an image being received from the leader is assembled (one at a time; discarded at open).</summary>
    public const string ReceiveFileName = "snapshot-recv.tmp";

    /// <summary>How much of the image being received is durable, for resuming it after a restart (see FileSnapshotReceiver).</summary>
    public const string ReceiveProgressFileName = "snapshot-recv.progress";

    /// <summary>Where an image being taken from the state machine is written (discarded at open).</summary>
    public const string TakeFileName = "snapshot-take.tmp";

    private const string DataFilePrefix = "snapshot-";
    private const string DataFileSuffix = ".data";

    [Flags]
    public enum Flags : uint
    {
        None = 0,

        /// <summary>Installed from the leader; the log's reset to the end offset may be unfinished.</summary>
        ResetPending = 1,

        /// <summary>The image is in its own file (<see cref="DataFileName"/>), not in this one.</summary>
        ExternalData = 2,
    }

    /// <summary>The name of the image file of the snapshot at <paramref name="index"/> (a committed index names one state).</summary>
    public static string DataFileName(long index) => $"{DataFilePrefix}{index:D20}{DataFileSuffix}";

    public static string DataPath(string directory, long index) => Path.Combine(directory, DataFileName(index));

    /// <summary>Renames a finished image file (fsynced by the caller) to its place for <paramref name="index"/>, durably.</summary>
    public static FileSnapshotImage Publish(string directory, string tempPath, long index)
    {
        var path = DataPath(directory, index);
        File.Move(tempPath, path, overwrite: true);
        FileHardStateStore.SyncDirectory(directory);
        return new FileSnapshotImage(path);
    }

    /// <summary>
    /// Deletes image files no snapshot file names any more: those below <paramref name="keepFromIndex"/>, and (at open,
    /// <paramref name="atOpen"/>) every one but <paramref name="keepFromIndex"/>'s and the half-written temp files.
    /// </summary>
    public static void DeleteStaleImages(string directory, long keepFromIndex, bool atOpen)
    {
        foreach (var path in Directory.EnumerateFiles(directory, DataFilePrefix + "*"))
        {
            var name = Path.GetFileName(path);
            if (name == ReceiveProgressFileName + ".tmp")
            {
                if (atOpen)
                {
                    File.Delete(path); // a record being written when the member stopped
                }

                continue;
            }

            if (name is ReceiveFileName or TakeFileName or ReceiveProgressFileName)
            {
                // A half-received image is kept at open when its progress record names a snapshot past ours: the
                // receiver resumes it. Anything else half made is discarded.
                if (atOpen && !(name is ReceiveFileName or ReceiveProgressFileName
                    && FileSnapshotReceiver.ReadProgress(directory) is { } progress && progress.Index > keepFromIndex))
                {
                    File.Delete(path);
                }

                continue;
            }

            if (!name.EndsWith(DataFileSuffix, StringComparison.Ordinal)
                || !long.TryParse(name.AsSpan(DataFilePrefix.Length, name.Length - DataFilePrefix.Length - DataFileSuffix.Length), out var index))
            {
                continue;
            }

            if (index < keepFromIndex || (atOpen && index != keepFromIndex))
            {
                File.Delete(path);
            }
        }
    }

    public static void Write(string directory, RaftSnapshot snapshot, long endOffset, Flags flags = Flags.None)
    {
        var config = snapshot.Metadata.Config;
        var external = snapshot.Data as FileSnapshotImage;
        if (external is not null)
        {
            Invariant.Assert(external.Path == DataPath(directory, snapshot.Index), "an image file sits beside its snapshot file, named by its index");
            flags |= Flags.ExternalData;
        }

        var inline = external is null ? ((MemorySnapshotImage)snapshot.Data).Bytes : ReadOnlyMemory<byte>.Empty;
        var dataBytes = external is null ? 4 + inline.Length : 8;
        var addresses = config.Addresses.Select(a => (a.Key, Bytes: System.Text.Encoding.UTF8.GetBytes(a.Value))).ToList();
        var addressBytes = 4 + addresses.Sum(a => 8 + 2 + a.Bytes.Length);
        var size = 4 + 4 + 4 + 8 + 8 + 8 + 4 + (8 * config.Voters.Count) + 4 + (8 * config.Learners.Count) + addressBytes + dataBytes + 4;
        var bytes = new byte[size];
        var position = 0;
        void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(position), v); position += 4; }
        void I64(long v) { BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(position), v); position += 8; }
        U32(Magic);
        U32(Version);
        U32((uint)flags);
        I64(snapshot.Index);
        I64(snapshot.Term);
        I64(endOffset);
        foreach (var ids in new[] { config.Voters, config.Learners })
        {
            U32((uint)ids.Count);
            foreach (var id in ids)
            {
                I64((long)id.Value);
            }
        }

        U32((uint)addresses.Count);
        foreach (var (id, address) in addresses)
        {
            I64((long)id.Value);
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(position), (ushort)address.Length);
            position += 2;
            address.CopyTo(bytes, position);
            position += address.Length;
        }

        if (external is not null)
        {
            I64(external.Length);
        }
        else
        {
            U32((uint)inline.Length);
            inline.Span.CopyTo(bytes.AsSpan(position));
            position += inline.Length;
        }

        U32(Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, bytes.AsSpan(0, position)));
        Invariant.Assert(position == size, "the snapshot file is written in exactly its computed size");

        var path = Path.Combine(directory, FileName);
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(bytes);
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        FileHardStateStore.SyncDirectory(directory);
        DeleteStaleImages(directory, snapshot.Index, atOpen: false);
    }

    /// <summary>Reads the snapshot and the offset where the entries after it begin; null when there is none.</summary>
    /// <exception cref="InvalidDataException">The file is damaged.</exception>
    public static (RaftSnapshot Snapshot, long EndOffset, Flags Flags)? Read(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 48
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes) != Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4)) is not (1 or 2 or 3 or Version)
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4)) != Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, bytes.AsSpan(0, bytes.Length - 4)))
        {
            throw new InvalidDataException($"The Raft snapshot file '{path}' is damaged.");
        }

        var version = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4));
        var flags = version >= 2 ? (Flags)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)) : Flags.None;
        var position = version >= 2 ? 12 : 8;
        long I64() { var v = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(position)); position += 8; return v; }
        int Count() { var v = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(position)); position += 4; return v; }
        var index = I64();
        var term = I64();
        var endOffset = I64();
        var voters = Enumerable.Range(0, Count()).Select(_ => new RaftNodeId((ulong)I64())).ToList();
        var learners = Enumerable.Range(0, Count()).Select(_ => new RaftNodeId((ulong)I64())).ToList();
        var addresses = new List<KeyValuePair<RaftNodeId, string>>();
        for (var i = version >= 4 ? Count() : 0; i > 0; i--)
        {
            var id = new RaftNodeId((ulong)I64());
            var length = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(position));
            addresses.Add(new(id, System.Text.Encoding.UTF8.GetString(bytes.AsSpan(position + 2, length))));
            position += 2 + length;
        }

        SnapshotImage data;
        if ((flags & Flags.ExternalData) != 0)
        {
            var length = I64();
            var image = new FileSnapshotImage(DataPath(directory, index));
            if (image.Length != length)
            {
                image.Close();
                throw new InvalidDataException($"The Raft snapshot image '{image.Path}' holds {image.Length} bytes; its snapshot file says {length}.");
            }

            data = image;
        }
        else
        {
            var length = Count();
            data = bytes.AsSpan(position, length).ToArray();
        }

        return (new RaftSnapshot(new SnapshotMetadata(index, term, new ClusterConfig(voters, learners, addresses)), data), endOffset, flags & ~Flags.ExternalData);
    }
}
