namespace AppendLog;

/// <summary>
/// A reader of stored batches that keeps its place, its read-ahead and its buffers from one call to the next: for a
/// server that forwards batches verbatim in rounds (a Kafka fetch, a replication step) without allocating per batch.
/// Each <see cref="ReadAsync"/> returns the next batch up to the log's durable end at the time of the call (so a reader
/// at the end returns the next batch once one is durable). A batch read from disk is copied into an array rented
/// from the shared <see cref="System.Buffers.ArrayPool{T}"/> and lent to the caller until <see cref="Release"/>; a
/// batch the <see cref="BatchCache"/> holds (the recent tail, or what others read) is its cached bytes, which never
/// change. Disk batches read this way are not admitted into the cache: a catch-up read does not evict what other
/// readers use. Every batch's checksum is verified before it is returned. Not thread-safe: one caller owns it.
/// Open one with <see cref="SegmentedLog.OpenBatchReader"/>.
/// </summary>
public sealed class LogBatchReader : IAsyncDisposable
{
    private readonly SegmentedLog _log;
    private readonly SegmentedLog.Cursor _cursor;
    private bool _disposed;

    internal LogBatchReader(SegmentedLog log, long fromOffset)
    {
        _log = log;
        _cursor = new SegmentedLog.Cursor(log, fromOffset, lend: true);
    }

    /// <summary>
    /// The offset the next batch returned holds (the batch may start below it when the reader was opened inside a
    /// batch): the offset after the last batch returned.
    /// </summary>
    public long NextOffset => _cursor.Next;

    /// <summary>
    /// Reads the next batch: its bytes exactly as stored (Kafka RecordBatch v2), valid until <see cref="Release"/> or
    /// <see cref="DisposeAsync"/>. Returns empty bytes, and stays where it is, when the reader has reached the durable
    /// end or when the next batch is larger than <paramref name="maximumSize"/> (<see cref="NextOffset"/> below
    /// <see cref="SegmentedLog.DurableEndOffset"/> tells the second case).
    /// </summary>
    /// <param name="maximumSize">The largest batch to return, in bytes; <see cref="int.MaxValue"/> returns any.</param>
    /// <param name="cancellationToken">Cancels the read (the reader stays usable only after a successful call).</param>
    /// <returns>The batch's bytes, or empty.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumSize"/> is not positive, or the reader's offset was deleted by retention.</exception>
    /// <exception cref="LogCorruptedException">A batch failed its checksum or its position checks (names file and position).</exception>
    /// <exception cref="LogTruncatedException">A suffix truncation removed records this reader had returned.</exception>
    /// <exception cref="ObjectDisposedException">The reader or the log is disposed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask<ReadOnlyMemory<byte>> ReadAsync(int maximumSize = int.MaxValue, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maximumSize);
        ObjectDisposedException.ThrowIf(_disposed, this);
        _log.ThrowIfDisposedForReader();
        var batch = await _cursor.NextBatchAsync(_log.DurableEndOffset, borrow: true, cancellationToken, maximumSize).ConfigureAwait(false);
        return batch is { } found ? found.Bytes : ReadOnlyMemory<byte>.Empty;
    }

    /// <summary>
    /// Ends the loan of every batch returned so far: the caller must no longer use those bytes (a server calls this
    /// once the batches of a round are sent). Their arrays serve the next round's batches (those it does not reuse go
    /// back to the shared pool then), so the thread that calls this need not be the one that reads.
    /// </summary>
    public void Release() => _cursor.ReleaseLent();

    /// <summary>Releases the lent batches and the reader's buffers and file. Idempotent.</summary>
    /// <returns>A task that completes when the reads in flight are drained.</returns>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _cursor.DisposeAsync().ConfigureAwait(false);
    }
}
