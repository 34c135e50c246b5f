using AppendLog.Format;

namespace AppendLog;

/// <summary>
/// A record read back without copying, as <see cref="SegmentedLog.ReadViewsAsync"/> returns it: its key, value and
/// headers view the batch's bytes where the reader holds them (the shared <see cref="BatchCache"/>, the reader's pooled
/// read buffers, or its reusable decompression buffer).
/// <para>
/// A view is valid until the enumeration moves to the next record or ends. Reading any member of a view after that
/// throws <see cref="InvalidOperationException"/> (each view carries the reader's record number, compared on every
/// access). Memory already taken from a view (<see cref="Key"/>, <see cref="Value"/>, a header's bytes) is not tracked:
/// it must not be used after the enumeration moves on, since the buffer behind it may then hold other data. To keep a
/// record, copy it with <see cref="ToRecord"/> (or copy the bytes needed).
/// </para>
/// </summary>
public readonly struct LogRecordView
{
    private readonly RecordViewSource? _source;
    private readonly int _version;

    internal LogRecordView(RecordViewSource source, int version)
    {
        _source = source;
        _version = version;
    }

    /// <summary>The record's offset in the log.</summary>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public long Offset => Slot.Offset;

    /// <summary>The record's timestamp, in milliseconds since the Unix epoch (UTC), assigned at append.</summary>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public long TimestampMs => Slot.TimestampMs;

    /// <summary>The record's timestamp.</summary>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public DateTimeOffset Timestamp => DateTimeOffset.FromUnixTimeMilliseconds(TimestampMs);

    /// <summary>The leader epoch (Raft term) stored with the record's batch; 0 when unused.</summary>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public int LeaderEpoch => Source.LeaderEpoch;

    /// <summary>False when the record has no key (Kafka's null key); <see cref="Key"/> is then empty.</summary>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public bool HasKey => Slot.HasKey;

    /// <summary>The key's bytes, valid until the enumeration moves on; empty when <see cref="HasKey"/> is false.</summary>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public ReadOnlyMemory<byte> Key
    {
        get
        {
            ref readonly var slot = ref Slot;
            return _source!.Records.Slice(slot.KeyStart, slot.KeyLength);
        }
    }

    /// <summary>False for a tombstone (Kafka's null value); <see cref="Value"/> is then empty.</summary>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public bool HasValue => Slot.HasValue;

    /// <summary>The value's bytes, valid until the enumeration moves on; empty when <see cref="HasValue"/> is false.</summary>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public ReadOnlyMemory<byte> Value
    {
        get
        {
            ref readonly var slot = ref Slot;
            return _source!.Records.Slice(slot.ValueStart, slot.ValueLength);
        }
    }

    /// <summary>The number of headers.</summary>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public int HeaderCount => Slot.HeaderCount;

    /// <summary>Enumerates the headers in order, without copying (usable with <c>foreach</c>).</summary>
    /// <returns>An enumerator valid as long as this view.</returns>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public HeaderEnumerator EnumerateHeaders()
    {
        ref readonly var slot = ref Slot;
        return new HeaderEnumerator(_source!, _version, _source!.Records.Slice(slot.HeadersStart, slot.HeadersLength), slot.HeaderCount);
    }

    /// <summary>Copies the record into a <see cref="LogRecord"/> that owns its bytes and stays valid.</summary>
    /// <returns>The copy, equal to what <see cref="SegmentedLog.ReadAsync"/> returns for this record.</returns>
    /// <exception cref="InvalidOperationException">The enumeration has moved past this record, or the view is default.</exception>
    public LogRecord ToRecord()
    {
        ref readonly var slot = ref Slot;
        var records = _source!.Records.Span;
        RecordHeader[] headers = slot.HeaderCount == 0 ? [] : new RecordHeader[slot.HeaderCount];
        int i = 0;
        foreach (var h in EnumerateHeaders())
        {
            string key = System.Text.Encoding.UTF8.GetString(h.Key.Span);
            headers[i++] = h.IsValueNull ? RecordHeader.WithNullValue(key) : new RecordHeader(key, h.Value.ToArray());
        }

        return new LogRecord(
            slot.Offset,
            slot.TimestampMs,
            _source.LeaderEpoch,
            slot.HasKey ? records.Slice(slot.KeyStart, slot.KeyLength).ToArray() : null,
            slot.HasValue ? records.Slice(slot.ValueStart, slot.ValueLength).ToArray() : null,
            headers);
    }

    private RecordViewSource Source
    {
        get
        {
            var source = _source;
            if (source is null || source.Version != _version)
            {
                RecordViewSource.ThrowStale();
            }

            return source;
        }
    }

    private ref readonly RecordViewSource.Slot Slot => ref Source.Current;

    /// <summary>
    /// Walks a record's headers without copying; returned by <see cref="EnumerateHeaders"/>. Like the view, it throws
    /// <see cref="InvalidOperationException"/> once the enumeration of records has moved past the record.
    /// </summary>
    public struct HeaderEnumerator
    {
        private readonly RecordViewSource _source;
        private readonly int _version;
        private readonly ReadOnlyMemory<byte> _headers;
        private readonly int _count;
        private int _position;
        private int _index;
        private LogRecordHeaderView _current;

        internal HeaderEnumerator(RecordViewSource source, int version, ReadOnlyMemory<byte> headers, int count)
        {
            _source = source;
            _version = version;
            _headers = headers;
            _count = count;
            _position = 0;
            _index = 0;
            _current = default;
        }

        /// <summary>The header at the current position.</summary>
        public readonly LogRecordHeaderView Current => _current;

        /// <summary>Returns this enumerator, for <c>foreach</c>.</summary>
        /// <returns>This enumerator.</returns>
        public readonly HeaderEnumerator GetEnumerator() => this;

        /// <summary>Advances to the next header.</summary>
        /// <returns>False after the last header.</returns>
        /// <exception cref="InvalidOperationException">The enumeration of records has moved past the record, or the enumerator is default.</exception>
        public bool MoveNext()
        {
            if (_source is null || _source.Version != _version)
            {
                RecordViewSource.ThrowStale();
            }

            if (_index == _count)
            {
                return false;
            }

            // The record enumerator validated every header before the view was handed out; the checked reader
            // re-reads them with the same bounds checks.
            var span = _headers.Span;
            var reader = new RecordReader(span[_position..], _position, _index);
            reader.ReadLengthPrefixed("header key", nullable: false, out ReadOnlySpan<byte> key);
            bool hasValue = reader.ReadLengthPrefixed("header value", nullable: true, out ReadOnlySpan<byte> value);
            _current = new LogRecordHeaderView(
                _headers.Slice(RecordViewSource.OffsetIn(span, key), key.Length),
                hasValue ? _headers.Slice(RecordViewSource.OffsetIn(span, value), value.Length) : default,
                isValueNull: !hasValue);
            _position += reader.Position;
            _index++;
            return true;
        }
    }
}
