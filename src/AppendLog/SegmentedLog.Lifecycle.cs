using System.Runtime.CompilerServices;
using AppendLog.Format;

namespace AppendLog;

/// <summary>Suffix truncation, raw batches, and tailing readers.</summary>
public sealed partial class SegmentedLog
{
    /// <summary>
    /// Removes every record at or after <paramref name="fromOffset"/> (what Raft does with conflicting entries).
    /// Everything accepted before the call is made durable first; the cut is durable when the call returns, and the
    /// next append gets <paramref name="fromOffset"/>. Appends made meanwhile wait, then land after the cut.
    /// </summary>
    /// <param name="fromOffset">The first offset to remove: the first offset of a batch, from <see cref="StartOffset"/> to <see cref="EndOffset"/>.</param>
    /// <param name="cancellationToken">Cancels the wait for earlier appends to become durable.</param>
    /// <returns>A task that completes when the truncation is durable.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromOffset"/> is outside [StartOffset, EndOffset].</exception>
    /// <exception cref="ArgumentException"><paramref name="fromOffset"/> lies inside a batch.</exception>
    /// <exception cref="InvalidOperationException">Another truncation is in progress.</exception>
    /// <exception cref="LogFaultedException">A write or sync failed.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public async ValueTask TruncateSuffixAsync(long fromOffset, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        long start = StartOffset, end = EndOffset;
        if (fromOffset < start || fromOffset > end)
        {
            throw new ArgumentOutOfRangeException(nameof(fromOffset), fromOffset, $"The log holds offsets [{start}, {end}).");
        }

        await _writer.TruncateSuffixAsync(fromOffset, _options.MaximumBatchSize, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Appends a batch received as bytes (Kafka RecordBatch v2, for example from <see cref="LogBatch.Bytes"/> of another
    /// log or from a Kafka producer) without re-encoding it. The batch is validated completely first, as a Kafka broker
    /// does (framing, checksum, codec, every record; see <see cref="InvalidRecordBatchException"/>), so that no accepted
    /// batch can make a later read fail. Its base offset is assigned by this log (the field is outside the checksum);
    /// its epoch, timestamps and producer fields are kept. Completes when durable, with the base offset.
    /// </summary>
    /// <param name="batch">The batch bytes: exactly one whole batch.</param>
    /// <param name="cancellationToken">Cancels the wait (see <see cref="AppendAsync(ReadOnlyMemory{byte}, CancellationToken)"/>).</param>
    /// <returns>The offset of the batch's first record.</returns>
    /// <exception cref="InvalidRecordBatchException">The bytes are not exactly one valid batch, or it exceeds
    /// <see cref="LogOptions.MaximumBatchSize"/>; <see cref="InvalidRecordBatchException.FailedCheck"/> names the check.
    /// Nothing was appended.</exception>
    /// <exception cref="LogFaultedException">A write or sync failed.</exception>
    /// <exception cref="LogDiskFullException">No space for the batch; nothing was appended.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<long> AppendRawBatchAsync(ReadOnlyMemory<byte> batch, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        var header = RecordBatchValidator.Validate(batch.Span, _options.MaximumBatchSize, DecompressedBatchLimit, nameof(batch));
        var copy = RentScratch(batch.Length).AsSpan(0, batch.Length);
        batch.Span.CopyTo(copy);
        long maxTimestamp = header.MaxTimestamp;
        if (_options.TimestampType == TimestampType.LogAppendTime)
        {
            maxTimestamp = _time.GetUtcNow().ToUnixTimeMilliseconds();
            RecordBatchEncoder.StampLogAppendTime(copy, maxTimestamp);
        }

        return AppendEncoded(copy, OffsetRange.OffsetCount(header), maxTimestamp, cancellationToken);
    }

    /// <summary>
    /// Reads raw batches (checksum verified) from the one holding <paramref name="fromOffset"/> up to the durable end
    /// offset as it was when the enumeration started. Batches come from the shared <see cref="BatchCache"/>, the
    /// writer's buffers (the recent tail) or the segment files (O_DIRECT, with read-ahead while sequential).
    /// </summary>
    /// <param name="fromOffset">An offset in [<see cref="StartOffset"/>, <see cref="DurableEndOffset"/>]; the first batch returned holds it.</param>
    /// <param name="cancellationToken">Ends the enumeration.</param>
    /// <returns>The batches in offset order; each <see cref="LogBatch"/> may be shared with other readers (do not modify its bytes).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromOffset"/> is outside the readable range, or was deleted by retention while being read.</exception>
    /// <exception cref="LogCorruptedException">A batch failed its checksum.</exception>
    /// <exception cref="LogTruncatedException">A suffix truncation removed records this reader had returned.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public async IAsyncEnumerable<LogBatch> ReadBatchesAsync(long fromOffset, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        long end = ReadableEnd(fromOffset);

        var cursor = new Cursor(this, fromOffset);
        await using var closeCursor = cursor.ConfigureAwait(false);
        while (await cursor.NextAsync(end, cancellationToken).ConfigureAwait(false) is { } batch)
        {
            yield return batch;
        }
    }

    /// <summary>
    /// Reads the records from <paramref name="fromOffset"/> and then keeps waiting for new durable records, returning
    /// each as soon as it is durable (woken by the sync that makes it durable: no polling; the new records are usually
    /// still in the writer's buffers and are copied from there). Ends only when cancelled (or the log is disposed or
    /// faulted, or truncated below what it returned).
    /// </summary>
    /// <param name="fromOffset">The first offset to return, from <see cref="StartOffset"/> up to <see cref="EndOffset"/>.</param>
    /// <param name="cancellationToken">Ends the enumeration (the enumerator then throws <see cref="OperationCanceledException"/>).</param>
    /// <returns>The records in offset order, without end.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromOffset"/> is outside the log.</exception>
    /// <exception cref="LogCorruptedException">A batch failed its checksum.</exception>
    /// <exception cref="LogFaultedException">The log faulted while waiting.</exception>
    /// <exception cref="LogTruncatedException">A suffix truncation removed records this reader had returned (raised at the cut).</exception>
    /// <exception cref="ObjectDisposedException">The log was disposed, also while the reader waited.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async IAsyncEnumerable<LogRecord> TailAsync(long fromOffset, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        long start = StartOffset;
        if (fromOffset < start || fromOffset > EndOffset)
        {
            throw new ArgumentOutOfRangeException(nameof(fromOffset), fromOffset, $"The log holds offsets [{start}, {EndOffset}).");
        }

        var cursor = new Cursor(this, fromOffset);
        await using var closeCursor = cursor.ConfigureAwait(false);
        long next = fromOffset;
        while (true)
        {
            long end = DurableEndOffset;
            if (end <= cursor.Next)
            {
                // Woken by the sync that makes the next record durable, by a suffix truncation (the cursor then checks
                // whether it returned removed records), or failed with ObjectDisposedException when the log closes.
                await _writer.WaitForDurableAsync(cursor.Next + 1, requestFlush: false, cancellationToken, wakeOnCut: true).ConfigureAwait(false);
                await cursor.CheckCutAsync().ConfigureAwait(false);
                continue;
            }

            while (await cursor.NextAsync(end, cancellationToken).ConfigureAwait(false) is { } batch)
            {
                foreach (var record in DecodeRecords(batch))
                {
                    if (record.Offset >= next)
                    {
                        next = record.Offset + 1;
                        yield return record;
                    }
                }
            }
        }
    }

    /// <summary>
    /// Advances the log's start: deletes every whole segment whose records all lie below <paramref name="beforeOffset"/>
    /// (oldest first; never the active segment). <see cref="StartOffset"/> becomes the first offset of the first
    /// remaining segment, which may still be below <paramref name="beforeOffset"/> (segments are deleted whole).
    /// </summary>
    /// <param name="beforeOffset">Records below this offset may be deleted.</param>
    /// <returns>The number of segments deleted.</returns>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="IOException">A file could not be deleted.</exception>
    public int TruncatePrefix(long beforeOffset)
    {
        ThrowIfDisposed();
        return _writer.DeleteSegmentsBelow(beforeOffset);
    }

    /// <summary>
    /// Applies <see cref="LogOptions.RetentionBytes"/> and <see cref="LogOptions.RetentionAge"/> now (the log also applies
    /// them in the background after each segment roll).
    /// </summary>
    /// <returns>The number of segments deleted.</returns>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="IOException">A file could not be deleted.</exception>
    public int ApplyRetention()
    {
        ThrowIfDisposed();
        return _writer.ApplyRetention();
    }

    /// <summary>
    /// Finds the first offset whose record timestamp is at or after <paramref name="timestamp"/>, using the segments'
    /// time indexes, then a scan; returns <see cref="DurableEndOffset"/> when every durable record is older.
    /// </summary>
    /// <param name="timestamp">The time to look up.</param>
    /// <param name="cancellationToken">Cancels the lookup.</param>
    /// <returns>The offset, from which <see cref="ReadAsync"/> can start.</returns>
    /// <exception cref="LogCorruptedException">A batch failed its checksum.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public async ValueTask<long> FindOffsetAsync(DateTimeOffset timestamp, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        long targetMs = timestamp.ToUnixTimeMilliseconds();
        long end = DurableEndOffset;
        long from = -1;
        lock (_writer.SyncRoot)
        {
            foreach (var s in _segments)
            {
                if (s.MaxTimestampMs >= targetMs && s.BaseOffset < end)
                {
                    // The time index gives the last entry before the first whose running maximum reaches the target;
                    // the first record at or after the target cannot lie before it.
                    long position = s.Index.FindPositionForTimestamp(targetMs);
                    from = s.BaseOffset;
                    foreach (var entry in s.Index.Entries)
                    {
                        if (entry.Position == position)
                        {
                            from = entry.Offset;
                            break;
                        }
                    }

                    break;
                }
            }
        }

        if (from < 0)
        {
            return end;
        }

        var cursor = new Cursor(this, Math.Max(from, StartOffset));
        await using var closeCursor = cursor.ConfigureAwait(false);
        while (await cursor.NextAsync(end, cancellationToken).ConfigureAwait(false) is { } batch)
        {
            if (batch.MaxTimestampMs < targetMs)
            {
                continue;
            }

            foreach (var record in DecodeRecords(batch))
            {
                if (record.TimestampMs >= targetMs && record.Offset < end)
                {
                    return record.Offset;
                }
            }
        }

        return end;
    }

    private List<LogRecord> DecodeRecords(LogBatch batch)
    {
        var into = new List<LogRecord>(batch.RecordCount);
        var check = RecordBatchDecoder.Check(batch.Bytes.Span, _options.MaximumBatchSize, out var header);
        if (check != BatchCheck.Valid)
        {
            throw new LogCorruptedException(batch.SourcePath, batch.SourcePosition, $"batch check failed: {check}");
        }

        try
        {
            AddRecords(batch.Bytes.Span, header, batch.SourcePath, batch.SourcePosition, long.MinValue, long.MaxValue, into);
        }
        catch (RecordBatchFormatException ex)
        {
            // Damage inside a batch whose CRC matched (or bytes written before validation was complete): the
            // reader's contract is LogCorruptedException with file and position, never the decoder's own type.
            throw new LogCorruptedException(batch.SourcePath, batch.SourcePosition, $"the batch does not decode ({ex.Check}): {ex.Message}");
        }

        return into;
    }
}
