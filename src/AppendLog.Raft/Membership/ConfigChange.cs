using System.Buffers.Binary;
using System.Text;

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
/// A single-server membership change (thesis §4.1). It takes effect on a node as soon as its entry is in that node's
/// log, committed or not, and is undone if the entry is truncated away. An addition may carry the new member's Raft
/// endpoint (<paramref name="Address"/>, at most <see cref="AddressBytesMax"/> bytes of UTF-8), which every member then
/// learns from the log.
/// <para>
/// Why single-server changes and not joint consensus (thesis §4.3): any two majorities of configurations that differ by
/// one server overlap, so no step can produce two leaders of one term, and a change needs one entry instead of two
/// (C_old,new then C_new) with two quorums counted for every election and commit meanwhile. Their known flaw (the bug
/// Ongaro described on raft-dev in 2015: two changes started by leaders of different terms, one of them uncommitted,
/// can let the old and the new membership each commit at the same index) is closed by the fix he gave: a leader
/// appends a change only after it has committed an entry of its own term, and only when no other change is
/// uncommitted (<see cref="Core.RaftNode.ProposeConfigChange"/>; MembershipTests shows the bug's interleaving and that
/// the rule stops it). Replacing several servers takes several steps; an operator who wants to move a majority at once
/// adds the new members first, then removes the old ones.
/// </para>
/// <para>Entry layout (little-endian). Version 1, 9 bytes: u8 kind | u64 node. Version 2, written when there is an
/// address: u8 kind | u64 node | u8 version = 2 | u16 address length | address UTF-8. A log holding version 2 entries
/// cannot be read by a build that knows only version 1.</para>
/// </summary>
internal readonly record struct ConfigChange(ConfigChangeKind Kind, RaftNodeId Node, string? Address = null)
{
    /// <summary>The size of a version 1 entry (no address).</summary>
    public const int EncodedBytes = 9;

    /// <summary>The longest address, in UTF-8 bytes (a host name of 253 bytes and a port fit many times over).</summary>
    public const int AddressBytesMax = 1024;

    private const byte VersionWithAddress = 2;

    /// <exception cref="ArgumentException">The address is longer than <see cref="AddressBytesMax"/> bytes in UTF-8.</exception>
    public byte[] Encode()
    {
        if (Address is null)
        {
            var bytes = new byte[EncodedBytes];
            bytes[0] = (byte)Kind;
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(1), Node.Value);
            return bytes;
        }

        var address = Encoding.UTF8.GetBytes(Address);
        if (address.Length > AddressBytesMax)
        {
            throw new ArgumentException($"A member's address is at most {AddressBytesMax} bytes in UTF-8.", nameof(Address));
        }

        var encoded = new byte[EncodedBytes + 1 + 2 + address.Length];
        encoded[0] = (byte)Kind;
        BinaryPrimitives.WriteUInt64LittleEndian(encoded.AsSpan(1), Node.Value);
        encoded[EncodedBytes] = VersionWithAddress;
        BinaryPrimitives.WriteUInt16LittleEndian(encoded.AsSpan(EncodedBytes + 1), (ushort)address.Length);
        address.CopyTo(encoded, EncodedBytes + 3);
        return encoded;
    }

    public static ConfigChange Decode(ReadOnlySpan<byte> bytes)
    {
        Core.Invariant.Assert(bytes.Length >= EncodedBytes, "a config change entry holds at least a kind and a node");
        var kind = (ConfigChangeKind)bytes[0];
        var node = new RaftNodeId(BinaryPrimitives.ReadUInt64LittleEndian(bytes[1..]));
        if (bytes.Length == EncodedBytes)
        {
            return new ConfigChange(kind, node);
        }

        Core.Invariant.Assert(bytes[EncodedBytes] == VersionWithAddress, "a config change entry is of a known version");
        var length = BinaryPrimitives.ReadUInt16LittleEndian(bytes[(EncodedBytes + 1)..]);
        Core.Invariant.Assert(bytes.Length == EncodedBytes + 3 + length, "a config change entry holds exactly its address");
        return new ConfigChange(kind, node, Encoding.UTF8.GetString(bytes.Slice(EncodedBytes + 3, length)));
    }
}
