namespace AppendLog.Format;

/// <summary>One record header: its UTF-8 key and its value, viewing the batch's bytes.</summary>
internal readonly ref struct RecordHeaderView
{
    /// <summary>Creates a header view.</summary>
    public RecordHeaderView(ReadOnlySpan<byte> keyUtf8, ReadOnlySpan<byte> value, bool hasValue)
    {
        KeyUtf8 = keyUtf8;
        Value = value;
        HasValue = hasValue;
    }

    /// <summary>The header key, UTF-8 encoded.</summary>
    public ReadOnlySpan<byte> KeyUtf8 { get; }

    /// <summary>The header value; empty when <see cref="HasValue"/> is false.</summary>
    public ReadOnlySpan<byte> Value { get; }

    /// <summary>False for a null value (length -1; Kafka allows it, our encoder never writes it).</summary>
    public bool HasValue { get; }
}
