namespace AppendLog;

/// <summary>A record header: a UTF-8 key and a byte value, as in Kafka's record format.</summary>
/// <param name="Key">The header key.</param>
/// <param name="Value">The header value; may be empty.</param>
public readonly record struct RecordHeader(string Key, ReadOnlyMemory<byte> Value);
