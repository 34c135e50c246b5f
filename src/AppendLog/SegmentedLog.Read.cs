using System.Runtime.CompilerServices;
using System.Text;
using AppendLog.Diagnostics;
using AppendLog.Format;

namespace AppendLog;

/// <summary>Reading back by offset (the read-path work adds time lookups, caching and tailing).</summary>
public sealed partial class SegmentedLog
{
    /// <summary>
    /// Reads the records from <paramref name="fromOffset"/> up to the durable end offset as it was when the
    /// enumeration started, as copies: every key, value and header is a new array the caller owns, which costs an
    /// allocation per record. To read without copying, use <see cref="ReadViewsAsync"/>. Every batch's checksum is
    /// verified before its records are returned.
    /// </summary>
    /// <param name="fromOffset">The first offset to return: from <see cref="StartOffset"/> to <see cref="DurableEndOffset"/>.</param>
    /// <param name="cancellationToken">Ends the enumeration.</param>
    /// <returns>The records, in offset order.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromOffset"/> is outside the readable range.</exception>
    /// <exception cref="LogCorruptedException">A batch failed its checksum (names file and position).</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public async IAsyncEnumerable<LogRecord> ReadAsync(long fromOffset, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var batch in ReadBatchesAsync(fromOffset, cancellationToken).ConfigureAwait(false))
        {
            foreach (var record in DecodeRecords(batch))
            {
                if (record.Offset >= fromOffset)
                {
                    yield return record;
                }
            }
        }
    }

    /// <summary>
    /// Reads the records from <paramref name="fromOffset"/> up to the durable end offset as it was when the
    /// enumeration started, without copying them: each <see cref="LogRecordView"/> views the batch's bytes where the
    /// reader holds them, and is valid only until the enumeration moves to the next record (a stale view throws
    /// <see cref="InvalidOperationException"/>; copy what must outlive it, for example with
    /// <see cref="LogRecordView.ToRecord"/>). In steady state it allocates nothing per record: batches come from the
    /// shared <see cref="BatchCache"/>, or are read from disk into the reader's pooled buffers and one reusable array.
    /// The records and their order are those of <see cref="ReadAsync"/>.
    /// </summary>
    /// <param name="fromOffset">The first offset to return: from <see cref="StartOffset"/> to <see cref="DurableEndOffset"/>.</param>
    /// <param name="cancellationToken">Ends the enumeration (the enumerator then throws <see cref="OperationCanceledException"/>).</param>
    /// <returns>The records, in offset order.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromOffset"/> is outside the readable range, or was deleted by retention while being read.</exception>
    /// <exception cref="LogCorruptedException">A batch failed its checksum or does not decode (names file and position).</exception>
    /// <exception cref="LogTruncatedException">A suffix truncation removed records this reader had returned.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async IAsyncEnumerable<LogRecordView> ReadViewsAsync(long fromOffset, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        long end = ReadableEnd(fromOffset);

        var cursor = new Cursor(this, fromOffset);
        await using var closeCursor = cursor.ConfigureAwait(false);
        var source = new RecordViewSource();
        try
        {
            while (await cursor.NextBatchAsync(end, borrow: true, cancellationToken).ConfigureAwait(false) is { } batch)
            {
                LoadViews(source, batch, fromOffset);
                while (source.MoveNext())
                {
                    yield return source.CurrentView;
                }
            }
        }
        finally
        {
            // The cursor's buffers go back to the pool (or are reused): no view may read them any more.
            source.Close();
        }
    }

    /// <summary>
    /// Opens a <see cref="LogBatchReader"/> at <paramref name="fromOffset"/>: a reader of stored batches that keeps its
    /// place, read-ahead and buffers across calls and lends each disk batch from pooled memory (0 B per batch in steady
    /// state), for servers that forward batches verbatim in rounds.
    /// </summary>
    /// <param name="fromOffset">The first offset to return: from <see cref="StartOffset"/> to <see cref="DurableEndOffset"/> (the first batch returned holds it).</param>
    /// <returns>The reader; dispose it to release its buffers.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromOffset"/> is outside the readable range.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public LogBatchReader OpenBatchReader(long fromOffset)
    {
        long end = ReadableEnd(fromOffset);

        return new LogBatchReader(this, fromOffset);
    }

    /// <summary>For <see cref="LogBatchReader"/>: throws <see cref="ObjectDisposedException"/> once the log is disposed.</summary>
    internal void ThrowIfDisposedForReader() => ThrowIfDisposed();

    private void LoadViews(RecordViewSource source, in BatchRef batch, long fromOffset)
    {
        // The cursor verified the checksum when it read the batch (from disk or the writer's memory) before it was
        // cached or lent: the header only needs decoding here.
        bool complete = RecordBatchHeader.TryRead(batch.Bytes.Span, out var header);
        Invariant.Assert(complete && header.TotalSize == batch.Bytes.Length, "the cursor returns whole batches");
        try
        {
            source.Load(batch.Bytes, header, fromOffset, DecompressedBatchLimit);
        }
        catch (RecordBatchFormatException ex)
        {
            throw new LogCorruptedException(batch.SourcePath, batch.SourcePosition, $"the batch does not decode ({ex.Check}): {ex.Message}");
        }
        catch (InvalidDataException ex)
        {
            throw new LogCorruptedException(batch.SourcePath, batch.SourcePosition, ex.Message);
        }
    }

    private void AddRecords(ReadOnlySpan<byte> batch, in RecordBatchHeader header, string path, long position, long from, long end, List<LogRecord> into)
    {
        var records = header.Codec == CompressionCodec.None
            ? RecordBatchDecoder.GetRecords(batch, header)
            : Decompress(batch, header, path, position, out _);
        foreach (var r in records)
        {
            if (r.Offset < from || r.Offset >= end)
            {
                continue;
            }

            into.Add(new LogRecord(
                r.Offset,
                r.TimestampMs,
                header.PartitionLeaderEpoch,
                r.HasKey ? r.Key.ToArray() : null,
                r.HasValue ? r.Value.ToArray() : null,
                CopyHeaders(r)));
        }
    }

    /// <summary>
    /// The most bytes a compressed batch's records may inflate to: 64 × <see cref="LogOptions.MaximumBatchSize"/>, at most
    /// 256 MiB (the compactor's bound). The raw append path refuses batches beyond it, and the read path reads up to it,
    /// so every accepted batch reads back.
    /// </summary>
    private int DecompressedBatchLimit => (int)Math.Min(256L * 1024 * 1024, 64L * _options.MaximumBatchSize);

    private RecordEnumerator Decompress(ReadOnlySpan<byte> batch, in RecordBatchHeader header, string path, long position, out byte[] scratch)
    {
        scratch = new byte[Math.Max(4 * batch.Length, 64 * 1024)];
        while (true)
        {
            var status = RecordBatchDecoder.DecompressRecords(batch, header, scratch, out int written);
            if (status == System.Buffers.OperationStatus.Done)
            {
                return RecordBatchDecoder.GetDecompressedRecords(scratch.AsSpan(0, written), header);
            }

            if (scratch.Length >= DecompressedBatchLimit)
            {
                throw new LogCorruptedException(path, position, "the compressed batch inflates beyond the allowed size");
            }

            scratch = new byte[Math.Min(DecompressedBatchLimit, scratch.Length * 4L)];
        }
    }

    private static IReadOnlyList<RecordHeader> CopyHeaders(in RecordView record)
    {
        if (record.HeaderCount == 0)
        {
            return Array.Empty<RecordHeader>();
        }

        var headers = new RecordHeader[record.HeaderCount];
        int i = 0;
        foreach (var h in record.Headers)
        {
            string key = Encoding.UTF8.GetString(h.KeyUtf8);
            headers[i++] = h.HasValue ? new RecordHeader(key, h.Value.ToArray()) : RecordHeader.WithNullValue(key);
        }

        return headers;
    }

    /// <summary>
    /// The durable end a reader starting at <paramref name="fromOffset"/> reads up to, after checking that the log is open
    /// and the offset readable ([<see cref="StartOffset"/>, <see cref="DurableEndOffset"/>]).
    /// </summary>
    private long ReadableEnd(long fromOffset)
    {
        ThrowIfDisposed();
        long end = DurableEndOffset;
        long start = StartOffset;
        if (fromOffset < start || fromOffset > end)
        {
            throw new ArgumentOutOfRangeException(nameof(fromOffset), fromOffset, $"The readable offsets are [{start}, {end}).");
        }

        return end;
    }
}
