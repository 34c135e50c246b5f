namespace KafkaBroker.Server;

/// <summary>
/// One request as a handler sees it: the broker, the header, the body, and the address the client reached.
/// </summary>
internal sealed record RequestContext(
    BrokerContext Broker, Protocol.RequestHeader Header, Protocol.KafkaReader Body, string AdvertisedHost)
{
    public short Version => Header.ApiVersion;
}
