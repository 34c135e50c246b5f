namespace AppendLog.Format;

/// <summary>Walks a record's headers (already validated by <see cref="RecordEnumerator"/>); usable with <c>foreach</c>.</summary>
internal ref struct RecordHeaderEnumerator
{
    private readonly ReadOnlySpan<byte> _headers;
    private int _position;
    private int _index;
    private RecordHeaderView _current;

    /// <summary>Creates an enumerator over <paramref name="count"/> headers encoded in <paramref name="headers"/>.</summary>
    public RecordHeaderEnumerator(ReadOnlySpan<byte> headers, int count)
    {
        _headers = headers;
        Count = count;
        _position = 0;
        _index = 0;
        _current = default;
    }

    /// <summary>The number of headers.</summary>
    public int Count { get; }

    /// <summary>The encoded headers (all of them, whatever the position).</summary>
    public readonly ReadOnlySpan<byte> Bytes => _headers;

    /// <summary>The header at the current position.</summary>
    public readonly RecordHeaderView Current => _current;

    /// <summary>Returns this enumerator, for <c>foreach</c>.</summary>
    public readonly RecordHeaderEnumerator GetEnumerator() => this;

    /// <summary>Advances to the next header.</summary>
    /// <returns>False after the last header.</returns>
    public bool MoveNext()
    {
        if (_index == Count)
        {
            return false;
        }

        // The same checked reader as the first pass: validation already succeeded, but re-checking is a few
        // compares and keeps this type safe even if someone constructs it over unvalidated bytes.
        var reader = new RecordReader(_headers[_position..], _position, _index);
        reader.ReadLengthPrefixed("header key", nullable: false, out ReadOnlySpan<byte> key);
        bool hasValue = reader.ReadLengthPrefixed("header value", nullable: true, out ReadOnlySpan<byte> value);
        _current = new RecordHeaderView(key, value, hasValue);
        _position += reader.Position;
        _index++;
        return true;
    }
}
