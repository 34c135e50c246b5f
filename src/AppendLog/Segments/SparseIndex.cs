using System.Buffers.Binary;
using System.IO.Hashing;

namespace AppendLog.Segments;

/// <summary>
/// A sparse offset and time index of one segment: an entry (first offset of a batch, its file position, the
/// largest timestamp so far) at most every <see cref="LogOptions.IndexIntervalBytes"/> bytes of data (the first batch
/// always). Lookups binary-search the entries, then scan forward from the entry's position.
/// <para>
/// It also keeps the segment's leader-epoch history: the first offset of every run of batches with the same
/// partitionLeaderEpoch. Kafka's CRC does not cover that field, so a reader checks each batch it takes from disk against
/// this history (<see cref="EpochMatches"/>); sealed segments carry it in their index file, the active segment in the
/// clean-close record. An index file written before the history existed (format 1) has none: nothing to check against.
/// </para>
/// </summary>
internal sealed class SparseIndex
{
    private const uint Magic = 0x58494C41; // "ALIX" little-endian
    private const int HeaderSize = 4 + 4 + 8 + 8 + 8 + 8 + 4;
    private const int EntrySize = 8 + 8 + 8;

    private const int FormatWithoutEpochs = 1;
    private const int FormatWithEpochs = 2;
    private const int EpochStartSize = 8 + 4;

    private readonly List<Entry> _entries = new();

    /// <summary>Copy-on-write (epochs change rarely): readers check against it without the writer's lock.</summary>
    private EpochStart[] _epochs = [];
    private bool _epochsKnown = true;
    private long _lastIndexedPosition = long.MinValue / 2;

    /// <summary>
    /// The largest timestamp of every batch recorded so far. A suffix truncation keeps it: too large only makes a time
    /// lookup start its scan earlier, never skip a match.
    /// </summary>
    private long _runningMaxTimestampMs = long.MinValue;

    public readonly record struct Entry(long Offset, long Position, long MaxTimestampMs);

    /// <summary>From <see cref="Offset"/> on, batches carry <see cref="Epoch"/> (until the next start).</summary>
    public readonly record struct EpochStart(long Offset, int Epoch);

    public IReadOnlyList<EpochStart> Epochs => Volatile.Read(ref _epochs);

    /// <summary>Records the epoch of a batch appended (or scanned) at <paramref name="offset"/>, in offset order.</summary>
    public void ObserveEpoch(long offset, int epoch)
    {
        var epochs = Volatile.Read(ref _epochs);
        if (epochs.Length == 0 || epochs[^1].Epoch != epoch)
        {
            Volatile.Write(ref _epochs, [.. epochs, new EpochStart(offset, epoch)]);
        }
    }

    /// <summary>
    /// True when a batch at <paramref name="offset"/> may carry <paramref name="epoch"/>: the history says so, or there
    /// is no history for it (a format-1 index, or an offset before the first recorded batch).
    /// </summary>
    public bool EpochMatches(long offset, int epoch)
    {
        var epochs = Volatile.Read(ref _epochs);
        if (!_epochsKnown || epochs.Length == 0 || offset < epochs[0].Offset)
        {
            return true;
        }

        int lo = 0, hi = epochs.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >>> 1;
            if (epochs[mid].Offset <= offset)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return epochs[lo].Epoch == epoch;
    }

    /// <summary>Forgets the epochs of batches at or after <paramref name="offset"/> (suffix truncation).</summary>
    public void TruncateEpochsFrom(long offset)
    {
        var epochs = Volatile.Read(ref _epochs);
        int keep = Array.FindIndex(epochs, e => e.Offset >= offset);
        if (keep >= 0)
        {
            Volatile.Write(ref _epochs, epochs[..keep]);
        }
    }

    /// <summary>Takes <paramref name="from"/>'s entries and epoch history (recovery, after loading an index file).</summary>
    public void CopyFrom(SparseIndex from)
    {
        foreach (var e in from._entries)
        {
            MaybeAdd(e.Offset, e.Position, e.MaxTimestampMs, intervalBytes: 0);
        }

        Volatile.Write(ref _epochs, Volatile.Read(ref from._epochs));
        _epochsKnown = from._epochsKnown;
    }

    public int Count => _entries.Count;

    public IReadOnlyList<Entry> Entries => _entries;

    /// <summary>Records a batch that starts at <paramref name="position"/>; keeps it when <paramref name="intervalBytes"/> have passed since the last entry.</summary>
    /// <remarks>
    /// Every batch raises the running maximum timestamp, indexed or not, and an entry stores the maximum over every batch
    /// up to and including its own: timestamps may go backwards, and a batch between two entries must not be skipped
    /// by a time lookup (the entries' values are thereby non-decreasing, so the lookup can binary-search them).
    /// </remarks>
    public void MaybeAdd(long offset, long position, long maxTimestampMs, int intervalBytes)
    {
        _runningMaxTimestampMs = Math.Max(_runningMaxTimestampMs, maxTimestampMs);
        if (position - _lastIndexedPosition >= intervalBytes)
        {
            _entries.Add(new Entry(offset, position, _runningMaxTimestampMs));
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
        int lo = 0, hi = _entries.Count - 1, first = _entries.Count;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_entries[mid].MaxTimestampMs >= timestampMs)
            {
                first = mid;
                hi = mid - 1;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return first <= 0 ? 0 : _entries[first - 1].Position;
    }

    /// <summary>Serializes the index with the segment's summary, CRC32C-protected.</summary>
    public byte[] Serialize(long baseOffset, long endOffset, long size, long maxTimestampMs)
    {
        var epochs = Volatile.Read(ref _epochs);
        var bytes = new byte[HeaderSize + (_entries.Count * EntrySize) + 4 + (epochs.Length * EpochStartSize) + 4];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(span[4..], _entries.Count);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], baseOffset);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], endOffset);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], size);
        BinaryPrimitives.WriteInt64LittleEndian(span[32..], maxTimestampMs);
        BinaryPrimitives.WriteInt32LittleEndian(span[40..], FormatWithEpochs);
        int at = HeaderSize;
        foreach (var e in _entries)
        {
            BinaryPrimitives.WriteInt64LittleEndian(span[at..], e.Offset);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 8)..], e.Position);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 16)..], e.MaxTimestampMs);
            at += EntrySize;
        }

        BinaryPrimitives.WriteInt32LittleEndian(span[at..], epochs.Length);
        at += 4;
        foreach (var e in epochs)
        {
            BinaryPrimitives.WriteInt64LittleEndian(span[at..], e.Offset);
            BinaryPrimitives.WriteInt32LittleEndian(span[(at + 8)..], e.Epoch);
            at += EpochStartSize;
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
        int format = BinaryPrimitives.ReadInt32LittleEndian(bytes[40..]);
        long entriesEnd = HeaderSize + ((long)count * EntrySize);
        if (count < 0 || format is not (FormatWithoutEpochs or FormatWithEpochs) || bytes.Length < entriesEnd + 4)
        {
            return false;
        }

        int epochCount = format == FormatWithEpochs ? BinaryPrimitives.ReadInt32LittleEndian(bytes[(int)entriesEnd..]) : 0;
        long expectedLength = format == FormatWithEpochs ? entriesEnd + 4 + ((long)epochCount * EpochStartSize) + 4 : entriesEnd + 4;
        if (epochCount < 0 || bytes.Length != expectedLength)
        {
            return false;
        }

        int end = bytes.Length - 4;
        if (Crc32C(bytes[..end]) != BinaryPrimitives.ReadUInt32LittleEndian(bytes[end..])
            || BinaryPrimitives.ReadInt64LittleEndian(bytes[8..]) != baseOffset)
        {
            return false;
        }

        index._epochsKnown = format == FormatWithEpochs;
        var epochs = new EpochStart[epochCount];
        for (int i = 0, at = (int)entriesEnd + 4; i < epochCount; i++, at += EpochStartSize)
        {
            epochs[i] = new EpochStart(BinaryPrimitives.ReadInt64LittleEndian(bytes[at..]), BinaryPrimitives.ReadInt32LittleEndian(bytes[(at + 8)..]));
            if (i > 0 && epochs[i].Offset <= epochs[i - 1].Offset)
            {
                return false;
            }
        }

        index._epochs = epochs;
        end = (int)entriesEnd;

        endOffset = BinaryPrimitives.ReadInt64LittleEndian(bytes[16..]);
        size = BinaryPrimitives.ReadInt64LittleEndian(bytes[24..]);
        maxTimestampMs = BinaryPrimitives.ReadInt64LittleEndian(bytes[32..]);
        for (int at = HeaderSize; at < end; at += EntrySize)
        {
            var e = new Entry(
                BinaryPrimitives.ReadInt64LittleEndian(bytes[at..]),
                BinaryPrimitives.ReadInt64LittleEndian(bytes[(at + 8)..]),
                BinaryPrimitives.ReadInt64LittleEndian(bytes[(at + 16)..]));
            if (index._entries.Count > 0 && e.MaxTimestampMs < index._entries[^1].MaxTimestampMs)
            {
                return false; // entries carry a running maximum: a decrease means the file is not what it claims
            }

            index._entries.Add(e);
            index._lastIndexedPosition = e.Position;
            index._runningMaxTimestampMs = e.MaxTimestampMs;
        }

        return endOffset >= baseOffset && size >= 0;
    }

    private static uint Crc32C(ReadOnlySpan<byte> data) => Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, data);
}
