using KafkaBroker.Handlers;
using KafkaBroker.Protocol;

namespace KafkaBroker.Server;

/// <summary>Routes a parsed request header to its API's handler.</summary>
internal static class RequestDispatcher
{
    /// <summary>Serves one request; null when no response is sent (Produce with acks = 0).</summary>
    public static Task<KafkaWriter?> HandleAsync(RequestContext request) => request.Header.ApiKey switch
    {
        ApiKey.ApiVersions => Done(ApiVersionsHandler.Handle(request)),
        ApiKey.Metadata => MetadataHandler.HandleAsync(request),
        ApiKey.CreateTopics => CreateTopicsHandler.HandleAsync(request),
        ApiKey.Produce => ProduceHandler.HandleAsync(request),
        ApiKey.Fetch => FetchHandler.HandleAsync(request),
        ApiKey.ListOffsets => ListOffsetsHandler.HandleAsync(request),
        ApiKey.InitProducerId => InitProducerIdHandler.HandleAsync(request),
        ApiKey.FindCoordinator => Done(FindCoordinatorHandler.Handle(request)),
        ApiKey.JoinGroup => GroupHandlers.JoinAsync(request),
        ApiKey.SyncGroup => GroupHandlers.SyncAsync(request),
        ApiKey.Heartbeat => Done(GroupHandlers.Heartbeat(request)),
        ApiKey.LeaveGroup => Done(GroupHandlers.Leave(request)),
        ApiKey.OffsetCommit => OffsetHandlers.CommitAsync(request),
        ApiKey.OffsetFetch => Done(OffsetHandlers.Fetch(request)),
        _ => throw new KafkaProtocolException($"API key {request.Header.ApiKey} is not served."),
    };

    private static Task<KafkaWriter?> Done(KafkaWriter response) => Task.FromResult<KafkaWriter?>(response);
}
