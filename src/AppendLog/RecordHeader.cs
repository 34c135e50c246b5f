namespace AppendLog;

/// <summary>A record header: a UTF-8 key and a byte value, as in Kafka's record format.</summary>
/// <param name="Key">The header key.</param>
/// <param name="Value">The header value; may be empty. Empty for a null value (see <see cref="IsValueNull"/>).</param>
public readonly record struct RecordHeader(string Key, ReadOnlyMemory<byte> Value)
{
    /// <summary>
    /// True when the value is null (Kafka writes length -1) rather than empty. Kafka distinguishes the two; a header
    /// read back keeps the distinction, and one appended with this set is written as null.
    /// </summary>
    public bool IsValueNull { get; init; }

    /// <summary>Creates a header whose value is null, as distinct from empty.</summary>
    /// <param name="key">The header key.</param>
    /// <returns>The header, with <see cref="IsValueNull"/> set and an empty <see cref="Value"/>.</returns>
    public static RecordHeader WithNullValue(string key) => new(key, default) { IsValueNull = true };
}
