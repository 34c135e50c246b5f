using System.Buffers.Binary;
using System.IO.Hashing;

namespace AppendLog.Segments;

/// <summary>
/// A sparse offset and time index of one segment: an entry (first offset of a batch, its file position, the
/// largest timestamp so far) at most every <see cref="LogOptions.IndexIntervalBytes"/> bytes of data (the first batch
/// always). Lookups binary-search the entries, then scan forward from the entry's position.
/// </summary>
internal sealed class SparseIndex
{
    private const uint Magic = 0x58494C41; // "ALIX" little-endian
    private const int HeaderSize = 4 + 4 + 8 + 8 + 8 + 8 + 4;
    private const int EntrySize = 8 + 8 + 8;

    private readonly List<Entry> _entries = new();
    private long _lastIndexedPosition = long.MinValue / 2;

    public readonly record struct Entry(long Offset, long Position, long MaxTimestampMs);

    public int Count => _entries.Count;

    public IReadOnlyList<Entry> Entries => _entries;

    /// <summary>Records a batch that starts at <paramref name="position"/>; keeps it when <paramref name="intervalBytes"/> have passed since the last entry.</summary>
    public void MaybeAdd(long offset, long position, long maxTimestampMs, int intervalBytes)
    {
        if (position - _lastIndexedPosition >= intervalBytes)
        {
            _entries.Add(new Entry(offset, position, maxTimestampMs));
            _lastIndexedPosition = position;
        }
    }

    /// <summary>Drops every entry at or after <paramref name="position"/> (suffix truncation).</summary>
    public void TruncateFrom(long position)
    {
        int keep = _entries.FindIndex(e => e.Position >= position);
        if (keep >= 0)
        {
            _entries.RemoveRange(keep, _entries.Count - keep);
        }

        _lastIndexedPosition = _entries.Count > 0 ? _entries[^1].Position : long.MinValue / 2;
    }

    /// <summary>The position of the last entry whose offset is ≤ <paramref name="offset"/>, or 0.</summary>
    public long FindPositionForOffset(long offset)
    {
        int lo = 0, hi = _entries.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_entries[mid].Offset <= offset)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found < 0 ? 0 : _entries[found].Position;
    }

    /// <summary>
    /// The position of the entry before the first whose running max timestamp reaches <paramref name="timestampMs"/>,
    /// or 0: the first record with timestamp ≥ the target cannot lie before it.
    /// </summary>
    public long FindPositionForTimestamp(long timestampMs)
    {
        int first = _entries.FindIndex(e => e.MaxTimestampMs >= timestampMs);
        return first <= 0 ? 0 : _entries[first - 1].Position;
    }

    /// <summary>Serializes the index with the segment's summary, CRC32C-protected.</summary>
    public byte[] Serialize(long baseOffset, long endOffset, long size, long maxTimestampMs)
    {
        var bytes = new byte[HeaderSize + (_entries.Count * EntrySize) + 4];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(span[4..], _entries.Count);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], baseOffset);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], endOffset);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], size);
        BinaryPrimitives.WriteInt64LittleEndian(span[32..], maxTimestampMs);
        BinaryPrimitives.WriteInt32LittleEndian(span[40..], 1);
        int at = HeaderSize;
        foreach (var e in _entries)
        {
            BinaryPrimitives.WriteInt64LittleEndian(span[at..], e.Offset);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 8)..], e.Position);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 16)..], e.MaxTimestampMs);
            at += EntrySize;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], Crc32C(span[..at]));
        return bytes;
    }

    /// <summary>Loads a serialized index; false when it is damaged or does not describe this segment.</summary>
    public static bool TryLoad(ReadOnlySpan<byte> bytes, long baseOffset, out SparseIndex index, out long endOffset, out long size, out long maxTimestampMs)
    {
        index = new SparseIndex();
        endOffset = size = maxTimestampMs = 0;
        if (bytes.Length < HeaderSize + 4 || BinaryPrimitives.ReadUInt32LittleEndian(bytes) != Magic)
        {
            return false;
        }

        int count = BinaryPrimitives.ReadInt32LittleEndian(bytes[4..]);
        if (count < 0 || bytes.Length != HeaderSize + ((long)count * EntrySize) + 4)
        {
            return false;
        }

        int end = bytes.Length - 4;
        if (Crc32C(bytes[..end]) != BinaryPrimitives.ReadUInt32LittleEndian(bytes[end..])
            || BinaryPrimitives.ReadInt64LittleEndian(bytes[8..]) != baseOffset)
        {
            return false;
        }

        endOffset = BinaryPrimitives.ReadInt64LittleEndian(bytes[16..]);
        size = BinaryPrimitives.ReadInt64LittleEndian(bytes[24..]);
        maxTimestampMs = BinaryPrimitives.ReadInt64LittleEndian(bytes[32..]);
        for (int at = HeaderSize; at < end; at += EntrySize)
        {
            var e = new Entry(
                BinaryPrimitives.ReadInt64LittleEndian(bytes[at..]),
                BinaryPrimitives.ReadInt64LittleEndian(bytes[(at + 8)..]),
                BinaryPrimitives.ReadInt64LittleEndian(bytes[(at + 16)..]));
            index._entries.Add(e);
            index._lastIndexedPosition = e.Position;
        }

        return endOffset >= baseOffset && size >= 0;
    }

    private static uint Crc32C(ReadOnlySpan<byte> data) => Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, data);
}
