namespace KafkaBroker.Server;

/// <summary>
/// One request as a handler sees it: the broker, the header, the body, the address the client reached, and the
/// connection's fetch readers.
/// </summary>
internal sealed record RequestContext(
    BrokerContext Broker,
    Protocol.RequestHeader Header,
    Protocol.KafkaReader Body,
    string AdvertisedHost,
    FetchReaders FetchReaders)
{
    public short Version => Header.ApiVersion;
}
