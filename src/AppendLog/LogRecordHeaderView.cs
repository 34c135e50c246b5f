namespace AppendLog;

/// <summary>
/// A record header viewed without copying (see <see cref="LogRecordView.EnumerateHeaders"/>): its bytes are valid only
/// as long as the <see cref="LogRecordView"/> it came from.
/// </summary>
public readonly struct LogRecordHeaderView
{
    internal LogRecordHeaderView(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, bool isValueNull)
    {
        Key = key;
        Value = value;
        IsValueNull = isValueNull;
    }

    /// <summary>The header key, UTF-8 encoded.</summary>
    public ReadOnlyMemory<byte> Key { get; }

    /// <summary>The header value; empty when <see cref="IsValueNull"/> is true.</summary>
    public ReadOnlyMemory<byte> Value { get; }

    /// <summary>True when the value is null (Kafka writes length -1) rather than empty, as in <see cref="RecordHeader.IsValueNull"/>.</summary>
    public bool IsValueNull { get; }
}
