using KafkaBroker.Groups;
using KafkaBroker.Protocol;
using KafkaBroker.Server;

namespace KafkaBroker.Handlers;

/// <summary>
/// JoinGroup v0–v5, SyncGroup v0–v3, Heartbeat v0–v3, LeaveGroup v0–v2: the wire side of
/// <see cref="ConsumerGroup"/>.
/// Static membership (group_instance_id, v5+) is read and ignored: every member is dynamic.
/// </summary>
internal static class GroupHandlers
{
    /// <summary>
    /// Kafka's bounds on session.timeout.ms (group.min/max.session.timeout.ms defaults: 6 s and 30 min).
    /// </summary>
    private static readonly TimeSpan s_sessionTimeoutMin = TimeSpan.FromSeconds(6);

    private static readonly TimeSpan s_sessionTimeoutMax = TimeSpan.FromMinutes(30);

    public static async Task<KafkaWriter?> JoinAsync(RequestContext request)
    {
        var body = request.Body;
        short version = request.Version;
        string groupId = body.ReadString();
        var sessionTimeout = TimeSpan.FromMilliseconds(body.ReadInt32());
        var rebalanceTimeout = version >= 1 ? TimeSpan.FromMilliseconds(body.ReadInt32()) : sessionTimeout;
        string memberId = body.ReadString();
        if (version >= 5)
        {
            _ = body.ReadNullableString(); // group_instance_id
        }

        string protocolType = body.ReadString();
        var protocols = body.ReadArray(p => (p.ReadString(), p.ReadBytes().ToArray()));

        JoinResult result;
        if (groupId.Length == 0)
        {
            result = new JoinResult(ErrorCode.InvalidGroupId, -1, "", "", memberId, []);
        }
        else if (sessionTimeout < s_sessionTimeoutMin || sessionTimeout > s_sessionTimeoutMax)
        {
            result = new JoinResult(ErrorCode.InvalidSessionTimeout, -1, "", "", memberId, []);
        }
        else
        {
            string clientId = request.Header.ClientId ?? "";
            var join = new JoinRequest(memberId, clientId, sessionTimeout, rebalanceTimeout, protocolType, protocols);
            result = await request.Broker.Groups.GetOrCreate(groupId).Join(join).WaitAsync(request.Broker.Stopping)
                .ConfigureAwait(false);
        }

        var w = new KafkaWriter(request.Header.CorrelationId);
        if (version >= 2)
        {
            w.WriteInt32(0); // throttle_time_ms
        }

        w.WriteError(result.Error);
        w.WriteInt32(result.GenerationId);
        w.WriteString(result.ProtocolName);
        w.WriteString(result.LeaderId);
        w.WriteString(result.MemberId);
        w.WriteArrayCount(result.Members.Count);
        foreach (var (id, metadata) in result.Members)
        {
            w.WriteString(id);
            if (version >= 5)
            {
                w.WriteNullableString(null); // group_instance_id
            }

            w.WriteBytes(metadata);
        }

        return w;
    }

    public static async Task<KafkaWriter?> SyncAsync(RequestContext request)
    {
        var body = request.Body;
        string groupId = body.ReadString();
        int generationId = body.ReadInt32();
        string memberId = body.ReadString();
        if (request.Version >= 3)
        {
            _ = body.ReadNullableString(); // group_instance_id
        }

        var assignments = body.ReadArray(a => (a.ReadString(), a.ReadBytes().ToArray()));
        var group = request.Broker.Groups.Find(groupId);
        var result = group is null
            ? new SyncResult(ErrorCode.UnknownMemberId, [])
            : await group.Sync(memberId, generationId, assignments).WaitAsync(request.Broker.Stopping)
                .ConfigureAwait(false);

        var w = new KafkaWriter(request.Header.CorrelationId);
        if (request.Version >= 1)
        {
            w.WriteInt32(0); // throttle_time_ms
        }

        w.WriteError(result.Error);
        w.WriteBytes(result.Assignment);
        return w;
    }

    public static KafkaWriter Heartbeat(RequestContext request)
    {
        var body = request.Body;
        string groupId = body.ReadString();
        int generationId = body.ReadInt32();
        string memberId = body.ReadString();
        if (request.Version >= 3)
        {
            _ = body.ReadNullableString(); // group_instance_id
        }

        var error = request.Broker.Groups.Find(groupId)?.Heartbeat(memberId, generationId) ?? ErrorCode.UnknownMemberId;
        return ErrorOnly(request, error);
    }

    public static KafkaWriter Leave(RequestContext request)
    {
        string groupId = request.Body.ReadString();
        string memberId = request.Body.ReadString();
        var error = request.Broker.Groups.Find(groupId)?.Leave(memberId) ?? ErrorCode.UnknownMemberId;
        return ErrorOnly(request, error);
    }

    private static KafkaWriter ErrorOnly(RequestContext request, ErrorCode error)
    {
        var w = new KafkaWriter(request.Header.CorrelationId);
        if (request.Version >= 1)
        {
            w.WriteInt32(0); // throttle_time_ms
        }

        w.WriteError(error);
        return w;
    }
}
