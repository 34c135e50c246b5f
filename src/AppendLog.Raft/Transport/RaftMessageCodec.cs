using System.Buffers.Binary;
using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;

namespace AppendLog.Raft.Transport;

/// <summary>
/// Encodes every <see cref="RaftMessage"/> type into the payload of one frame (<see cref="RaftFrame"/>), and back.
/// All integers little-endian. Layout, version 3 (version 1 carried a whole snapshot image in one message; version 2
/// has no member addresses in a snapshot's membership):
/// <code>
/// u8 version | u8 type | u8 flags (1 reject, 2 transfer, 4 has snapshot) | u64 from | u64 to | i64 term
/// | i64 logTerm | i64 index | i64 commit | i64 rejectHint | i64 snapshotOffset | i32 entryCount
/// | entryCount × (i64 term | i64 index | u8 kind | i32 length | bytes)
/// | [snapshot: i64 index | i64 term | i32 voters | voters × u64 | i32 learners | learners × u64
///    | (version 3) i32 addresses | addresses × (u64 id | i32 length | UTF-8 bytes)
///    | i64 imageLength | i32 chunkLength | chunk bytes]
/// </code>
/// Only a snapshot message whose membership has addresses is written as version 3; every other message is written as
/// version 2, byte for byte what the previous release wrote, and both versions are read.
/// A snapshot message carries one chunk of the image (<see cref="RaftMessage.SnapshotChunk"/>), never the image: the
/// decoded snapshot has an empty image, and the receiver uses the chunk.
/// Entry payloads are record batches (or Raft's small control payloads) and travel as they are: the follower stores
/// the leader's bytes. Decoded entries slice the frame's buffer, which the caller must not reuse.
/// </summary>
internal static class RaftMessageCodec
{
    public const byte Version = 3;

    /// <summary>The version of a message that carries no member addresses (the same layout without them).</summary>
    public const byte VersionWithoutAddresses = 2;

    private const int FixedBytes = 3 + 8 + 8 + (8 * 6) + 4;
    private const int EntryFixedBytes = 8 + 8 + 1 + 4;

    private const byte RejectFlag = 1;
    private const byte TransferFlag = 2;
    private const byte SnapshotFlag = 4;

    public static int EncodedSize(RaftMessage message) => checked((int)EncodedSizeBytes(message));

    /// <summary>The encoded size as a long: a snapshot near 2 GiB would overflow an int (and then pass a size check).</summary>
    public static long EncodedSizeBytes(RaftMessage message)
    {
        long size = FixedBytes;
        foreach (var entry in message.Entries)
        {
            size += EntryFixedBytes + entry.Data.Length;
        }

        if (message.Snapshot is { } snapshot)
        {
            size += 8 + 8 + 4 + (8 * snapshot.Metadata.Config.Voters.Count) + 4 + (8 * snapshot.Metadata.Config.Learners.Count) + 8 + 4 + message.SnapshotChunk.Length;
            if (!snapshot.Metadata.Config.Addresses.IsEmpty)
            {
                size += 4;
                foreach (var (_, address) in snapshot.Metadata.Config.Addresses)
                {
                    size += 8 + 4 + System.Text.Encoding.UTF8.GetByteCount(address);
                }
            }
        }

        return size;
    }

    /// <summary>Writes <paramref name="message"/> into <paramref name="destination"/>, which holds exactly <see cref="EncodedSize"/> bytes.</summary>
    public static void Encode(RaftMessage message, Span<byte> destination)
    {
        var w = new Writer(destination);
        var withAddresses = message.Snapshot is { } withConfig && !withConfig.Metadata.Config.Addresses.IsEmpty;
        w.U8(withAddresses ? Version : VersionWithoutAddresses);
        w.U8((byte)message.Type);
        w.U8((byte)((message.Reject ? RejectFlag : 0) | (message.Transfer ? TransferFlag : 0) | (message.Snapshot is not null ? SnapshotFlag : 0)));
        w.U64(message.From.Value);
        w.U64(message.To.Value);
        w.I64(message.Term);
        w.I64(message.LogTerm);
        w.I64(message.Index);
        w.I64(message.Commit);
        w.I64(message.RejectHint);
        w.I64(message.SnapshotOffset);
        w.I32(message.Entries.Count);
        foreach (var entry in message.Entries)
        {
            w.I64(entry.Term);
            w.I64(entry.Index);
            w.U8((byte)entry.Kind);
            w.Bytes(entry.Data.Span);
        }

        if (message.Snapshot is { } snapshot)
        {
            w.I64(snapshot.Index);
            w.I64(snapshot.Term);
            w.Ids(snapshot.Metadata.Config.Voters);
            w.Ids(snapshot.Metadata.Config.Learners);
            if (withAddresses)
            {
                w.I32(snapshot.Metadata.Config.Addresses.Count);
                foreach (var (id, address) in snapshot.Metadata.Config.Addresses)
                {
                    w.U64(id.Value);
                    w.Bytes(System.Text.Encoding.UTF8.GetBytes(address));
                }
            }

            w.I64(message.SnapshotLength);
            w.Bytes(message.SnapshotChunk.Span);
        }

        Invariant.Assert(w.Position == destination.Length, "a message fills exactly its encoded size");
    }

    /// <summary>Decodes one message from a whole frame payload.</summary>
    /// <exception cref="InvalidDataException">The payload is not a well-formed message.</exception>
    public static RaftMessage Decode(ReadOnlyMemory<byte> payload)
    {
        var r = new Reader(payload);
        var version = r.U8();
        if (version is not (Version or VersionWithoutAddresses))
        {
            throw new InvalidDataException($"Unknown Raft message version {version}.");
        }

        var type = r.U8();
        if (type > (byte)RaftMessageType.SnapshotResponse)
        {
            throw new InvalidDataException($"Unknown Raft message type {type}.");
        }

        var flags = r.U8();
        var from = new RaftNodeId(r.U64());
        var to = new RaftNodeId(r.U64());
        var term = r.I64();
        var logTerm = r.I64();
        var index = r.I64();
        var commit = r.I64();
        var rejectHint = r.I64();
        var snapshotOffset = r.I64();
        var count = r.I32();
        if (count < 0 || count > payload.Length / EntryFixedBytes)
        {
            throw new InvalidDataException($"Entry count {count} does not fit the frame.");
        }

        var entries = new RaftEntry[count];
        for (var i = 0; i < count; i++)
        {
            var entryTerm = r.I64();
            var entryIndex = r.I64();
            var kind = r.U8();
            if (kind > (byte)RaftEntryKind.ConfigChange)
            {
                throw new InvalidDataException($"Unknown entry kind {kind}.");
            }

            entries[i] = new RaftEntry(entryTerm, entryIndex, (RaftEntryKind)kind, r.Bytes());
        }

        RaftSnapshot? snapshot = null;
        long snapshotLength = 0;
        var chunk = ReadOnlyMemory<byte>.Empty;
        if ((flags & SnapshotFlag) != 0)
        {
            var snapshotIndex = r.I64();
            var snapshotTerm = r.I64();
            var voters = r.Ids();
            var learners = r.Ids();
            var addresses = new List<KeyValuePair<RaftNodeId, string>>();
            for (var i = version == Version ? r.I32() : 0; i > 0; i--)
            {
                var id = new RaftNodeId(r.U64());
                var address = r.Bytes();
                if (address.Length > ConfigChange.AddressBytesMax || (!voters.Contains(id) && !learners.Contains(id)) || addresses.Any(a => a.Key == id))
                {
                    throw new InvalidDataException($"A snapshot's membership names an address of {address.Length} bytes for node {id}.");
                }

                addresses.Add(new(id, System.Text.Encoding.UTF8.GetString(address.Span)));
            }

            var config = new ClusterConfig(voters, learners, addresses);
            snapshot = new RaftSnapshot(new SnapshotMetadata(snapshotIndex, snapshotTerm, config), SnapshotImage.Empty);
            snapshotLength = r.I64();
            chunk = r.Bytes();
        }

        if (!r.AtEnd)
        {
            throw new InvalidDataException("Trailing bytes after a Raft message.");
        }

        return new RaftMessage
        {
            Type = (RaftMessageType)type,
            From = from,
            To = to,
            Term = term,
            LogTerm = logTerm,
            Index = index,
            Commit = commit,
            Reject = (flags & RejectFlag) != 0,
            Transfer = (flags & TransferFlag) != 0,
            RejectHint = rejectHint,
            Entries = entries,
            Snapshot = snapshot,
            SnapshotLength = snapshotLength,
            SnapshotOffset = snapshotOffset,
            SnapshotChunk = chunk,
        };
    }

    private ref struct Writer(Span<byte> destination)
    {
        private readonly Span<byte> _destination = destination;

        public int Position { get; private set; }

        public void U8(byte value) => _destination[Position++] = value;

        public void I32(int value)
        {
            BinaryPrimitives.WriteInt32LittleEndian(_destination[Position..], value);
            Position += 4;
        }

        public void I64(long value)
        {
            BinaryPrimitives.WriteInt64LittleEndian(_destination[Position..], value);
            Position += 8;
        }

        public void U64(ulong value)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_destination[Position..], value);
            Position += 8;
        }

        public void Bytes(ReadOnlySpan<byte> value)
        {
            I32(value.Length);
            value.CopyTo(_destination[Position..]);
            Position += value.Length;
        }

        public void Ids(IReadOnlyCollection<RaftNodeId> ids)
        {
            I32(ids.Count);
            foreach (var id in ids)
            {
                U64(id.Value);
            }
        }
    }

    private struct Reader(ReadOnlyMemory<byte> source)
    {
        private readonly ReadOnlyMemory<byte> _source = source;
        private int _position;

        public readonly bool AtEnd => _position == _source.Length;

        public byte U8() => Take(1)[0];

        public int I32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

        public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

        public ReadOnlyMemory<byte> Bytes()
        {
            var length = I32();
            if (length < 0 || length > _source.Length - _position)
            {
                throw new InvalidDataException($"A length of {length} runs past the end of the frame.");
            }

            var slice = _source.Slice(_position, length);
            _position += length;
            return slice;
        }

        public List<RaftNodeId> Ids()
        {
            var count = I32();
            if (count < 0 || count > (_source.Length - _position) / 8)
            {
                throw new InvalidDataException($"An id count of {count} runs past the end of the frame.");
            }

            var ids = new List<RaftNodeId>(count);
            for (var i = 0; i < count; i++)
            {
                ids.Add(new RaftNodeId(U64()));
            }

            return ids;
        }

        private ReadOnlySpan<byte> Take(int count)
        {
            if (count > _source.Length - _position)
            {
                throw new InvalidDataException("A Raft message ends early.");
            }

            var span = _source.Span.Slice(_position, count);
            _position += count;
            return span;
        }
    }
}
