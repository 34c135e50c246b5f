namespace KafkaBroker.Groups;

/// <summary>A member of a consumer group, as its last JoinGroup described it.</summary>
internal sealed class GroupMember(string memberId, string clientId)
{
    public string MemberId { get; } = memberId;

    public string ClientId { get; } = clientId;

    public TimeSpan SessionTimeout { get; set; }

    public TimeSpan RebalanceTimeout { get; set; }

    /// <summary>(protocol name, metadata) in the member's order of preference.</summary>
    public List<(string Name, byte[] Metadata)> Protocols { get; set; } = [];

    public long LastHeartbeatTicks { get; set; }

    /// <summary>Set while the member waits in JoinGroup for the rebalance to complete.</summary>
    public TaskCompletionSource<JoinResult>? JoinWaiter { get; set; }

    /// <summary>Set while the member waits in SyncGroup for the leader's assignment.</summary>
    public TaskCompletionSource<SyncResult>? SyncWaiter { get; set; }

    /// <summary>The assignment the leader gave this member in the current generation.</summary>
    public byte[] Assignment { get; set; } = [];

    public byte[] MetadataFor(string protocol) => Protocols.First(p => p.Name == protocol).Metadata;
}
