using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using AppendLog.Diagnostics;

namespace AppendLog.Format;

/// <summary>
/// The records of one batch at a time, decoded once into a reusable table of positions, for <see cref="LogRecordView"/>s
/// that view the batch's bytes (or this source's reusable decompression buffer). <see cref="Version"/> counts moves: a
/// view remembers the version it was made at and is stale once it differs, so a view used after the reader moved on
/// throws instead of reading bytes that may now belong to another batch. After the first batches have grown the
/// table and the buffer, loading a batch and moving through its records allocate nothing. Not thread-safe: one reader
/// owns it.
/// </summary>
internal sealed class RecordViewSource
{
    private Slot[] _slots = new Slot[16];
    private byte[]? _scratch;
    private int _count;
    private int _index = -1;
    private int _version;

    /// <summary>Changes every time the source moves to another record, loads a batch or is closed.</summary>
    public int Version => _version;

    /// <summary>The records section the slots point into.</summary>
    public ReadOnlyMemory<byte> Records { get; private set; }

    /// <summary>The batch's leader epoch.</summary>
    public int LeaderEpoch { get; private set; }

    /// <summary>The current record's positions (valid after <see cref="MoveNext"/> returned true).</summary>
    public ref readonly Slot Current => ref _slots[_index];

    /// <summary>A view of the current record.</summary>
    public LogRecordView CurrentView => new(this, _version);

    /// <summary>Loads the records of <paramref name="batch"/> at or after <paramref name="fromOffset"/>; the first <see cref="MoveNext"/> moves to the first of them.</summary>
    /// <param name="batch">A whole batch whose checksum was verified (<paramref name="header"/> is its header).</param>
    /// <param name="header">The batch's header.</param>
    /// <param name="fromOffset">Records below this offset are skipped.</param>
    /// <param name="decompressedLimit">The most bytes a compressed batch may inflate to.</param>
    /// <exception cref="RecordBatchFormatException">A record does not decode.</exception>
    /// <exception cref="InvalidDataException">A compressed batch inflates beyond <paramref name="decompressedLimit"/>.</exception>
    public void Load(ReadOnlyMemory<byte> batch, in RecordBatchHeader header, long fromOffset, int decompressedLimit)
    {
        _version++;
        _count = 0;
        _index = -1;
        Records = default;
        LeaderEpoch = header.PartitionLeaderEpoch;
        ReadOnlyMemory<byte> records;
        if (header.Codec == CompressionCodec.None)
        {
            records = batch[RecordBatch.HeaderSize..(int)header.TotalSize];
        }
        else
        {
            int written = Decompress(batch.Span, header, decompressedLimit);
            records = _scratch.AsMemory(0, written);
        }

        var span = records.Span;
        foreach (var r in RecordBatchDecoder.GetDecompressedRecords(span, header))
        {
            if (r.Offset < fromOffset)
            {
                continue;
            }

            if (_count == _slots.Length)
            {
                Array.Resize(ref _slots, _slots.Length * 2);
            }

            var headers = r.Headers.Bytes;
            _slots[_count++] = new Slot(
                r.Offset,
                r.TimestampMs,
                OffsetIn(span, r.Key),
                r.Key.Length,
                r.HasKey,
                OffsetIn(span, r.Value),
                r.Value.Length,
                r.HasValue,
                OffsetIn(span, headers),
                headers.Length,
                r.HeaderCount);
        }

        Records = records;
    }

    /// <summary>Moves to the next loaded record; every earlier view becomes stale.</summary>
    /// <returns>False after the batch's last record.</returns>
    public bool MoveNext()
    {
        _version++;
        if (_index + 1 >= _count)
        {
            _index = _count;
            return false;
        }

        _index++;
        return true;
    }

    /// <summary>Makes every view stale and forgets the batch (the reader is closing or moving its buffers).</summary>
    public void Close()
    {
        _version++;
        _count = 0;
        _index = -1;
        Records = default;
    }

    /// <summary>The position of <paramref name="inner"/> inside <paramref name="outer"/>; 0 for an empty span.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int OffsetIn(ReadOnlySpan<byte> outer, ReadOnlySpan<byte> inner)
    {
        if (inner.IsEmpty)
        {
            return 0;
        }

        bool inside = outer.Overlaps(inner, out int offset);
        Invariant.Assert(inside, "a decoded field lies inside the records section");
        return offset;
    }

    [DoesNotReturn]
    public static void ThrowStale() =>
        throw new InvalidOperationException("The record view is no longer valid: the enumeration has moved to another record or ended. Copy the record (LogRecordView.ToRecord) to keep it.");

    /// <summary>Inflates into the reusable buffer, growing it ×4 up to <paramref name="limit"/>; returns the bytes written.</summary>
    private int Decompress(ReadOnlySpan<byte> batch, in RecordBatchHeader header, int limit)
    {
        _scratch ??= new byte[Math.Min(limit, Math.Max(4 * batch.Length, 64 * 1024))];
        while (true)
        {
            var status = RecordBatchDecoder.DecompressRecords(batch, header, _scratch, out int written);
            if (status == OperationStatus.Done)
            {
                return written;
            }

            if (_scratch.Length >= limit)
            {
                throw new InvalidDataException("the compressed batch inflates beyond the allowed size");
            }

            _scratch = new byte[(int)Math.Min(limit, _scratch.Length * 4L)];
        }
    }

    /// <summary>Where one record's fields lie in <see cref="Records"/>.</summary>
    internal readonly record struct Slot(
        long Offset,
        long TimestampMs,
        int KeyStart,
        int KeyLength,
        bool HasKey,
        int ValueStart,
        int ValueLength,
        bool HasValue,
        int HeadersStart,
        int HeadersLength,
        int HeaderCount);
}
