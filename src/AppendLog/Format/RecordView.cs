namespace AppendLog.Format;

/// <summary>
/// One decoded record, viewing the batch's bytes (or the decompression scratch): valid only while those
/// bytes are.
/// </summary>
internal readonly ref struct RecordView
{
    private readonly ReadOnlySpan<byte> _key;
    private readonly ReadOnlySpan<byte> _value;
    private readonly RecordHeaderEnumerator _headers;

    /// <summary>Creates a view; the enumerator validated every field first.</summary>
    public RecordView(
        long offset,
        long timestampMs,
        byte attributes,
        ReadOnlySpan<byte> key,
        bool hasKey,
        ReadOnlySpan<byte> value,
        bool hasValue,
        RecordHeaderEnumerator headers)
    {
        Offset = offset;
        TimestampMs = timestampMs;
        Attributes = attributes;
        _key = key;
        HasKey = hasKey;
        _value = value;
        HasValue = hasValue;
        _headers = headers;
    }

    /// <summary>The record's offset: the batch's baseOffset + the record's offsetDelta.</summary>
    public long Offset { get; }

    /// <summary>The record's timestamp in Unix milliseconds: baseTimestamp + timestampDelta, or the batch's maxTimestamp
    /// when the batch has the LogAppendTime attribute (Kafka's rule).</summary>
    public long TimestampMs { get; }

    /// <summary>The record's attribute byte (unused by Kafka; 0 from our encoder).</summary>
    public byte Attributes { get; }

    /// <summary>The key bytes; empty when <see cref="HasKey"/> is false.</summary>
    public ReadOnlySpan<byte> Key => _key;

    /// <summary>False for a null key (length -1).</summary>
    public bool HasKey { get; }

    /// <summary>The value bytes; empty when <see cref="HasValue"/> is false.</summary>
    public ReadOnlySpan<byte> Value => _value;

    /// <summary>False for a null value (length -1, a tombstone).</summary>
    public bool HasValue { get; }

    /// <summary>The number of headers.</summary>
    public int HeaderCount => _headers.Count;

    /// <summary>The headers, in order.</summary>
    public RecordHeaderEnumerator Headers => _headers;
}
