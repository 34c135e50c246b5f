using System.Buffers.Binary;

namespace AppendLog.Raft.Membership;

internal enum ConfigChangeKind : byte
{
    /// <summary>Add a voter, or promote a learner to voter.</summary>
    AddVoter = 1,

    /// <summary>Add a non-voting learner.</summary>
    AddLearner = 2,

    /// <summary>Remove a voter or a learner.</summary>
    Remove = 3,
}

/// <summary>
/// A single-server membership change (thesis §4.1). It takes effect on a node as soon as its entry is in
/// that node's log, committed or not, and is undone if the entry is truncated away.
/// </summary>
internal readonly record struct ConfigChange(ConfigChangeKind Kind, RaftNodeId Node)
{
    public const int EncodedBytes = 9;

    public byte[] Encode()
    {
        var bytes = new byte[EncodedBytes];
        bytes[0] = (byte)Kind;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(1), Node.Value);
        return bytes;
    }

    public static ConfigChange Decode(ReadOnlySpan<byte> bytes)
    {
        Core.Invariant.Assert(bytes.Length == EncodedBytes, "a config change entry is 9 bytes");
        return new ConfigChange((ConfigChangeKind)bytes[0], new RaftNodeId(BinaryPrimitives.ReadUInt64LittleEndian(bytes[1..])));
    }
}
