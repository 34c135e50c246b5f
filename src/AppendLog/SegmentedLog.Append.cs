using AppendLog.Appender;
using AppendLog.Format;

namespace AppendLog;

/// <summary>Appending: the triad TryAppend / WaitForDurableAsync / AppendAsync, and FlushAsync.</summary>
public sealed partial class SegmentedLog
{
    [ThreadStatic]
    private static byte[]? t_scratch;

    [ThreadStatic]
    private static byte[]? t_compressScratch;

    /// <summary>
    /// Appends one record holding <paramref name="value"/> and completes when it is durable (written and covered by
    /// a completed fdatasync), with the record's offset.
    /// </summary>
    /// <param name="value">The record's value; copied before the method returns its task.</param>
    /// <param name="cancellationToken">
    /// Cancels the <em>wait</em>. A record already accepted (offset assigned) is still written and becomes durable;
    /// only a record still waiting for buffer space is not appended.
    /// </param>
    /// <returns>The record's offset.</returns>
    /// <exception cref="ArgumentException">The encoded record exceeds <see cref="LogOptions.MaximumBatchSize"/>.</exception>
    /// <exception cref="LogFaultedException">A write or sync failed; the log must be reopened.</exception>
    /// <exception cref="LogDiskFullException">No space for the record; nothing was appended; retry once space is freed.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<long> AppendAsync(ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
    {
        var record = new AppendRecord(value);
        return AppendCore(new ReadOnlySpan<AppendRecord>(in record), leaderEpoch: 0, cancellationToken);
    }

    /// <summary>Appends one record (key, value, headers) and completes when it is durable, with its offset.</summary>
    /// <param name="record">The record; its bytes are copied before the method returns its task.</param>
    /// <param name="cancellationToken">Cancels the wait; see <see cref="AppendAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.</param>
    /// <returns>The record's offset.</returns>
    /// <exception cref="ArgumentException">The encoded record exceeds <see cref="LogOptions.MaximumBatchSize"/>.</exception>
    /// <exception cref="LogFaultedException">A write or sync failed; the log must be reopened.</exception>
    /// <exception cref="LogDiskFullException">No space for the record; nothing was appended.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<long> AppendAsync(AppendRecord record, CancellationToken cancellationToken = default) =>
        AppendCore(new ReadOnlySpan<AppendRecord>(in record), leaderEpoch: 0, cancellationToken);

    /// <summary>
    /// Appends the records as one batch (one checksum, consecutive offsets, all or nothing at recovery) and completes
    /// when it is durable, with the first record's offset: the batch holds [first, first + records.Length).
    /// </summary>
    /// <param name="records">One or more records; copied before the method returns its task.</param>
    /// <param name="cancellationToken">Cancels the wait; see <see cref="AppendAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.</param>
    /// <returns>The offset of the first record.</returns>
    /// <exception cref="ArgumentException">No records, or the encoded batch exceeds <see cref="LogOptions.MaximumBatchSize"/>.</exception>
    /// <exception cref="LogFaultedException">A write or sync failed; the log must be reopened.</exception>
    /// <exception cref="LogDiskFullException">No space for the batch; nothing was appended.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<long> AppendBatchAsync(ReadOnlyMemory<AppendRecord> records, CancellationToken cancellationToken = default) =>
        AppendCore(records.Span, leaderEpoch: 0, cancellationToken);

    /// <summary>
    /// Appends the records as one batch stamped with <paramref name="leaderEpoch"/> (the Raft term, stored in each
    /// batch's partitionLeaderEpoch field) and completes when durable, with the first record's offset.
    /// </summary>
    /// <param name="records">One or more records.</param>
    /// <param name="leaderEpoch">The epoch to store with the batch; zero or more.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The offset of the first record.</returns>
    /// <exception cref="ArgumentException">No records, a negative epoch, or the batch is too large.</exception>
    /// <exception cref="LogFaultedException">A write or sync failed; the log must be reopened.</exception>
    /// <exception cref="LogDiskFullException">No space for the batch; nothing was appended.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public ValueTask<long> AppendBatchAsync(ReadOnlyMemory<AppendRecord> records, int leaderEpoch, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(leaderEpoch);
        return AppendCore(records.Span, leaderEpoch, cancellationToken);
    }

    /// <summary>
    /// Accepts one record without waiting: assigns its offset and copies it into the log's buffers, or returns false
    /// when the buffer pool's budget is spent or the segment is waiting for reserved space (a log reopened with data
    /// reserves space at its first append, so the first <c>TryAppend</c> after an open or a long idle period may return
    /// false and start the reservation). Pair with
    /// <see cref="WaitForDurableAsync"/> or <see cref="FlushAsync"/> to learn when it is durable.
    /// </summary>
    /// <param name="value">The record's value.</param>
    /// <param name="offset">The record's offset when accepted; -1 otherwise.</param>
    /// <returns>True when accepted.</returns>
    /// <exception cref="ArgumentException">The encoded record exceeds <see cref="LogOptions.MaximumBatchSize"/>.</exception>
    /// <exception cref="LogFaultedException">The log is faulted.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public bool TryAppend(ReadOnlyMemory<byte> value, out long offset)
    {
        ThrowIfDisposed();
        var record = new AppendRecord(value);
        return TryAppendBatch(new ReadOnlySpan<AppendRecord>(in record), out offset);
    }

    /// <summary>Accepts a batch without waiting; see <see cref="TryAppend(ReadOnlyMemory{byte}, out long)"/>.</summary>
    /// <param name="records">One or more records.</param>
    /// <param name="firstOffset">The first record's offset when accepted; -1 otherwise.</param>
    /// <returns>True when accepted.</returns>
    /// <exception cref="ArgumentException">No records, or the batch exceeds <see cref="LogOptions.MaximumBatchSize"/>.</exception>
    /// <exception cref="LogFaultedException">The log is faulted.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public bool TryAppendBatch(ReadOnlySpan<AppendRecord> records, out long firstOffset)
    {
        ThrowIfDisposed();
        var batch = Encode(records, leaderEpoch: 0, out long timestamp);
        if (!_pending.IsEmpty)
        {
            firstOffset = -1;
            return false; // appends started earlier wait for room: this one may not overtake them
        }

        var status = _writer.TryAppend(batch, records.Length, timestamp, wantWaiter: false, default, out firstOffset, out _);
        return status == AppendStatus.Accepted;
    }

    /// <summary>Completes when every offset below <paramref name="endOffset"/> is durable.</summary>
    /// <param name="endOffset">An exclusive end: the offset of the last record of interest plus one; at most <see cref="EndOffset"/>.</param>
    /// <param name="cancellationToken">Cancels the wait (not the writes).</param>
    /// <returns>A task that completes when the records are durable.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="endOffset"/> is beyond <see cref="EndOffset"/>.</exception>
    /// <exception cref="LogFaultedException">A write or sync failed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public async ValueTask WaitForDurableAsync(long endOffset, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        long end = _writer.NextOffset;
        ArgumentOutOfRangeException.ThrowIfGreaterThan(endOffset, end);
        await _writer.WaitForDurableAsync(endOffset, requestFlush: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Syncs every record accepted so far and completes when they are durable.</summary>
    /// <param name="cancellationToken">Cancels the wait (not the sync).</param>
    /// <returns>A task that completes when everything accepted before the call is durable.</returns>
    /// <exception cref="LogFaultedException">A write or sync failed.</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    /// <exception cref="OperationCanceledException">The wait was cancelled.</exception>
    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        await _writer.WaitForDurableAsync(_writer.NextOffset, requestFlush: true, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask<long> AppendCore(ReadOnlySpan<AppendRecord> records, int leaderEpoch, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var batch = Encode(records, leaderEpoch, out long timestamp);
        return AppendEncoded(batch, records.Length, timestamp, cancellationToken);
    }

    /// <summary>
    /// Appends an encoded batch (in the thread's scratch) and returns the wait for its durability. Failures of the log
    /// rather than of the call (<see cref="LogFaultedException"/>, <see cref="LogDiskFullException"/>) go into the
    /// returned task, so the outcome does not depend on whether the log failed just before or just after the call (a
    /// caller starting several appends once saw the first ones fail in their tasks and a later one throw).
    /// </summary>
    private ValueTask<long> AppendEncoded(Span<byte> batch, int offsetCount, long maxTimestampMs, CancellationToken cancellationToken)
    {
        if (!_pending.IsEmpty)
        {
            // Appends started earlier still wait for room: this one queues behind them (offsets follow the calls).
            return _pending.Enqueue(batch.ToArray(), offsetCount, maxTimestampMs, status: null, cancellationToken);
        }

        AppendStatus status;
        DurableWaiter? waiter;
        try
        {
            status = _writer.TryAppend(batch, offsetCount, maxTimestampMs, wantWaiter: true, cancellationToken, out _, out waiter);
        }
        catch (Exception ex) when (ex is LogFaultedException or LogDiskFullException)
        {
            return ValueTask.FromException<long>(ex);
        }

        if (status == AppendStatus.Accepted)
        {
            return new ValueTask<long>(waiter!, waiter!.Version);
        }

        // Slow path (backpressure or space reservation): the thread-static scratch cannot cross an await.
        return _pending.Enqueue(batch.ToArray(), offsetCount, maxTimestampMs, status, cancellationToken);
    }

    /// <summary>Encodes into the thread's scratch buffer; the base offset is patched when the log assigns it.</summary>
    private Span<byte> Encode(ReadOnlySpan<AppendRecord> records, int leaderEpoch, out long timestamp)
    {
        if (records.IsEmpty)
        {
            throw new ArgumentException("A batch needs at least one record.", nameof(records));
        }

        var codec = _options.Compression;
        bool compress = codec != CompressionCodec.None;
        int size = compress ? RecordBatchEncoder.MeasureCompressedMax(records, codec) : RecordBatchEncoder.MeasureUncompressed(records);
        if (!compress && size > _options.MaximumBatchSize)
        {
            ThrowTooLarge(size);
        }

        var scratch = RentScratch(size);

        timestamp = _time.GetUtcNow().ToUnixTimeMilliseconds();
        int length;
        if (compress)
        {
            int recordsSize = RecordBatchEncoder.MeasureRecords(records);
            var records2 = t_compressScratch;
            if (records2 is null || records2.Length < recordsSize)
            {
                records2 = t_compressScratch = new byte[Math.Max(recordsSize, 64 * 1024)];
            }

            length = RecordBatchEncoder.EncodeCompressed(scratch, records2, records, timestamp, leaderEpoch, codec);
            if (length > _options.MaximumBatchSize)
            {
                ThrowTooLarge(length);
            }
        }
        else
        {
            length = RecordBatchEncoder.Encode(scratch, records, timestamp, leaderEpoch);
        }

        if (_options.TimestampType == TimestampType.LogAppendTime)
        {
            RecordBatchEncoder.StampLogAppendTime(scratch.AsSpan(0, length), timestamp);
        }

        return scratch.AsSpan(0, length);
    }

    /// <summary>The thread's encode buffer, grown to at least <paramref name="size"/> (valid until the next await).</summary>
    private static byte[] RentScratch(int size)
    {
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < size)
        {
            scratch = t_scratch = new byte[Math.Max(size, 64 * 1024)];
        }

        return scratch;
    }

    private void ThrowTooLarge(int size) =>
        throw new ArgumentException(
            $"The encoded batch takes {size} bytes, more than LogOptions.MaximumBatchSize ({_options.MaximumBatchSize}).",
            "records");
}
