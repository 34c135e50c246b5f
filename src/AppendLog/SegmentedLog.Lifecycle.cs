using System.Runtime.CompilerServices;
using AppendLog.Appender;
using AppendLog.Format;
using AppendLog.Io;
using AppendLog.Segments;

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
    /// log) without re-encoding it: its checksum is verified, its base offset is assigned by this log (the field is
    /// outside the checksum), its epoch and timestamps are kept. Completes when durable, with the base offset.
    /// </summary>
    /// <param name="batch">The batch bytes: exactly one whole batch.</param>
    /// <param name="cancellationToken">Cancels the wait (see <see cref="AppendAsync(ReadOnlyMemory{byte}, CancellationToken)"/>).</param>
    /// <returns>The offset of the batch's first record.</returns>
    /// <exception cref="ArgumentException">The bytes are not exactly one valid batch, or it exceeds <see cref="LogOptions.MaximumBatchSize"/>.</exception>
    /// <exception cref="LogFaultedException">A write or sync failed.</exception>
    /// <exception cref="LogDiskFullException">No space for the batch; nothing was appended.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<long> AppendRawBatchAsync(ReadOnlyMemory<byte> batch, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        var check = RecordBatchDecoder.Check(batch.Span, _options.MaximumBatchSize, out var header);
        if (check != BatchCheck.Valid || header.TotalSize != batch.Length || !OffsetRange.IsValid(header))
        {
            throw new ArgumentException($"The bytes are not exactly one valid record batch ({check}).", nameof(batch));
        }

        var copy = RentScratch(batch.Length).AsSpan(0, batch.Length);
        batch.Span.CopyTo(copy);
        var status = _writer.TryAppend(copy, OffsetRange.OffsetCount(header), header.MaxTimestamp, wantWaiter: true, cancellationToken, out _, out var waiter);
        if (status == AppendStatus.Accepted)
        {
            return new ValueTask<long>(waiter!, waiter!.Version);
        }

        return AppendSlowAsync(copy.ToArray(), OffsetRange.OffsetCount(header), header.MaxTimestamp, status, cancellationToken);
    }

    /// <summary>
    /// Reads raw batches (checksum verified) from the one holding <paramref name="fromOffset"/> up to the durable end
    /// offset as it was when the enumeration started.
    /// </summary>
    /// <param name="fromOffset">An offset in [<see cref="StartOffset"/>, <see cref="DurableEndOffset"/>]; the first batch returned holds it.</param>
    /// <param name="cancellationToken">Ends the enumeration.</param>
    /// <returns>The batches in offset order.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromOffset"/> is outside the readable range.</exception>
    /// <exception cref="LogCorruptedException">A batch failed its checksum.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public async IAsyncEnumerable<LogBatch> ReadBatchesAsync(long fromOffset, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        long end = DurableEndOffset;
        long start = StartOffset;
        if (fromOffset < start || fromOffset > end)
        {
            throw new ArgumentOutOfRangeException(nameof(fromOffset), fromOffset, $"The readable offsets are [{start}, {end}).");
        }

        using var scanner = new BatchScanner(_options.MaximumBatchSize);
        long next = fromOffset;
        while (next < end)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (segment, limit) = FindSegment(next);
            using var file = _storage.Open(segment.Path, FileCreation.OpenExisting, _options.DirectIo);
            if (segment.IsReplaced) { continue; } // compacted meanwhile: the path may name the new file (SegmentedLog.Compaction.cs)
            scanner.Reset(file);
            long position = segment.Index.FindPositionForOffset(next);
            long expectedBase = ExpectedBaseAt(segment, position);
            while (next < end && position < limit)
            {
                var batch = ReadRawBatch(scanner, segment, file.Path, position, limit);

                // The base offset lies outside the CRC (Kafka v2 layout): a flipped bit there passes the checksum, so
                // each batch must also start exactly where the previous one ended, or its records would be served
                // under other offsets or skipped.
                if (batch.BaseOffset != expectedBase)
                {
                    throw new LogCorruptedException(file.Path, position, $"batch base offset {batch.BaseOffset} where {expectedBase} was expected");
                }

                expectedBase = batch.LastOffset + 1;
                position += batch.Bytes.Length;
                if (batch.LastOffset < next)
                {
                    continue;
                }

                next = batch.LastOffset + 1;
                yield return batch;
                await Task.CompletedTask.ConfigureAwait(false);
            }

            if (next < end && position >= limit)
            {
                next = Math.Max(next, segment.EndOffset);
            }
        }
    }

    /// <summary>
    /// Reads the records from <paramref name="fromOffset"/> and then keeps waiting for new durable records, returning
    /// each as soon as it is durable (woken by the sync that makes it durable: no polling). Ends only when cancelled
    /// (or the log is disposed or faulted).
    /// </summary>
    /// <param name="fromOffset">The first offset to return, from <see cref="StartOffset"/> up to <see cref="EndOffset"/>.</param>
    /// <param name="cancellationToken">Ends the enumeration (the enumerator then throws <see cref="OperationCanceledException"/>).</param>
    /// <returns>The records in offset order, without end.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromOffset"/> is outside the log.</exception>
    /// <exception cref="LogCorruptedException">A batch failed its checksum.</exception>
    /// <exception cref="LogFaultedException">The log faulted while waiting.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async IAsyncEnumerable<LogRecord> TailAsync(long fromOffset, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        long start = StartOffset;
        if (fromOffset < start || fromOffset > EndOffset)
        {
            throw new ArgumentOutOfRangeException(nameof(fromOffset), fromOffset, $"The log holds offsets [{start}, {EndOffset}).");
        }

        long next = fromOffset;
        while (true)
        {
            if (DurableEndOffset <= next)
            {
                await _writer.WaitForDurableAsync(next + 1, requestFlush: false, cancellationToken).ConfigureAwait(false);
            }

            await foreach (var record in ReadAsync(next, cancellationToken).ConfigureAwait(false))
            {
                next = record.Offset + 1;
                yield return record;
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
        Segment? segment = null;
        long limit = 0;
        lock (_writer.SyncRoot)
        {
            foreach (var s in _segments)
            {
                if (s.MaxTimestampMs >= targetMs && s.BaseOffset < end)
                {
                    segment = s;
                    limit = s.Size;
                    break;
                }
            }
        }

        if (segment is null)
        {
            return end;
        }

        using var scanner = new BatchScanner(_options.MaximumBatchSize);
        using var file = _storage.Open(segment.Path, FileCreation.OpenExisting, _options.DirectIo);
        if (segment.IsReplaced) { return await FindOffsetAsync(timestamp, cancellationToken).ConfigureAwait(false); } // compacted meanwhile: look again
        scanner.Reset(file);
        long position = segment.Index.FindPositionForTimestamp(targetMs);
        while (position < limit)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = ReadRawBatch(scanner, segment, file.Path, position, limit);
            position += batch.Bytes.Length;
            if (batch.BaseOffset >= end)
            {
                break;
            }

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

        await Task.CompletedTask.ConfigureAwait(false);
        return Math.Min(end, segment.EndOffset);
    }

    private List<LogRecord> DecodeRecords(LogBatch batch)
    {
        var into = new List<LogRecord>(batch.RecordCount);
        var check = RecordBatchDecoder.Check(batch.Bytes.Span, _options.MaximumBatchSize, out var header);
        if (check != BatchCheck.Valid)
        {
            throw new LogCorruptedException(batch.SourcePath, batch.SourcePosition, $"batch check failed: {check}");
        }

        AddRecords(batch.Bytes.Span, header, batch.SourcePath, batch.SourcePosition, long.MinValue, long.MaxValue, into);
        return into;
    }

    private static LogBatch ReadRawBatch(BatchScanner scanner, Segment segment, string path, long position, long limit)
    {
        var check = scanner.TryRead(position, limit, out var header, out var bytes);
        if (check != BatchCheck.Valid)
        {
            throw new LogCorruptedException(path, position, $"batch check failed: {check}");
        }

        if (header.BaseOffset < segment.BaseOffset)
        {
            throw new LogCorruptedException(path, position, $"batch base offset {header.BaseOffset} precedes the segment's {segment.BaseOffset}");
        }

        return new LogBatch(header.BaseOffset, header.RecordCount, header.PartitionLeaderEpoch, header.MaxTimestamp, bytes.ToArray())
        {
            SourcePath = path,
            SourcePosition = position,
        };
    }
}
