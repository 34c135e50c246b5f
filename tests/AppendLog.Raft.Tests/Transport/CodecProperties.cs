using System.Buffers;
using AppendLog.Raft.Core;
using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Transport;
using NUnit.Framework;
using PropertyAttribute = FsCheck.NUnit.PropertyAttribute;

namespace AppendLog.Raft.Tests.Transport;

// FsCheck supplies the arguments; NUnit's analyzer cannot see that.
#pragma warning disable NUnit1027

public sealed class CodecProperties
{
    private static RaftMessage Build(
        byte type, ulong from, ulong to, long term, long logTerm, long index, long commit, bool reject, bool transfer,
        long hint, byte[][]? entries, bool withSnapshot, ulong[]? voters)
    {
        var list = (entries ?? []).Select((data, i) =>
            new RaftEntry(term + i, index + 1 + i, i % 3 == 2 ? RaftEntryKind.ConfigChange : RaftEntryKind.Normal, data ?? [])).ToList();
        var ids = (voters ?? []).Where(v => v != 0).Distinct().Select(v => new RaftNodeId(v)).ToList();
        return new RaftMessage
        {
            Type = (RaftMessageType)(type % 11),
            From = new RaftNodeId(from),
            To = new RaftNodeId(to),
            Term = term,
            LogTerm = logTerm,
            Index = index,
            Commit = commit,
            Reject = reject,
            Transfer = transfer,
            RejectHint = hint,
            Entries = list,
            Snapshot = withSnapshot
                ? new RaftSnapshot(new SnapshotMetadata(index, logTerm, new ClusterConfig(ids.Take(3), ids.Skip(3), ids.Where(i => i.Value % 2 == 0).Select(i => KeyValuePair.Create(i, $"10.0.{i.Value % 256}.1:{i.Value % 65536}")))), SnapshotImage.Empty)
                : null,
            SnapshotLength = withSnapshot ? commit : 0,
            SnapshotOffset = hint,
            SnapshotChunk = withSnapshot ? entries?.FirstOrDefault() ?? [] : ReadOnlyMemory<byte>.Empty,
        };
    }

    private static byte[] Encode(RaftMessage message)
    {
        var bytes = new byte[RaftMessageCodec.EncodedSize(message)];
        RaftMessageCodec.Encode(message, bytes);
        return bytes;
    }

    [Property(MaxTest = 300)]
    public bool EveryMessage_RoundTripsThroughTheCodec(
        byte type, ulong from, ulong to, long term, long logTerm, long index, long commit, bool reject, bool transfer,
        long hint, byte[][]? entries, bool withSnapshot, ulong[]? voters)
    {
        var message = Build(type, from, to, term, logTerm, index, commit, reject, transfer, hint, entries, withSnapshot, voters);
        var encoded = Encode(message);
        var decoded = RaftMessageCodec.Decode(encoded);
        return decoded.Type == message.Type && decoded.From == message.From && decoded.To == message.To
            && decoded.Term == message.Term && decoded.LogTerm == message.LogTerm && decoded.Index == message.Index
            && decoded.Commit == message.Commit && decoded.Reject == message.Reject && decoded.Transfer == message.Transfer
            && decoded.RejectHint == message.RejectHint && decoded.SnapshotOffset == message.SnapshotOffset
            && decoded.SnapshotLength == message.SnapshotLength && decoded.SnapshotChunk.Span.SequenceEqual(message.SnapshotChunk.Span)
            && decoded.Entries.Count == message.Entries.Count
            && decoded.Entries.Zip(message.Entries).All(p => p.First.Term == p.Second.Term && p.First.Index == p.Second.Index
                && p.First.Kind == p.Second.Kind && p.First.Data.Span.SequenceEqual(p.Second.Data.Span))
            && (decoded.Snapshot is null) == (message.Snapshot is null)
            && (message.Snapshot is null || (decoded.Snapshot!.Index == message.Snapshot.Index
                && decoded.Snapshot.Metadata.Config.Voters.SequenceEqual(message.Snapshot.Metadata.Config.Voters)
                && decoded.Snapshot.Metadata.Config.Addresses.SequenceEqual(message.Snapshot.Metadata.Config.Addresses)
                && encoded[0] == (message.Snapshot.Metadata.Config.Addresses.IsEmpty ? RaftMessageCodec.VersionWithoutAddresses : RaftMessageCodec.Version)
                && decoded.Snapshot.Metadata.Config.Learners.SequenceEqual(message.Snapshot.Metadata.Config.Learners)))
            && Encode(decoded).AsSpan().SequenceEqual(encoded);
    }

    [Property(MaxTest = 300)]
    public bool AnyTruncatedMessage_IsRejected_NotMisread(long term, byte[][]? entries, ushort cut)
    {
        var encoded = Encode(Build(0, 1, 2, term, 0, 5, 3, false, false, 0, entries, false, null));
        var length = cut % encoded.Length;
        try
        {
            RaftMessageCodec.Decode(encoded.AsMemory(0, length));
            return false;
        }
        catch (InvalidDataException)
        {
            return true;
        }
    }

    [Property(MaxTest = 300)]
    public bool AnyFlippedBitInAFrame_FailsItsCrc(byte[][]? entries, ushort bit)
    {
        var writer = new ArrayBufferWriter<byte>();
        RaftFrame.Write(Build(0, 1, 2, 3, 2, 5, 3, false, false, 0, entries, false, null), writer);
        var frame = writer.WrittenSpan.ToArray();
        var payloadBits = (frame.Length - RaftFrame.HeaderBytes) * 8;
        var position = RaftFrame.HeaderBytes + (bit % payloadBits / 8);
        frame[position] ^= (byte)(1 << (bit % 8));
        try
        {
            RaftFrame.CheckPayload(frame, frame.AsSpan(RaftFrame.HeaderBytes));
            return false;
        }
        catch (InvalidDataException)
        {
            return true;
        }
    }

    [Test]
    public void AFrameLongerThanTheBound_IsRefusedBeforeAllocating()
    {
        var header = new byte[RaftFrame.HeaderBytes];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header, RaftFrame.PayloadBytesMax + 1);
        Assert.Throws<InvalidDataException>(() => RaftFrame.PayloadLength(header));
    }
}
