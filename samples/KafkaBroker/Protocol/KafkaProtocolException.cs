namespace KafkaBroker.Protocol;

/// <summary>
/// A request that cannot be parsed: a length past the frame's end, a negative size, an unknown version of an API
/// other than ApiVersions. Kafka closes the connection in these cases, and so does this broker (nothing of the
/// request has been applied: requests are parsed whole before they act).
/// </summary>
internal sealed class KafkaProtocolException(string message) : Exception(message);
