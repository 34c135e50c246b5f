namespace KafkaBroker.Server;

/// <summary>
/// One request as a handler sees it: the broker, the header, the body, the address the client reached, and the
/// connection's fetch readers. A struct: one per request, copied into the handler (no object per request).
/// </summary>
internal readonly record struct RequestContext(
    BrokerContext Broker,
    Protocol.RequestHeader Header,
    Protocol.KafkaReader Body,
    string AdvertisedHost,
    FetchReaders FetchReaders)
{
    public short Version => Header.ApiVersion;
}
