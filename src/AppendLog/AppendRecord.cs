namespace AppendLog;

/// <summary>
/// One record to append: an optional key, a value (or none, a tombstone for key compaction) and optional headers.
/// The log copies the bytes before the append call returns or awaits, so the caller may reuse its buffers
/// as soon as the call has returned its task.
/// </summary>
public readonly struct AppendRecord
{
    /// <summary>A record with only a value (no key, no headers).</summary>
    /// <param name="value">The value bytes.</param>
    public AppendRecord(ReadOnlyMemory<byte> value)
    {
        Value = value;
        HasValue = true;
    }

    /// <summary>A record with a key, a value and optional headers.</summary>
    /// <param name="key">The key bytes, used by key compaction.</param>
    /// <param name="value">The value bytes.</param>
    /// <param name="headers">Optional headers.</param>
    public AppendRecord(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, IReadOnlyList<RecordHeader>? headers = null)
    {
        Key = key;
        HasKey = true;
        Value = value;
        HasValue = true;
        Headers = headers;
    }

    /// <summary>A tombstone: a key with no value. Key compaction removes older values of the key.</summary>
    /// <param name="key">The key whose values are deleted.</param>
    /// <returns>The tombstone record.</returns>
    public static AppendRecord Tombstone(ReadOnlyMemory<byte> key) => new(key, hasKey: true);

    private AppendRecord(ReadOnlyMemory<byte> key, bool hasKey)
    {
        Key = key;
        HasKey = hasKey;
    }

    /// <summary>The key bytes; empty when <see cref="HasKey"/> is false.</summary>
    public ReadOnlyMemory<byte> Key { get; }

    /// <summary>True when the record has a key (a null key is encoded as length -1).</summary>
    public bool HasKey { get; }

    /// <summary>The value bytes; empty for a tombstone.</summary>
    public ReadOnlyMemory<byte> Value { get; }

    /// <summary>False for a tombstone (a null value, encoded as length -1).</summary>
    public bool HasValue { get; }

    /// <summary>The headers, or null when there are none.</summary>
    public IReadOnlyList<RecordHeader>? Headers { get; }
}
