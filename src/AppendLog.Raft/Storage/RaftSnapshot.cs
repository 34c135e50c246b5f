using AppendLog.Raft.Membership;

namespace AppendLog.Raft.Storage;

/// <summary>
/// What a snapshot covers: every entry up to and including <see cref="Index"/> (whose term is
/// <see cref="Term"/>), and the membership in force at that point.
/// </summary>
internal sealed record SnapshotMetadata(long Index, long Term, ClusterConfig Config);

/// <summary>A snapshot: its metadata and the application's opaque state-machine image (in memory or in a file).</summary>
internal sealed record RaftSnapshot(SnapshotMetadata Metadata, SnapshotImage Data)
{
    /// <summary>The empty snapshot a group is bootstrapped from: index 0, term 0, the initial members.</summary>
    public static RaftSnapshot Bootstrap(ClusterConfig initial) => new(new SnapshotMetadata(0, 0, initial), SnapshotImage.Empty);

    public long Index => Metadata.Index;

    public long Term => Metadata.Term;
}
