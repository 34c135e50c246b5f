using KafkaBroker.Protocol;
using KafkaBroker.Server;

namespace KafkaBroker.Handlers;

/// <summary>
/// FindCoordinator v0–v2: this broker coordinates every group; transaction coordinators do not exist.
/// </summary>
internal static class FindCoordinatorHandler
{
    private const sbyte KeyTypeGroup = 0;

    public static KafkaWriter Handle(RequestContext request)
    {
        _ = request.Body.ReadString(); // key
        sbyte keyType = request.Version >= 1 ? request.Body.ReadInt8() : KeyTypeGroup;
        var error = keyType == KeyTypeGroup ? ErrorCode.None : ErrorCode.CoordinatorNotAvailable;

        var w = new KafkaWriter(request.Header.CorrelationId);
        if (request.Version >= 1)
        {
            w.WriteInt32(0); // throttle_time_ms
        }

        w.WriteError(error);
        if (request.Version >= 1)
        {
            w.WriteNullableString(error == ErrorCode.None ? null : "This broker has no transaction coordinator.");
        }

        w.WriteInt32(error == ErrorCode.None ? request.Broker.Options.NodeId : -1);
        w.WriteString(error == ErrorCode.None ? request.AdvertisedHost : "");
        w.WriteInt32(error == ErrorCode.None ? request.Broker.Port : -1);
        return w;
    }
}
