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
/// <para>Layout (little-endian): magic u32 "ALSN", version u32 = 2, flags u32 (version 2 only), index i64, term i64,
/// endOffset i64, voters i32 + u64 each, learners i32 + u64 each, data length i32 + bytes, then CRC-32C u32 of
/// everything before it. Version 1 files (no flags) are still read.</para>
/// </summary>
internal static class SnapshotFile
{
    public const string FileName = "snapshot";

    private const uint Magic = 0x4E534C41; // "ALSN" read little-endian
    private const uint Version = 2;

    [Flags]
    public enum Flags : uint
    {
        None = 0,

        /// <summary>Installed from the leader; the log's reset to the end offset may be unfinished.</summary>
        ResetPending = 1,
    }

    public static void Write(string directory, RaftSnapshot snapshot, long endOffset, Flags flags = Flags.None)
    {
        var config = snapshot.Metadata.Config;
        var size = 4 + 4 + 4 + 8 + 8 + 8 + 4 + (8 * config.Voters.Count) + 4 + (8 * config.Learners.Count) + 4 + snapshot.Data.Length + 4;
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

        U32((uint)snapshot.Data.Length);
        snapshot.Data.Span.CopyTo(bytes.AsSpan(position));
        position += snapshot.Data.Length;
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
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4)) is not (1 or Version)
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
        var length = Count();
        var data = bytes.AsSpan(position, length).ToArray();
        return (new RaftSnapshot(new SnapshotMetadata(index, term, new ClusterConfig(voters, learners)), data), endOffset, flags);
    }
}
