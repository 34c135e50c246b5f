namespace AppendLog.Raft.Core;

/// <summary>What an entry's payload means to Raft itself.</summary>
internal enum RaftEntryKind : byte
{
    /// <summary>An opaque application payload (empty for the no-op a new leader appends).</summary>
    Normal = 0,

    /// <summary>A single-server membership change, encoded by <see cref="Membership.ConfigChange"/>.</summary>
    ConfigChange = 1,
}

/// <summary>
/// One log entry: the term of the leader that created it, its position, and an opaque payload. In the
/// SegmentedLog adapter one entry is one record batch whose partitionLeaderEpoch is <see cref="Term"/>.
/// </summary>
internal readonly record struct RaftEntry(long Term, long Index, RaftEntryKind Kind, ReadOnlyMemory<byte> Data)
{
    /// <summary>Fixed bytes counted per entry on top of its payload when sizing batches (term, index, kind, length).</summary>
    public const int OverheadBytes = 24;

    public long SizeBytes => Data.Length + OverheadBytes;
}

/// <summary>The state that must be durable before any message that depends on it is sent.</summary>
internal readonly record struct HardState(long Term, RaftNodeId Vote, long Commit);
