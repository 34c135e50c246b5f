using System.Buffers.Binary;
using System.IO.Hashing;
using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;

namespace AppendLog.Raft.Storage;

/// <summary>
/// The snapshot kept beside the log: what it covers (index, term, membership), the offset at which the entries after it
/// begin in the SegmentedLog, and the application's state-machine image. The core cannot truncate a log prefix yet, so
/// the batches the snapshot covers stay on disk; the adapter skips them at open and no longer holds them in memory.
/// Replaced atomically like the hard state (temp file, fsync, rename, directory fsync).
/// <para>Layout (little-endian): magic u32 "ALSN", version u32 = 1, index i64, term i64, endOffset i64, voters i32 +
/// u64 each, learners i32 + u64 each, data length i32 + bytes, then CRC-32C u32 of everything before it.</para>
/// </summary>
internal static class SnapshotFile
{
    public const string FileName = "snapshot";

    private const uint Magic = 0x4E534C41; // "ALSN" read little-endian
    private const uint Version = 1;

    public static void Write(string directory, RaftSnapshot snapshot, long endOffset)
    {
        var config = snapshot.Metadata.Config;
        var size = 4 + 4 + 8 + 8 + 8 + 4 + (8 * config.Voters.Count) + 4 + (8 * config.Learners.Count) + 4 + snapshot.Data.Length + 4;
        var bytes = new byte[size];
        var position = 0;
        void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(position), v); position += 4; }
        void I64(long v) { BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(position), v); position += 8; }
        U32(Magic);
        U32(Version);
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
    public static (RaftSnapshot Snapshot, long EndOffset)? Read(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 48
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes) != Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4)) != Version
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4)) != Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, bytes.AsSpan(0, bytes.Length - 4)))
        {
            throw new InvalidDataException($"The Raft snapshot file '{path}' is damaged.");
        }

        var position = 8;
        long I64() { var v = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(position)); position += 8; return v; }
        int Count() { var v = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(position)); position += 4; return v; }
        var index = I64();
        var term = I64();
        var endOffset = I64();
        var voters = Enumerable.Range(0, Count()).Select(_ => new RaftNodeId((ulong)I64())).ToList();
        var learners = Enumerable.Range(0, Count()).Select(_ => new RaftNodeId((ulong)I64())).ToList();
        var length = Count();
        var data = bytes.AsSpan(position, length).ToArray();
        return (new RaftSnapshot(new SnapshotMetadata(index, term, new ClusterConfig(voters, learners)), data), endOffset);
    }
}
