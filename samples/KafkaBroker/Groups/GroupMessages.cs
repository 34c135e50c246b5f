namespace KafkaBroker.Groups;

/// <summary>The fields of a JoinGroup request the group needs.</summary>
internal sealed record JoinRequest(
    string MemberId, string ClientId, TimeSpan SessionTimeout, TimeSpan RebalanceTimeout, string ProtocolType,
    List<(string Name, byte[] Metadata)> Protocols);

/// <summary>The answer to JoinGroup; <see cref="Members"/> is filled for the leader only.</summary>
internal sealed record JoinResult(
    Protocol.ErrorCode Error, int GenerationId, string ProtocolName, string LeaderId, string MemberId,
    IReadOnlyList<(string MemberId, byte[] Metadata)> Members);

/// <summary>The answer to SyncGroup.</summary>
internal sealed record SyncResult(Protocol.ErrorCode Error, byte[] Assignment);
