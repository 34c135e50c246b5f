namespace KafkaBroker.Protocol;

/// <summary>
/// A request header (v1, or v2 for flexible versions: the same fields followed by tagged fields). The client id
/// stays a plain NULLABLE_STRING even in v2, as the protocol guide specifies.
/// </summary>
internal readonly record struct RequestHeader(ApiKey ApiKey, short ApiVersion, int CorrelationId, string? ClientId)
{
    /// <summary>Reads a header; <paramref name="clientId"/> is the connection's last client id (no string per request).</summary>
    public static RequestHeader Read(KafkaReader reader, string? clientId = null)
    {
        var header = new RequestHeader(
            (ApiKey)reader.ReadInt16(), reader.ReadInt16(), reader.ReadInt32(), reader.ReadNullableString(clientId));
        if (SupportedApis.IsFlexible(header.ApiKey, header.ApiVersion))
        {
            reader.SkipTaggedFields();
        }

        return header;
    }
}
