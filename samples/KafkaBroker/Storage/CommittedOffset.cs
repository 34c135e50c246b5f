namespace KafkaBroker.Storage;

/// <summary>
/// A committed offset: the next offset the group will read, the leader epoch, and the client's metadata.
/// </summary>
internal readonly record struct CommittedOffset(long Offset, int LeaderEpoch, string? Metadata);
