namespace AppendLog.Format;

/// <summary>
/// Walks the records section of a batch, yielding <see cref="RecordView"/>s over the batch's own bytes.
/// Usable with <c>foreach</c>. Every record is fully validated (all varints, lengths and headers inside the
/// record's bounds, offset deltas increasing and at most lastOffsetDelta, exactly recordCount records and
/// no bytes after them) before it is returned.
/// </summary>
internal ref struct RecordEnumerator
{
    /// <summary>
    /// The smallest record body: attributes, timestampDelta, offsetDelta, keyLength, valueLength and
    /// headerCount, one byte each (6). A record length varint below this is malformed at once.
    /// </summary>
    private const int RecordBodySizeMin = 6;

    private readonly ReadOnlySpan<byte> _records;
    private readonly long _baseOffset;
    private readonly long _baseTimestamp;

    /// <summary>With the LogAppendTime attribute, Kafka's rule: every record's timestamp is the batch's maxTimestamp.</summary>
    private readonly long? _logAppendTime;
    private readonly int _recordCount;
    private readonly int _lastOffsetDelta;
    private int _position;
    private int _index;
    private int _previousOffsetDelta;
    private RecordView _current;

    /// <summary>Creates an enumerator over a records section described by <paramref name="header"/>.</summary>
    /// <exception cref="RecordBatchFormatException">recordCount is negative.</exception>
    public RecordEnumerator(ReadOnlySpan<byte> records, in RecordBatchHeader header)
    {
        if (header.RecordCount < 0)
        {
            throw new RecordBatchFormatException($"Malformed batch: recordCount is {header.RecordCount}.", 0, "offsetRange");
        }

        _records = records;
        _baseOffset = header.BaseOffset;
        _baseTimestamp = header.BaseTimestamp;
        _logAppendTime = (header.Attributes & RecordBatch.LogAppendTimeFlag) != 0 ? header.MaxTimestamp : null;
        _recordCount = header.RecordCount;
        _lastOffsetDelta = header.LastOffsetDelta;
        _position = 0;
        _index = 0;
        _previousOffsetDelta = -1;
        _current = default;
    }

    /// <summary>The record at the current position.</summary>
    public readonly RecordView Current => _current;

    /// <summary>Returns this enumerator, for <c>foreach</c>.</summary>
    public readonly RecordEnumerator GetEnumerator() => this;

    /// <summary>Advances to the next record.</summary>
    /// <returns>False after the last of recordCount records.</returns>
    /// <exception cref="RecordBatchFormatException">The next record, or the end of the section, is malformed.</exception>
    public bool MoveNext()
    {
        if (_index == _recordCount)
        {
            if (_position != _records.Length)
            {
                new RecordReader(_records[_position..], _position, _index)
                    .Throw("end of batch", $"expected after {_recordCount} records, but {_records.Length - _position} bytes remain");
            }

            return false;
        }

        var lengthReader = new RecordReader(_records[_position..], _position, _index);
        if (lengthReader.Remaining == 0)
        {
            lengthReader.Throw("record count", $"is {_recordCount}, but the batch ends after {_index} records");
        }

        int length = lengthReader.ReadVarint("record length");
        if (length < RecordBodySizeMin || length > lengthReader.Remaining)
        {
            lengthReader.Throw(
                "record length",
                $"{length} is outside {RecordBodySizeMin}..{lengthReader.Remaining} (the bytes left in the batch)");
        }

        int bodyStart = _position + lengthReader.Position;
        _current = ReadBody(new RecordReader(_records.Slice(bodyStart, length), bodyStart, _index));
        _position = bodyStart + length;
        _index++;
        return true;
    }

    private RecordView ReadBody(RecordReader reader)
    {
        byte attributes = reader.ReadByte("attributes");
        long timestampDelta = reader.ReadVarlong("timestampDelta");
        int offsetDelta = reader.ReadVarint("offsetDelta");
        if (offsetDelta <= _previousOffsetDelta || offsetDelta > _lastOffsetDelta)
        {
            reader.Throw("offsetDelta", $"{offsetDelta} is not in {_previousOffsetDelta + 1}..{_lastOffsetDelta}");
        }

        _previousOffsetDelta = offsetDelta;
        bool hasKey = reader.ReadLengthPrefixed("key", nullable: true, out ReadOnlySpan<byte> key);
        bool hasValue = reader.ReadLengthPrefixed("value", nullable: true, out ReadOnlySpan<byte> value);
        int headerCount = reader.ReadVarint("headerCount");
        if (headerCount < 0)
        {
            reader.Throw("headerCount", $"{headerCount} is negative");
        }

        int headersStart = reader.Position;
        for (int i = 0; i < headerCount; i++)
        {
            // Each header takes at least 2 bytes, so a huge headerCount fails on missing bytes, not on time.
            reader.ReadLengthPrefixed("header key", nullable: false, out _);
            reader.ReadLengthPrefixed("header value", nullable: true, out _);
        }

        if (reader.Remaining != 0)
        {
            reader.Throw("record length", $"leaves {reader.Remaining} bytes after the last header");
        }

        // Validation done: the header bytes are handed to a view that re-reads them with the same checks.
        return new RecordView(
            _baseOffset + offsetDelta,
            _logAppendTime ?? (_baseTimestamp + timestampDelta),
            attributes,
            key,
            hasKey,
            value,
            hasValue,
            new RecordHeaderEnumerator(reader.Slice(headersStart), headerCount));
    }
}
