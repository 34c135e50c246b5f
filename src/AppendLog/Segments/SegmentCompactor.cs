using System.Buffers;
using System.Buffers.Binary;
using AppendLog.Format;
using AppendLog.Io;

namespace AppendLog.Segments;

/// <summary>
/// Key compaction of one segment file: fills a <see cref="KeyMap"/> from segments, and writes a sealed segment's
/// replacement into a temporary file beside it, keeping only each key's newest record.
/// </summary>
/// <remarks>
/// <para><b>Offsets are preserved.</b> Every surviving record keeps its offset: a batch keeps its base offset, base
/// timestamp, lastOffsetDelta and header fields, and its surviving records are copied byte for byte (their offset
/// and timestamp deltas stay valid). Readers demand that each batch start where the previous one ended, so
/// removed offsets must stay covered: a batch whose records were all removed is absorbed into the batch before
/// it by widening that batch's lastOffsetDelta (only when both carry the same leader epoch, so the epoch of
/// every offset is kept, and the batch before has no producer id, whose sequence range would change); otherwise
/// it becomes an empty carrier batch (61 bytes, recordCount 0) covering its range, which later empty batches
/// widen in turn. A run of removed batches thus costs at most one header per epoch change. Kafka keeps
/// original bounds the same way; it may drop empty batches because its readers accept gaps, ours do not.</para>
/// <para><b>What is kept.</b> Records without a key; control batches (verbatim, their keys unread); a keyed record whose offset is its key's newest; a tombstone that
/// is its key's newest unless it is older than the tombstone retention and no older value of its key can remain
/// (the caller processes segments oldest first and reports when an older value may have been kept).</para>
/// </remarks>
internal static class SegmentCompactor
{
    /// <summary>The suffix of a replacement being written (data "….log.compacting", index "….index.compacting").</summary>
    public const string TemporarySuffix = ".compacting";

    private const short ControlAttribute = 0x20;

    /// <summary>True for a file a compaction left behind (recovery deletes these; they are never segments).</summary>
    public static bool IsTemporaryFile(string fileName) => fileName.Contains(TemporarySuffix, StringComparison.Ordinal);

    public static string TemporaryDataFile(string dataPath) => dataPath + TemporarySuffix;

    public static string TemporaryIndexFile(string directory, long baseOffset) => SegmentNames.IndexFile(directory, baseOffset) + TemporarySuffix;

    /// <summary>
    /// Reads the batches of a segment file in [0, <paramref name="limit"/>) whose base offset is below
    /// <paramref name="durableEnd"/>, and enters each key's offset: every key when <paramref name="insert"/>,
    /// otherwise only keys already in the map (records come in offset order, so the last write is the newest).
    /// </summary>
    /// <remarks><paramref name="mustBeWhole"/>: true for a sealed segment, where a batch that fails its check is damage,
    /// reported; for an unsealed one the scan stops there (bytes past the durable end may still be in flight).</remarks>
    /// <returns>The bytes scanned.</returns>
    public static long ScanKeys(
        IDirectFile file, long baseOffset, long limit, long durableEnd, bool mustBeWhole, KeyMap map, bool insert, BatchScanner scanner, ref byte[] scratch)
    {
        scanner.Reset(file);
        long position = 0;
        long expected = baseOffset;
        while (position < limit && expected < durableEnd)
        {
            var check = scanner.TryRead(position, limit, out var header, out var batch);
            if (check != BatchCheck.Valid || header.BaseOffset != expected || !OffsetRange.IsValid(header))
            {
                if (mustBeWhole)
                {
                    throw new LogCorruptedException(file.Path, position, $"batch check failed while compacting: {check}, base offset {header.BaseOffset} where {expected} was expected");
                }

                break;
            }

            if (IsReadable(header))
            {
                foreach (var record in Records(batch, header, ref scratch, file.Path, position))
                {
                    if (!record.HasKey)
                    {
                        continue;
                    }

                    var key = KeyMap.Hash(record.Key);
                    if (insert)
                    {
                        map.Put(key, record.Offset);
                    }
                    else
                    {
                        map.UpdateIfPresent(key, record.Offset);
                    }
                }
            }

            expected = header.LastOffset + 1;
            position += header.TotalSize;
        }

        return position;
    }

    /// <summary>
    /// Writes the compacted copy of the sealed segment <paramref name="source"/> to its temporary data file (synced)
    /// and its index to the temporary index file (synced). Returns the replacement segment, or null (and no files)
    /// when compaction would remove nothing.
    /// </summary>
    public static Segment? Rewrite(IStorage storage, LogOptions options, Segment source, KeyMap map, CompactionState state, BatchScanner scanner)
    {
        string tempData = TemporaryDataFile(source.Path);
        string tempIndex = TemporaryIndexFile(options.Directory, source.BaseOffset);
        storage.DeleteFile(tempData);
        storage.DeleteFile(tempIndex);
        var replacement = new Segment(source.Path, source.BaseOffset, source.GlobalStart)
        {
            EndOffset = source.EndOffset,
            MaxTimestampMs = source.MaxTimestampMs,
            DirectoryEntryDurable = true,
        };
        replacement.MoveTo(SegmentState.Sealed);
        bool changed;
        try
        {
            using (var input = storage.Open(source.Path, FileCreation.OpenExisting, options.DirectIo))
            using (var outputFile = storage.Open(tempData, FileCreation.CreateNew, options.DirectIo))
            using (var output = new SegmentOutput(outputFile, options.MaximumBatchSize))
            {
                var writer = new BatchRewriter(options.MaximumBatchSize, options.IndexIntervalBytes, map, state, output, replacement);
                changed = writer.Run(input, source, scanner);
                if (changed)
                {
                    output.Complete();
                    replacement.Size = output.Position;
                }
            }

            if (!changed)
            {
                storage.DeleteFile(tempData);
                return null;
            }

            storage.WriteFileAtomic(
                tempIndex,
                replacement.Index.Serialize(replacement.BaseOffset, replacement.EndOffset, replacement.Size, replacement.MaxTimestampMs));
            return replacement;
        }
        catch
        {
            DeleteQuietly(storage, tempData);
            DeleteQuietly(storage, tempIndex);
            throw;
        }
    }

    public static void DeleteQuietly(IStorage storage, string path)
    {
        try
        {
            storage.DeleteFile(path);
        }
        catch (IOException)
        {
            // Best effort: recovery deletes leftover temporary files.
        }
    }

    /// <summary>Batches whose records compaction reads: not control batches, any codec the log reads (none, GZIP, Snappy, LZ4, ZSTD).</summary>
    private static bool IsReadable(in RecordBatchHeader header) =>
        (header.Attributes & ControlAttribute) == 0 && BatchCompression.IsSupported(header.Codec);

    private static RecordEnumerator Records(ReadOnlySpan<byte> batch, in RecordBatchHeader header, ref byte[] scratch, string path, long position)
    {
        if (header.Codec == CompressionCodec.None)
        {
            return RecordBatchDecoder.GetRecords(batch, header);
        }

        if (scratch.Length < 4 * batch.Length)
        {
            scratch = new byte[Math.Max(4 * batch.Length, 64 * 1024)];
        }

        while (true)
        {
            var status = RecordBatchDecoder.DecompressRecords(batch, header, scratch, out int written);
            if (status == OperationStatus.Done)
            {
                return RecordBatchDecoder.GetDecompressedRecords(scratch.AsSpan(0, written), header);
            }

            if (scratch.Length >= 256 * 1024 * 1024)
            {
                throw new LogCorruptedException(path, position, "the compressed batch inflates beyond the allowed size");
            }

            scratch = new byte[scratch.Length * 4];
        }
    }

    /// <summary>The per-segment rewrite: input batches in, compacted batches out, the last one held back so it can widen.</summary>
    private sealed class BatchRewriter
    {
        private readonly int _maxBatchSize;
        private readonly int _indexIntervalBytes;
        private readonly KeyMap _map;
        private readonly CompactionState _state;
        private readonly SegmentOutput _output;
        private readonly Segment _replacement;
        private readonly byte[] _pending;
        private int _pendingLength;
        private bool _pendingWidenable;
        private byte[] _survivors = new byte[64 * 1024];
        private byte[] _scratch = [];
        private bool _changed;

        public BatchRewriter(int maxBatchSize, int indexIntervalBytes, KeyMap map, CompactionState state, SegmentOutput output, Segment replacement)
        {
            _maxBatchSize = maxBatchSize;
            _indexIntervalBytes = indexIntervalBytes;
            _map = map;
            _state = state;
            _output = output;
            _replacement = replacement;
            _pending = new byte[maxBatchSize];
        }

        public bool Run(IDirectFile input, Segment source, BatchScanner scanner)
        {
            scanner.Reset(input);
            long position = 0;
            long expected = source.BaseOffset;
            while (position < source.Size)
            {
                var check = scanner.TryRead(position, source.Size, out var header, out var batch);
                if (check != BatchCheck.Valid || header.BaseOffset != expected || !OffsetRange.IsValid(header))
                {
                    throw new LogCorruptedException(input.Path, position, $"batch check failed while compacting: {check}, base offset {header.BaseOffset} where {expected} was expected");
                }

                Process(batch, header, input.Path, position);
                expected = header.LastOffset + 1;
                position += header.TotalSize;
            }

            if (expected != source.EndOffset)
            {
                throw new LogCorruptedException(input.Path, position, $"the segment ends at offset {expected}, its index says {source.EndOffset}");
            }

            Commit();
            return _changed;
        }

        private void Process(ReadOnlySpan<byte> batch, in RecordBatchHeader header, string path, long position)
        {
            if (!IsReadable(header))
            {
                // Keys unread: an older value of some key may stay here, so no later tombstone may go this run.
                _state.OlderValuesMayRemain |= (header.Attributes & ControlAttribute) == 0;
                Hold(batch, widenable: false);
                return;
            }

            int kept = 0, removed = 0, tombstonesRemoved = 0, survivorsLength = 0;
            var records = Records(batch, header, ref _scratch, path, position);
            ReadOnlySpan<byte> section = header.Codec == CompressionCodec.None ? batch[RecordBatch.RecordsOffset..] : _scratch;
            int recordStart = 0;
            foreach (var record in records)
            {
                // The enumerator validated the length varint; read it again to find the record's raw bytes.
                Varint.TryRead(section[recordStart..], out int bodyLength, out int lengthSize);
                int recordLength = lengthSize + bodyLength;
                bool tombstone = !record.HasValue;
                if (Keep(record))
                {
                    EnsureSurvivorCapacity(survivorsLength + recordLength);
                    section.Slice(recordStart, recordLength).CopyTo(_survivors.AsSpan(survivorsLength));
                    survivorsLength += recordLength;
                    kept++;
                }
                else
                {
                    removed++;
                    tombstonesRemoved += tombstone && IsNewest(record) ? 1 : 0;
                }

                recordStart += recordLength;
            }

            bool widenable = header.ProducerId == RecordBatch.NoProducerId;
            if (removed == 0)
            {
                Hold(batch, widenable);
                return;
            }

            if (kept == 0)
            {
                Absorb(header);
            }
            else if (!TryBuild(batch, header, kept, survivorsLength))
            {
                // Recompressed, it would exceed the batch size limit: keep the batch as it is (rare; see the flag).
                _state.OlderValuesMayRemain = true;
                Hold(batch, widenable);
                return;
            }

            _changed = true;
            _state.RecordsRemoved += removed;
            _state.TombstonesRemoved += tombstonesRemoved;
        }

        private bool IsNewest(in RecordView record) => _map.TryGetNewest(KeyMap.Hash(record.Key), out long newest) && newest == record.Offset;

        private bool Keep(in RecordView record)
        {
            if (!record.HasKey || !_map.TryGetNewest(KeyMap.Hash(record.Key), out long newest))
            {
                return true;
            }

            if (newest != record.Offset)
            {
                return newest < record.Offset;
            }

            return record.HasValue || _state.OlderValuesMayRemain || record.TimestampMs >= _state.TombstoneCutoffMs;
        }

        private void EnsureSurvivorCapacity(int needed)
        {
            if (_survivors.Length < needed)
            {
                Array.Resize(ref _survivors, Math.Max(needed, 2 * _survivors.Length));
            }
        }

        /// <summary>Writes the partially kept batch into the held slot; false when it would exceed the size limit.</summary>
        private bool TryBuild(ReadOnlySpan<byte> batch, in RecordBatchHeader header, int kept, int survivorsLength)
        {
            var survivors = _survivors.AsSpan(0, survivorsLength);
            // The survivors keep their batch's codec (re-compressed with it).
            bool compressed = header.Codec != CompressionCodec.None;
            int capacity = RecordBatch.HeaderSize + (compressed ? BatchCompression.MaxCompressedLength(header.Codec, survivorsLength) : survivorsLength);
            var built = new byte[capacity];
            batch[..RecordBatch.HeaderSize].CopyTo(built);
            int size = compressed
                ? RecordBatch.HeaderSize + BatchCompression.Compress(header.Codec, survivors, built.AsSpan(RecordBatch.HeaderSize))
                : RecordBatch.HeaderSize + survivors.Length;
            if (header.Codec == CompressionCodec.None)
            {
                survivors.CopyTo(built.AsSpan(RecordBatch.HeaderSize));
            }

            if (size > _maxBatchSize)
            {
                return false;
            }

            var span = built.AsSpan(0, size);
            BinaryPrimitives.WriteInt32BigEndian(span[RecordBatch.BatchLengthOffset..], size - RecordBatch.LogOverhead);
            BinaryPrimitives.WriteInt32BigEndian(span[RecordBatch.RecordCountOffset..], kept);
            SealCrc(span);
            Hold(span, header.ProducerId == RecordBatch.NoProducerId);
            return true;
        }

        /// <summary>Covers the range of a batch whose records were all removed: widen the held batch, or hold a carrier.</summary>
        private void Absorb(in RecordBatchHeader removed)
        {
            if (_pendingLength > 0 && _pendingWidenable)
            {
                var held = _pending.AsSpan(0, _pendingLength);
                RecordBatchHeader.TryRead(held, out var h);
                long delta = removed.LastOffset - h.BaseOffset;
                if (h.PartitionLeaderEpoch == removed.PartitionLeaderEpoch && delta <= int.MaxValue)
                {
                    BinaryPrimitives.WriteInt32BigEndian(held[RecordBatch.LastOffsetDeltaOffset..], (int)delta);
                    if (h.RecordCount == 0)
                    {
                        // A carrier's timestamps describe what it covers (the time index must not move backwards).
                        BinaryPrimitives.WriteInt64BigEndian(held[RecordBatch.MaxTimestampOffset..], Math.Max(h.MaxTimestamp, removed.MaxTimestamp));
                    }

                    SealCrc(held);
                    return;
                }
            }

            Commit();
            var carrier = _pending.AsSpan(0, RecordBatch.HeaderSize);
            carrier.Clear();
            BinaryPrimitives.WriteInt64BigEndian(carrier[RecordBatch.BaseOffsetOffset..], removed.BaseOffset);
            BinaryPrimitives.WriteInt32BigEndian(carrier[RecordBatch.BatchLengthOffset..], RecordBatch.HeaderSize - RecordBatch.LogOverhead);
            BinaryPrimitives.WriteInt32BigEndian(carrier[RecordBatch.PartitionLeaderEpochOffset..], removed.PartitionLeaderEpoch);
            carrier[RecordBatch.MagicOffset] = RecordBatch.CurrentMagic;
            BinaryPrimitives.WriteInt16BigEndian(carrier[RecordBatch.AttributesOffset..], 0);
            BinaryPrimitives.WriteInt32BigEndian(carrier[RecordBatch.LastOffsetDeltaOffset..], removed.LastOffsetDelta);
            BinaryPrimitives.WriteInt64BigEndian(carrier[RecordBatch.BaseTimestampOffset..], removed.BaseTimestamp);
            BinaryPrimitives.WriteInt64BigEndian(carrier[RecordBatch.MaxTimestampOffset..], removed.MaxTimestamp);
            BinaryPrimitives.WriteInt64BigEndian(carrier[RecordBatch.ProducerIdOffset..], RecordBatch.NoProducerId);
            BinaryPrimitives.WriteInt16BigEndian(carrier[RecordBatch.ProducerEpochOffset..], RecordBatch.NoProducerEpoch);
            BinaryPrimitives.WriteInt32BigEndian(carrier[RecordBatch.BaseSequenceOffset..], RecordBatch.NoSequence);
            BinaryPrimitives.WriteInt32BigEndian(carrier[RecordBatch.RecordCountOffset..], 0);
            SealCrc(carrier);
            _pendingLength = RecordBatch.HeaderSize;
            _pendingWidenable = true;
        }

        private void Hold(ReadOnlySpan<byte> batch, bool widenable)
        {
            Commit();
            batch.CopyTo(_pending);
            _pendingLength = batch.Length;
            _pendingWidenable = widenable;
        }

        private void Commit()
        {
            if (_pendingLength == 0)
            {
                return;
            }

            var held = _pending.AsSpan(0, _pendingLength);
            RecordBatchHeader.TryRead(held, out var h);
            _replacement.Index.MaybeAdd(h.BaseOffset, _output.Position, h.MaxTimestamp, _indexIntervalBytes);
            _replacement.Index.ObserveEpoch(h.BaseOffset, h.PartitionLeaderEpoch);
            _output.Append(held);
            _pendingLength = 0;
        }

        private static void SealCrc(Span<byte> batch) =>
            BinaryPrimitives.WriteUInt32BigEndian(batch[RecordBatch.CrcOffset..], Crc32C.Compute(batch[RecordBatch.AttributesOffset..]));
    }
}

/// <summary>What one compaction run carries from segment to segment (oldest first).</summary>
internal sealed class CompactionState
{
    /// <summary>Tombstones with a timestamp below this (Unix ms) may be removed.</summary>
    public long TombstoneCutoffMs { get; init; }

    /// <summary>
    /// True once a record older than its key's newest was kept (a verbatim batch): from then on a tombstone could be
    /// the only thing hiding it, so none is removed for the rest of the run.
    /// </summary>
    public bool OlderValuesMayRemain { get; set; }

    public long RecordsRemoved { get; set; }

    public long TombstonesRemoved { get; set; }
}
