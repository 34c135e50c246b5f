using KafkaBroker.Handlers;
using KafkaBroker.Protocol;

namespace KafkaBroker.Server;

/// <summary>Routes a parsed request header to its API's handler.</summary>
internal static class RequestDispatcher
{
    /// <summary>
    /// Serves one request; null when no response is sent (Produce with acks = 0). The task is awaited once, by the
    /// connection's writer (a handler may return a pooled one: Fetch does).
    /// </summary>
    public static ValueTask<KafkaWriter?> HandleAsync(RequestContext request) => request.Header.ApiKey switch
    {
        ApiKey.ApiVersions => Done(ApiVersionsHandler.Handle(request)),
        ApiKey.Metadata => new(MetadataHandler.HandleAsync(request)),
        ApiKey.CreateTopics => new(CreateTopicsHandler.HandleAsync(request)),
        ApiKey.Produce => new(ProduceHandler.HandleAsync(request)),
        ApiKey.Fetch => FetchHandler.HandleAsync(request),
        ApiKey.ListOffsets => new(ListOffsetsHandler.HandleAsync(request)),
        ApiKey.InitProducerId => new(InitProducerIdHandler.HandleAsync(request)),
        ApiKey.FindCoordinator => Done(FindCoordinatorHandler.Handle(request)),
        ApiKey.JoinGroup => new(GroupHandlers.JoinAsync(request)),
        ApiKey.SyncGroup => new(GroupHandlers.SyncAsync(request)),
        ApiKey.Heartbeat => Done(GroupHandlers.Heartbeat(request)),
        ApiKey.LeaveGroup => Done(GroupHandlers.Leave(request)),
        ApiKey.OffsetCommit => new(OffsetHandlers.CommitAsync(request)),
        ApiKey.OffsetFetch => Done(OffsetHandlers.Fetch(request)),
        _ => throw new KafkaProtocolException($"API key {request.Header.ApiKey} is not served."),
    };

    private static ValueTask<KafkaWriter?> Done(KafkaWriter response) => new(response);
}
