using System.Buffers;
using System.Runtime.CompilerServices;
using AppendLog.Diagnostics;
using AppendLog.Format;
using AppendLog.Segments;

namespace AppendLog;

/// <summary>The reader behind every read API: cache, then the writer's chunks, then the disk with read-ahead.</summary>
public sealed partial class SegmentedLog
{
    /// <summary>
    /// One reader's position in the log and its read state. Each batch comes from the first of: the shared
    /// <see cref="BatchCache"/>; the writer's chunks (the durable tail of the active segment, still in memory); the
    /// segment file through the reader's <see cref="ReadWindow"/> of pooled aligned buffers (O_DIRECT). A reader that
    /// stays sequential doubles its read-ahead on each refill up to <see cref="LogOptions.MaximumReadAhead"/> (and an
    /// eighth of the pool's budget) and keeps up to <see cref="ReadAhead.ReadsInFlightMax"/> reads of the stretch ahead in
    /// flight while it decodes the current one; a seek drops them and resets it to one chunk. A scanning reader's disk
    /// batches enter the cache with <see cref="BatchAdmission.Scan"/> (free room only).
    /// Every batch is checksum-verified and must start at the offset where the previous one ended. A suffix truncation
    /// under the reader is detected by the segment's content key: a reader that had not yet returned any removed record
    /// continues over the new content; one that had ends with <see cref="LogTruncatedException"/>.
    /// Not thread-safe: one enumerator owns it.
    /// </summary>
    internal sealed class Cursor : IAsyncDisposable
    {
        private readonly SegmentedLog _log;

        /// <summary>
        /// In lending mode (<see cref="LogBatchReader"/>), the arrays rented from <see cref="ArrayPool{T}.Shared"/> for
        /// the disk batches returned since the last <see cref="ReleaseLent"/>; null otherwise.
        /// </summary>
        private readonly List<byte[]>? _lent;

        /// <summary>
        /// In lending mode, the arrays of the previous round, released and kept for this round's batches (returned to
        /// the shared pool when this round does not reuse them, or on dispose). Reusing them here rather than renting
        /// again matters because a server releases on another thread than it reads on: the shared pool keeps a returned
        /// array in the returning thread's own slot first, where a reader on another thread does not find it, so each
        /// thread that ever released would hold one array (a new one rented, per thread, up to the pool's thread
        /// count) and an array released on a thread that then exits is lost to the pool.
        /// </summary>
        private readonly List<byte[]>? _spare;
        private readonly ReadWindow _window;
        private readonly ReadAhead _readAhead;
        private readonly byte[] _header = new byte[RecordBatch.HeaderSize];
        private byte[] _borrowed = [];
        private readonly int _chunkSize;
        private readonly int _readAheadMaximumPieces;
        private Segment? _segment;
        private long _contentKey;
        private ReadFileCache.Lease? _file;
        private long _position;
        private long _expectedBase;
        private long _next;
        private int _readAheadPieces = 1;
        private long _sealedLimit = -1;
        private long _sealedEnd;

        public Cursor(SegmentedLog log, long next, bool lend = false)
        {
            _log = log;
            _lent = lend ? [] : null;
            _spare = lend ? [] : null;
            _window = new ReadWindow(log._pool);
            _readAhead = new ReadAhead(log._pool);
            _chunkSize = log._pool.ChunkSize;
            // At most the option, and at most an eighth of the shared pool: one reader never takes the budget alone.
            long readAheadMax = Math.Min(log._options.MaximumReadAhead, log._pool.BudgetBytes / 8);
            _readAheadMaximumPieces = (int)Math.Max(1, readAheadMax / _chunkSize);
            _next = next;
        }

        /// <summary>The next offset this reader returns.</summary>
        public long Next => _next;

        /// <summary>
        /// The next batch holding offsets at or after <see cref="Next"/> and starting below <paramref name="end"/>, or null
        /// when the reader has reached <paramref name="end"/> or the log's durable end.
        /// </summary>
        public async ValueTask<LogBatch?> NextAsync(long end, CancellationToken cancellationToken) =>
            (await NextBatchAsync(end, borrow: false, cancellationToken).ConfigureAwait(false))?.Owned;

        /// <summary>
        /// As <see cref="NextAsync"/>; with <paramref name="borrow"/>, a batch read from disk that the cache does not keep
        /// is copied into this reader's reusable buffer instead of a new array (<see cref="BatchRef.Owned"/> is then null
        /// and the bytes are valid until the next call). In lending mode a disk batch is copied into an array rented for it
        /// and valid until <see cref="ReleaseLent"/>. A batch that would be returned but is larger than
        /// <paramref name="sizeMax"/> is withheld: the result has empty <see cref="BatchRef.Bytes"/>, and the reader stays
        /// before it (the next call meets it again).
        /// </summary>
        // The read path's async methods are awaited once each, by their caller, so their state machines are pooled: a
        // read that waits for the disk allocates nothing per batch (a server's fetch loop reads batch after batch).
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<BatchRef?> NextBatchAsync(long end, bool borrow, CancellationToken cancellationToken, int sizeMax = int.MaxValue)
        {
            while (_next < end)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (_segment is null)
                {
                    Locate();
                    continue;
                }

                long limit;
                long? cut = null;
                bool active = false;
                long segmentEnd;
                if (_sealedLimit >= 0 && _segment.ContentKey == _contentKey)
                {
                    // A sealed segment's size and end change only through a cut, which renews the content key first:
                    // while the key is the one this reader saw, no lock is needed (appenders hold it).
                    limit = _sealedLimit;
                    segmentEnd = _sealedEnd;
                }
                else
                {
                    lock (_log._writer.SyncRoot)
                    {
                        cut = _segment.LowestCutSince(_contentKey);
                        limit = _log._writer.ReadableLimitUnsynchronized(_segment);
                        active = ReferenceEquals(_segment, _log._writer.ActiveUnsynchronized);
                        segmentEnd = _segment.EndOffset;
                        if (cut is null && !active && _segment.IsSealed)
                        {
                            _sealedLimit = limit;
                            _sealedEnd = segmentEnd;
                        }
                    }
                }

                if (cut is { } cutOffset)
                {
                    await OnCutAsync(cutOffset).ConfigureAwait(false);
                    continue;
                }

                if (_position >= limit)
                {
                    if (active)
                    {
                        // Every durable byte of the active segment is read: the durable end moved back (a truncation
                        // this reader's segment did not see) or the caller's end is ahead of the log's.
                        if (_next >= _log.DurableEndOffset)
                        {
                            return null;
                        }

                        throw new LogCorruptedException(_segment.Path, _position, $"the segment's durable data ends at offset {_expectedBase}, before the durable end {_log.DurableEndOffset}");
                    }

                    if (_expectedBase != segmentEnd)
                    {
                        throw new LogCorruptedException(_segment.Path, _position, $"the segment's batches end at offset {_expectedBase}, its recorded end is {segmentEnd}");
                    }

                    _next = Math.Max(_next, segmentEnd);
                    await CloseSegmentAsync().ConfigureAwait(false);
                    continue;
                }

                var found = await ReadBatchAsync(limit, active, borrow, sizeMax, cancellationToken).ConfigureAwait(false);
                if (found is not { } batch)
                {
                    continue; // the content changed under the read: the next round sees the cut
                }

                if (batch.BaseOffset != _expectedBase)
                {
                    // The base offset lies outside the CRC (Kafka v2 layout): a flipped bit there passes the checksum,
                    // so each batch must also start exactly where the previous one ended, or its records would be
                    // served under other offsets or skipped.
                    if (ContentChanged())
                    {
                        continue;
                    }

                    throw new LogCorruptedException(_segment.Path, _position, $"batch base offset {batch.BaseOffset} where {_expectedBase} was expected");
                }

                if (batch.LastOffset >= _next && (batch.Bytes.IsEmpty || batch.Bytes.Length > sizeMax))
                {
                    return batch with { Owned = null, Bytes = ReadOnlyMemory<byte>.Empty }; // withheld: not consumed
                }

                _expectedBase = batch.LastOffset + 1;
                _position += batch.Bytes.Length;
                if (batch.LastOffset < _next)
                {
                    continue;
                }

                _next = batch.LastOffset + 1;
                return batch;
            }

            return null;
        }

        /// <summary>
        /// Looks for a suffix truncation of the segment the reader is in: throws <see cref="LogTruncatedException"/> when
        /// it removed records the reader returned, else drops the buffered content so the next read sees the new one.
        /// </summary>
        public async ValueTask CheckCutAsync()
        {
            if (_segment is null)
            {
                return;
            }

            long? cut;
            lock (_log._writer.SyncRoot)
            {
                cut = _segment.LowestCutSince(_contentKey);
            }

            if (cut is { } cutOffset)
            {
                await OnCutAsync(cutOffset).ConfigureAwait(false);
            }
        }

        /// <summary>
        /// Ends the loans of every batch lent since the last call (lending mode): their arrays become the spares of the
        /// next round, and the spares this round did not reuse go back to the shared pool. The reader so holds at most
        /// one round's arrays between rounds.
        /// </summary>
        public void ReleaseLent()
        {
            if (_lent is null || _spare is null)
            {
                return;
            }

            foreach (byte[] array in _spare)
            {
                ArrayPool<byte>.Shared.Return(array);
            }

            _spare.Clear();
            _spare.AddRange(_lent);
            _lent.Clear();
        }

        public async ValueTask DisposeAsync()
        {
            await CloseSegmentAsync().ConfigureAwait(false);
            _window.Dispose();
            ReleaseLent();
            ReleaseLent(); // the second call returns the last round's arrays (now spares) to the shared pool
        }

        /// <summary>An array of the previous round holding at least <paramref name="size"/> bytes, or a rented one.</summary>
        private byte[] RentForLoan(int size)
        {
            var spare = _spare!;
            for (int i = 0; i < spare.Count; i++)
            {
                if (spare[i].Length >= size)
                {
                    byte[] array = spare[i];
                    spare[i] = spare[^1];
                    spare.RemoveAt(spare.Count - 1);
                    return array;
                }
            }

            return ArrayPool<byte>.Shared.Rent(size);
        }

        private void Locate()
        {
            Segment segment;
            long position, expectedBase, key;
            lock (_log._writer.SyncRoot)
            {
                var segments = _log._segments;
                if (_next < segments[0].BaseOffset)
                {
                    throw new ArgumentOutOfRangeException(nameof(Next), _next, $"Offset {_next} was deleted (retention or prefix truncation) while being read; the log now starts at {segments[0].BaseOffset}.");
                }

                segment = segments.FindLast(s => s.BaseOffset <= _next)!;
                if (_next > segment.EndOffset)
                {
                    // Segments are contiguous, so a reader is never past its segment's end unless a cut removed what it read.
                    throw new LogTruncatedException(_next, segment.EndOffset);
                }

                position = segment.Index.FindPositionForOffset(_next);
                expectedBase = segment.BaseOffset;
                foreach (var entry in segment.Index.Entries)
                {
                    if (entry.Position == position)
                    {
                        expectedBase = entry.Offset;
                        break;
                    }
                }

                key = segment.ContentKey;
            }

            ReadFileCache.Lease file;
            try
            {
                file = _log._readFiles.Acquire(_log._storage, segment, _log._options.DirectIo);
            }
            catch (FileNotFoundException) when (segment.IsRemoved)
            {
                return; // deleted between the lookup and the open: look again
            }

            if (segment.IsReplaced)
            {
                // Compacted between the lookup and the open: the handle may be the new file, which the old segment's
                // positions do not describe. Drop it and look again (the list now holds the replacement).
                file.Dispose();
                _log._readFiles.Forget(segment);
                return;
            }

            _segment = segment;
            _file = file;
            _contentKey = key;
            _position = position;
            _expectedBase = expectedBase;
            _readAheadPieces = 1;
        }

        private async ValueTask OnCutAsync(long cutOffset)
        {
            if (cutOffset < _next)
            {
                throw new LogTruncatedException(_next, cutOffset);
            }

            await CloseSegmentAsync().ConfigureAwait(false);
        }

        private async ValueTask CloseSegmentAsync()
        {
            await DiscardPrefetchAsync().ConfigureAwait(false);
            _window.Clear();
            _file?.Dispose();
            _file = null;
            _segment = null;
            _sealedLimit = -1;
        }

        private bool ContentChanged() => _segment!.ContentKey != _contentKey;

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<BatchRef?> ReadBatchAsync(long limit, bool active, bool borrow, int sizeMax, CancellationToken cancellationToken)
        {
            var cache = _log._batchCache;
            if (cache.TryGet(_contentKey, _position, out var cached))
            {
                _log.CountBatchRead(BatchSource.Cache);
                return BatchRef.Of(cached);
            }

            if ((active ? TryReadFromWriter(borrow) : null) is { } fromWriter)
            {
                // The durable tail that tailing readers share: cached like any first touch (unless lent or borrowed).
                if (ContentChanged())
                {
                    return null;
                }

                _log.CountBatchRead(BatchSource.Writer);
                return fromWriter.Owned is { } owned ? Keep(owned, BatchAdmission.Normal) : fromWriter;
            }

            _nearHotTail = active && limit - _position <= _log._batchCache.BudgetBytes / HotTailShareOfCache;
            if (!_nearHotTail || _lent is not null)
            {
                return await ReadFromDiskAndKeepAsync(limit, borrow, sizeMax, cancellationToken).ConfigureAwait(false);
            }

            // Tailing readers woken together miss the same batch at once: one reads it (and caches it), the others wait
            // for that read and take the batch from the cache (single flight). A lending reader caches nothing to share.
            var key = (_contentKey, _position);
            var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var flight = _log._hotTailReads.GetOrAdd(key, mine);
            if (!ReferenceEquals(flight, mine))
            {
                await flight.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
                if (cache.TryGet(_contentKey, _position, out cached))
                {
                    _log.CountBatchRead(BatchSource.Cache);
                    return BatchRef.Of(cached);
                }

                // The read failed, was cancelled or withheld the batch, or the cache did not keep it: read it here.
                return await ReadFromDiskAndKeepAsync(limit, borrow, sizeMax, cancellationToken).ConfigureAwait(false);
            }

            try
            {
                return await ReadFromDiskAndKeepAsync(limit, borrow, sizeMax, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _log._hotTailReads.TryRemove(new KeyValuePair<(long, long), TaskCompletionSource>(key, mine));
                mine.SetResult();
            }
        }

        private async ValueTask<BatchRef?> ReadFromDiskAndKeepAsync(long limit, bool borrow, int sizeMax, CancellationToken cancellationToken)
        {
            var batch = await ReadFromDiskAsync(limit, borrow, sizeMax, cancellationToken).ConfigureAwait(false);
            if (batch is null || ContentChanged())
            {
                return null;
            }

            _log.CountBatchRead(BatchSource.Disk);

            return batch.Value.Owned is { } owned ? Keep(owned, DiskAdmission) : batch;
        }

        /// <summary>Caches <paramref name="batch"/> under the key read before and checked after the read: its bytes are that content's.</summary>
        private BatchRef Keep(LogBatch batch, BatchAdmission admission)
        {
            _log._batchCache.Add(_contentKey, _position, batch, admission);
            return BatchRef.Of(batch);
        }

        /// <summary>
        /// How a batch read from disk enters the cache: a reader whose read-ahead has grown past one chunk is scanning
        /// (it stayed sequential over several refills), and a scan's batches are admitted only into free room, so a cold
        /// scan never evicts what other readers use (see <see cref="BatchCache"/>). A reader that just seeked (a lookup,
        /// the start of a read) admits normally.
        /// </summary>
        /// <remarks>
        /// Except near the durable end of the active segment (the last eighth of the cache's budget, 8 MiB by default):
        /// there a reader that fell behind the writer's buffers reads what the other tailing readers read next, so its
        /// batches are admitted normally even while it reads ahead (measured: four tailing readers behind by a few hundred
        /// milliseconds under load read each batch from disk once per reader when those were scan admissions). A scan of
        /// a log nobody appends to reaches that stretch once per pass, into probation only.
        /// </remarks>
        private BatchAdmission DiskAdmission => _readAheadPieces > 1 && !_nearHotTail ? BatchAdmission.Scan : BatchAdmission.Normal;

        /// <summary>The hot tail (admitted normally whatever the reader's read-ahead) is the last 1/N of the cache's budget.</summary>
        private const long HotTailShareOfCache = 8;

        /// <summary>The batch being read from disk lies in the hot tail (set before each disk read).</summary>
        private bool _nearHotTail;

        /// <summary>
        /// The batch at the reader's position copied from the writer's chunks, into a new array the cache may keep, or,
        /// as <see cref="ReadFromDiskAsync"/> does, into a lent or borrowed buffer (<see cref="TakeBuffer"/>).
        /// </summary>
        private BatchRef? TryReadFromWriter(bool borrow)
        {
            var writer = _log._writer;
            if (!writer.TryCopyFromMemory(_segment!, _contentKey, _position, _header))
            {
                return null;
            }

            var check = RecordBatchDecoder.Check(_header, _log._options.MaximumBatchSize, out var header);
            if (check is not (BatchCheck.Incomplete or BatchCheck.Valid))
            {
                return null; // let the disk path report it with its position
            }

            int size = (int)header.TotalSize;
            bool keep = _lent is null && (!borrow || _log._batchCache.WouldKeep(size, BatchAdmission.Normal));
            var bytes = TakeBuffer(size, keep);
            if (!writer.TryCopyFromMemory(_segment!, _contentKey, _position, bytes.Span)
                || RecordBatchDecoder.Check(bytes.Span, _log._options.MaximumBatchSize, out header) != BatchCheck.Valid)
            {
                return null;
            }

            return keep
                ? BatchRef.Of(NewBatch(header, bytes))
                : new BatchRef(null, bytes, header.BaseOffset, header.LastOffset, _segment!.Path, _position);
        }

        /// <summary>
        /// A buffer for a batch of <paramref name="size"/> bytes: a new array when the cache keeps it
        /// (<paramref name="keep"/>); in lending mode an array rented for it; else the reader's reusable buffer.
        /// </summary>
        private Memory<byte> TakeBuffer(int size, bool keep)
        {
            if (keep)
            {
                return new byte[size];
            }

            if (_lent is not null)
            {
                // Lent, not cached: a catch-up reader's batches are rarely read again soon; the array is reused by the
                // next round once the caller releases it (0 B per batch in steady state, see _spare).
                byte[] rented = RentForLoan(size);
                _lent.Add(rented);
                return rented.AsMemory(0, size);
            }

            // Not cached, so not shared: the reader's own buffer, reused for every such batch (0 B per batch). A
            // managed copy rather than a view of the pooled chunk: a caller who keeps a stale view reads stale
            // bytes at worst, never memory the pool has freed.
            if (_borrowed.Length < size)
            {
                _borrowed = new byte[Math.Max(size, Math.Min(2 * _borrowed.Length, _log._options.MaximumBatchSize))];
            }

            return _borrowed.AsMemory(0, size);
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<BatchRef?> ReadFromDiskAsync(long limit, bool borrow, int sizeMax, CancellationToken cancellationToken)
        {
            if (!await EnsureAsync(RecordBatch.HeaderSize, limit, cancellationToken).ConfigureAwait(false))
            {
                return CorruptUnlessChanged("the batch header extends past the readable end of the segment");
            }

            _window.CopyTo(_position, _header);
            var check = RecordBatchDecoder.Check(_header, _log._options.MaximumBatchSize, out var header);
            if (check is not (BatchCheck.Incomplete or BatchCheck.Valid))
            {
                return CorruptUnlessChanged($"batch check failed: {check}");
            }

            if (header.TotalSize > sizeMax && header.LastOffset >= _next)
            {
                // Withheld before it is read whole (NextBatchAsync returns it unconsumed): its checks run when it is read.
                return new BatchRef(null, ReadOnlyMemory<byte>.Empty, header.BaseOffset, header.LastOffset, _segment!.Path, _position);
            }

            if (!await EnsureAsync(header.TotalSize, limit, cancellationToken).ConfigureAwait(false))
            {
                return CorruptUnlessChanged("the batch extends past the readable end of the segment");
            }

            int size = (int)header.TotalSize;
            bool keep = _lent is null && (!borrow || _log._batchCache.WouldKeep(size, DiskAdmission));
            var bytes = TakeBuffer(size, keep);
            _window.CopyTo(_position, bytes.Span);
            check = RecordBatchDecoder.Check(bytes.Span, _log._options.MaximumBatchSize, out header);
            if (check != BatchCheck.Valid)
            {
                return CorruptUnlessChanged($"batch check failed: {check}");
            }

            if (header.BaseOffset < _segment!.BaseOffset)
            {
                return CorruptUnlessChanged($"batch base offset {header.BaseOffset} precedes the segment's {_segment.BaseOffset}");
            }

            if (!_segment.Index.EpochMatches(header.BaseOffset, header.PartitionLeaderEpoch))
            {
                // partitionLeaderEpoch lies outside Kafka's CRC: the segment's epoch history is what protects it.
                return CorruptUnlessChanged($"leader epoch {header.PartitionLeaderEpoch} does not match the segment's epoch history");
            }

            return keep
                ? BatchRef.Of(NewBatch(header, bytes))
                : new BatchRef(null, bytes, header.BaseOffset, header.LastOffset, _segment.Path, _position);
        }

        private LogBatch NewBatch(in RecordBatchHeader header, ReadOnlyMemory<byte> bytes) =>
            new(header.BaseOffset, header.RecordCount, header.PartitionLeaderEpoch, header.MaxTimestamp, bytes)
            {
                SourcePath = _segment!.Path,
                SourcePosition = _position,
            };

        private BatchRef? CorruptUnlessChanged(string reason)
        {
            if (ContentChanged())
            {
                return null; // a truncation rewrote these bytes while they were read
            }

            throw new LogCorruptedException(_segment!.Path, _position, reason);
        }

        /// <summary>
        /// Makes the window hold [position, position + length): reuses what it holds, takes the reads in flight that
        /// continue the window, reads the rest in the foreground; then, while sequential, doubles the lookahead and tops
        /// up the reads in flight (<see cref="ReadAhead"/>). A seek drops them and starts again from one chunk. False when
        /// those bytes are not all readable.
        /// </summary>
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<bool> EnsureAsync(long length, long limit, CancellationToken cancellationToken)
        {
            long position = _position;
            if (_window.Covers(position, length))
            {
                return true;
            }

            if (position + length > limit)
            {
                return false;
            }

            bool sequential = !_window.IsEmpty && position >= _window.Start && position <= _window.End;
            if (sequential)
            {
                _window.DropBefore(position);
                _window.DropShortEnd();
            }
            else
            {
                await DiscardPrefetchAsync().ConfigureAwait(false);
                _window.Clear();
                _readAheadPieces = 1;
            }

            long fileStart = _window.IsEmpty ? position - (position % _chunkSize) : _window.End;
            while (!_window.Covers(position, length) && _readAhead.Count > 0)
            {
                var pieces = await _readAhead.TakeAsync(fileStart).ConfigureAwait(false);
                if (pieces.Count == 0)
                {
                    break;
                }

                _window.Append(pieces);
                fileStart = _window.End;
                if (!_window.CanExtend)
                {
                    await _readAhead.ClearAsync().ConfigureAwait(false); // a short piece: nothing continues it
                    break;
                }
            }

            while (!_window.Covers(position, length))
            {
                if (!_window.IsEmpty && !_window.CanExtend)
                {
                    return false;
                }

                Invariant.Assert(_readAhead.Count == 0, "the foreground reads only where no read is in flight");
                int needed = (int)((position + length - fileStart + _chunkSize - 1) / _chunkSize);
                var pieces = ReadWindow.Read(_log._pool, _file!.File, fileStart, needed, limit, foreground: true);
                if (pieces.Count == 0)
                {
                    return false;
                }

                _window.Append(pieces);
                fileStart = _window.End;
            }

            if (sequential)
            {
                _readAheadPieces = Math.Min(_readAheadPieces * 2, _readAheadMaximumPieces);
                if (_window.CanExtend && _window.End < limit && _readAheadPieces > 1)
                {
                    var (reads, piecesPerRead) = ReadAhead.Shape(_readAheadPieces);
                    long from = _readAhead.Count > 0 ? _readAhead.End : _window.End;
                    _readAhead.TopUp(_file!.File, from, _window.End + ((long)_readAheadPieces * _chunkSize), limit, reads, piecesPerRead);
                }
            }

            return true;
        }

        private ValueTask DiscardPrefetchAsync() => _readAhead.ClearAsync();
    }

    /// <summary>
    /// A batch as a <see cref="Cursor"/> found it: <see cref="Owned"/> when it is a <see cref="LogBatch"/> (cached, or a
    /// fresh copy), else null with <see cref="Bytes"/> in the cursor's reusable buffer, valid until its next call.
    /// </summary>
    internal readonly record struct BatchRef(LogBatch? Owned, ReadOnlyMemory<byte> Bytes, long BaseOffset, long LastOffset, string SourcePath, long SourcePosition)
    {
        public static BatchRef Of(LogBatch batch) =>
            new(batch, batch.Bytes, batch.BaseOffset, batch.LastOffset, batch.SourcePath, batch.SourcePosition);
    }
}
