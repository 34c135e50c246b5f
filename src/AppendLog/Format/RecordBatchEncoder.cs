using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace AppendLog.Format;

/// <summary>
/// Writes Kafka RecordBatch v2 batches (see <see cref="RecordBatch"/> for the header layout) from
/// <see cref="AppendRecord"/>s, into caller buffers and without allocating.
/// </summary>
/// <remarks>
/// <para>
/// Each record is written as (all varints zigzag, see <see cref="Varint"/>):
/// </para>
/// <code>
/// length varint          bytes of the record after this field
/// attributes int8        0 (unused by Kafka)
/// timestampDelta varlong 0: every record of a batch gets the batch's timestamp
/// offsetDelta varint     0, 1, 2 … (index in the batch)
/// keyLength varint       -1 for no key
/// key
/// valueLength varint     -1 for no value (a tombstone)
/// value
/// headerCount varint
/// headers                keyLength varint, UTF-8 key, valueLength varint, value
/// </code>
/// <para>
/// A batch leaves the encoder with baseOffset 0: the log assigns offsets only when it orders the batch,
/// then calls <see cref="PatchBaseOffset"/>. baseOffset and partitionLeaderEpoch are outside the CRC,
/// which covers attributes to the end, so patching them keeps the CRC valid (as in Kafka, whose broker
/// assigns offsets the same way).
/// </para>
/// </remarks>
internal static class RecordBatchEncoder
{
    /// <summary>
    /// The largest batch in bytes: batchLength is an int32, and 2 GiB is far above any record size limit
    /// the log will set, so this bound exists only to turn arithmetic overflow into an exception.
    /// </summary>
    public const int BatchSizeMax = int.MaxValue;

    /// <summary>The exact size in bytes of the uncompressed batch <see cref="Encode"/> writes for <paramref name="records"/>.</summary>
    /// <exception cref="ArgumentException">No records, a header with a null key, or the batch exceeds 2 GiB.</exception>
    public static int MeasureUncompressed(ReadOnlySpan<AppendRecord> records) =>
        checked(RecordBatch.HeaderSize + MeasureRecords(records));

    /// <summary>The size in bytes of the records section (the batch minus its 61-byte header).</summary>
    /// <exception cref="ArgumentException">No records, a header with a null key, or the batch exceeds 2 GiB.</exception>
    public static int MeasureRecords(ReadOnlySpan<AppendRecord> records)
    {
        if (records.IsEmpty)
        {
            ThrowNoRecords();
        }

        long size = 0;
        for (int i = 0; i < records.Length; i++)
        {
            int body = MeasureBody(records[i], i);
            size += Varint.SizeOf(body) + (long)body;
            if (size > BatchSizeMax - RecordBatch.HeaderSize)
            {
                ThrowTooLarge();
            }
        }

        return (int)size;
    }

    /// <summary>
    /// The most bytes <see cref="EncodeCompressed(Span{byte}, Span{byte}, ReadOnlySpan{AppendRecord}, long, int)"/> can write with LZ4: the header plus the worst-case LZ4 frame
    /// of the records section (incompressible input is stored raw, so this is a few bytes over
    /// <see cref="MeasureUncompressed"/>).
    /// </summary>
    /// <exception cref="ArgumentException">No records, a header with a null key, or the batch exceeds 2 GiB.</exception>
    public static int MeasureCompressedMax(ReadOnlySpan<AppendRecord> records) =>
        MeasureCompressedMax(records, CompressionCodec.Lz4);

    /// <summary>The most bytes <see cref="EncodeCompressed(Span{byte}, Span{byte}, ReadOnlySpan{AppendRecord}, long, int, CompressionCodec)"/> can write with <paramref name="codec"/>.</summary>
    /// <exception cref="ArgumentException">No records, a header with a null key, or the batch exceeds 2 GiB.</exception>
    public static int MeasureCompressedMax(ReadOnlySpan<AppendRecord> records, CompressionCodec codec)
    {
        long size = RecordBatch.HeaderSize + (long)BatchCompression.MaxCompressedLength(codec, MeasureRecords(records));
        if (size > BatchSizeMax)
        {
            ThrowTooLarge();
        }

        return (int)size;
    }

    /// <summary>
    /// Writes an uncompressed batch of <paramref name="records"/> with baseOffset 0 and the CRC filled in.
    /// </summary>
    /// <param name="destination">At least <see cref="MeasureUncompressed"/> bytes.</param>
    /// <param name="records">One or more records; offset deltas are their indexes.</param>
    /// <param name="timestampMs">The timestamp of every record, in Unix milliseconds.</param>
    /// <param name="leaderEpoch">The Raft term (Kafka's partitionLeaderEpoch), or -1 when unused.</param>
    /// <returns>The batch's length in bytes.</returns>
    /// <exception cref="ArgumentException">The destination is too small, there are no records, a header has a
    /// null key, or the batch exceeds 2 GiB.</exception>
    public static int Encode(Span<byte> destination, ReadOnlySpan<AppendRecord> records, long timestampMs, int leaderEpoch)
    {
        int size = MeasureUncompressed(records);
        if (destination.Length < size)
        {
            ThrowDestinationTooSmall(destination.Length, size);
        }

        Span<byte> batch = destination[..size];
        int written = WriteRecords(batch[RecordBatch.RecordsOffset..], records);
        CheckWritten(written, size - RecordBatch.HeaderSize);
        WriteHeader(batch, CompressionCodec.None, records.Length, timestampMs, leaderEpoch);
        return size;
    }

    /// <summary>
    /// Writes an LZ4-compressed batch (codec 3): the header, then one LZ4 frame of the records section.
    /// The records are first encoded into <paramref name="scratch"/>, then compressed into
    /// <paramref name="destination"/>; both are the caller's, so nothing is allocated.
    /// </summary>
    /// <param name="destination">At least <see cref="MeasureCompressedMax(ReadOnlySpan{AppendRecord})"/> bytes.</param>
    /// <param name="scratch">At least <see cref="MeasureRecords"/> bytes; its contents are overwritten.</param>
    /// <param name="records">One or more records; offset deltas are their indexes.</param>
    /// <param name="timestampMs">The timestamp of every record, in Unix milliseconds.</param>
    /// <param name="leaderEpoch">The Raft term (Kafka's partitionLeaderEpoch), or -1 when unused.</param>
    /// <returns>The batch's length in bytes.</returns>
    /// <exception cref="ArgumentException">A buffer is too small, there are no records, a header has a
    /// null key, or the batch exceeds 2 GiB.</exception>
    public static int EncodeCompressed(
        Span<byte> destination, Span<byte> scratch, ReadOnlySpan<AppendRecord> records, long timestampMs, int leaderEpoch) =>
        EncodeCompressed(destination, scratch, records, timestampMs, leaderEpoch, CompressionCodec.Lz4);

    /// <summary>
    /// Writes a batch compressed with <paramref name="codec"/> (GZIP, Snappy, LZ4 or ZSTD; see
    /// <see cref="BatchCompression"/>): the header, then the compressed records section, encoded first into
    /// <paramref name="scratch"/>.
    /// </summary>
    /// <param name="destination">At least <see cref="MeasureCompressedMax(ReadOnlySpan{AppendRecord}, CompressionCodec)"/> bytes.</param>
    /// <param name="scratch">At least <see cref="MeasureRecords"/> bytes; its contents are overwritten.</param>
    /// <param name="records">One or more records; offset deltas are their indexes.</param>
    /// <param name="timestampMs">The timestamp of every record, in Unix milliseconds.</param>
    /// <param name="leaderEpoch">The Raft term (Kafka's partitionLeaderEpoch), or -1 when unused.</param>
    /// <param name="codec">The compression codec (not <see cref="CompressionCodec.None"/>).</param>
    /// <returns>The batch's length in bytes.</returns>
    /// <exception cref="ArgumentException">A buffer is too small, there are no records, a header has a
    /// null key, the codec is none, or the batch exceeds 2 GiB.</exception>
    public static int EncodeCompressed(
        Span<byte> destination, Span<byte> scratch, ReadOnlySpan<AppendRecord> records, long timestampMs, int leaderEpoch, CompressionCodec codec)
    {
        int recordsSize = MeasureRecords(records);
        if (scratch.Length < recordsSize)
        {
            throw new ArgumentException($"The scratch buffer holds {scratch.Length} bytes; the records need {recordsSize}.", nameof(scratch));
        }

        int sizeMax = MeasureCompressedMax(records, codec);
        if (destination.Length < sizeMax)
        {
            ThrowDestinationTooSmall(destination.Length, sizeMax);
        }

        int written = WriteRecords(scratch[..recordsSize], records);
        CheckWritten(written, recordsSize);
        int payloadSize = BatchCompression.Compress(codec, scratch[..recordsSize], destination[RecordBatch.RecordsOffset..sizeMax]);
        int size = RecordBatch.HeaderSize + payloadSize;
        WriteHeader(destination[..size], codec, records.Length, timestampMs, leaderEpoch);
        return size;
    }

    /// <summary>
    /// Sets the baseOffset of an encoded batch. The CRC does not cover it, so the batch stays valid.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="batch"/> is shorter than a header.</exception>
    public static void PatchBaseOffset(Span<byte> batch, long baseOffset)
    {
        CheckHeader(batch);
        BinaryPrimitives.WriteInt64BigEndian(batch[RecordBatch.BaseOffsetOffset..], baseOffset);
    }

    /// <summary>
    /// Sets the partitionLeaderEpoch (our Raft term) of an encoded batch. The CRC does not cover it, so the
    /// batch stays valid: a batch can be encoded before the term it will be replicated in is known.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="batch"/> is shorter than a header.</exception>
    public static void PatchLeaderEpoch(Span<byte> batch, int leaderEpoch)
    {
        CheckHeader(batch);
        BinaryPrimitives.WriteInt32BigEndian(batch[RecordBatch.PartitionLeaderEpochOffset..], leaderEpoch);
    }

    /// <summary>Size of one record after its length varint (see the table in the class remarks).</summary>
    private static int MeasureBody(in AppendRecord record, int offsetDelta)
    {
        long size = 1 // attributes
            + Varint.SizeOf(0L) // timestampDelta
            + Varint.SizeOf(offsetDelta)
            + MeasureBytes(record.HasKey, record.Key.Length)
            + MeasureBytes(record.HasValue, record.Value.Length);

        IReadOnlyList<RecordHeader>? headers = record.Headers;
        int headerCount = headers?.Count ?? 0;
        size += Varint.SizeOf(headerCount);
        for (int i = 0; i < headerCount; i++)
        {
            RecordHeader header = headers![i];
            int keyBytes = Utf8KeyLength(header);
            size += Varint.SizeOf(keyBytes) + (long)keyBytes + MeasureBytes(!header.IsValueNull, header.Value.Length);
            if (size > BatchSizeMax)
            {
                ThrowTooLarge();
            }
        }

        if (size > BatchSizeMax)
        {
            ThrowTooLarge();
        }

        return (int)size;
    }

    private static long MeasureBytes(bool present, int length) => present ? Varint.SizeOf(length) + (long)length : Varint.SizeOf(-1);

    private static int Utf8KeyLength(in RecordHeader header)
    {
        if (header.Key is null)
        {
            throw new ArgumentException("A record header has a null key; Kafka header keys are required.", "records");
        }

        return Encoding.UTF8.GetByteCount(header.Key);
    }

    private static int WriteRecords(Span<byte> destination, ReadOnlySpan<AppendRecord> records)
    {
        int position = 0;
        for (int i = 0; i < records.Length; i++)
        {
            position += WriteRecord(destination[position..], records[i], i);
        }

        return position;
    }

    private static int WriteRecord(Span<byte> destination, in AppendRecord record, int offsetDelta)
    {
        int body = MeasureBody(record, offsetDelta);
        int position = Varint.Write(destination, body);
        int bodyStart = position;
        destination[position++] = 0; // attributes
        position += Varint.Write(destination[position..], 0L); // timestampDelta
        position += Varint.Write(destination[position..], offsetDelta);
        position += WriteBytes(destination[position..], record.HasKey, record.Key.Span);
        position += WriteBytes(destination[position..], record.HasValue, record.Value.Span);

        IReadOnlyList<RecordHeader>? headers = record.Headers;
        int headerCount = headers?.Count ?? 0;
        position += Varint.Write(destination[position..], headerCount);
        for (int i = 0; i < headerCount; i++)
        {
            RecordHeader header = headers![i];
            int keyBytes = Utf8KeyLength(header);
            position += Varint.Write(destination[position..], keyBytes);
            position += Encoding.UTF8.GetBytes(header.Key, destination[position..]);
            position += WriteBytes(destination[position..], !header.IsValueNull, header.Value.Span);
        }

        // Pair check: the body we wrote is exactly the size we measured (and wrote into the length field).
        // It fails only if a caller's header list changed between the two passes.
        CheckWritten(position - bodyStart, body);
        return position;
    }

    private static int WriteBytes(Span<byte> destination, bool present, ReadOnlySpan<byte> bytes)
    {
        if (!present)
        {
            return Varint.Write(destination, -1);
        }

        int position = Varint.Write(destination, bytes.Length);
        bytes.CopyTo(destination[position..]);
        return position + bytes.Length;
    }

    /// <summary>Writes the header of a batch whose records are already in place, then its CRC.</summary>
    private static void WriteHeader(Span<byte> batch, CompressionCodec codec, int recordCount, long timestampMs, int leaderEpoch)
    {
        BinaryPrimitives.WriteInt64BigEndian(batch[RecordBatch.BaseOffsetOffset..], 0);
        BinaryPrimitives.WriteInt32BigEndian(batch[RecordBatch.BatchLengthOffset..], batch.Length - RecordBatch.LogOverhead);
        BinaryPrimitives.WriteInt32BigEndian(batch[RecordBatch.PartitionLeaderEpochOffset..], leaderEpoch);
        batch[RecordBatch.MagicOffset] = RecordBatch.CurrentMagic;
        BinaryPrimitives.WriteInt16BigEndian(batch[RecordBatch.AttributesOffset..], (short)codec);
        BinaryPrimitives.WriteInt32BigEndian(batch[RecordBatch.LastOffsetDeltaOffset..], recordCount - 1);
        BinaryPrimitives.WriteInt64BigEndian(batch[RecordBatch.BaseTimestampOffset..], timestampMs);
        BinaryPrimitives.WriteInt64BigEndian(batch[RecordBatch.MaxTimestampOffset..], timestampMs);
        BinaryPrimitives.WriteInt64BigEndian(batch[RecordBatch.ProducerIdOffset..], RecordBatch.NoProducerId);
        BinaryPrimitives.WriteInt16BigEndian(batch[RecordBatch.ProducerEpochOffset..], RecordBatch.NoProducerEpoch);
        BinaryPrimitives.WriteInt32BigEndian(batch[RecordBatch.BaseSequenceOffset..], RecordBatch.NoSequence);
        BinaryPrimitives.WriteInt32BigEndian(batch[RecordBatch.RecordCountOffset..], recordCount);

        // The CRC goes last: it covers attributes (offset 21) to the end, all written above.
        uint crc = Crc32C.Compute(batch[RecordBatch.AttributesOffset..]);
        BinaryPrimitives.WriteUInt32BigEndian(batch[RecordBatch.CrcOffset..], crc);
    }

    /// <summary>
    /// Stamps a complete batch with LogAppendTime (Kafka's broker-side rule): sets the timestamp-type attribute, makes
    /// <paramref name="appendTimeMs"/> the max timestamp and recomputes the CRC, which covers both.
    /// </summary>
    public static void StampLogAppendTime(Span<byte> batch, long appendTimeMs)
    {
        CheckHeader(batch);
        short attributes = BinaryPrimitives.ReadInt16BigEndian(batch[RecordBatch.AttributesOffset..]);
        BinaryPrimitives.WriteInt16BigEndian(batch[RecordBatch.AttributesOffset..], (short)(attributes | RecordBatch.LogAppendTimeFlag));
        BinaryPrimitives.WriteInt64BigEndian(batch[RecordBatch.MaxTimestampOffset..], appendTimeMs);
        BinaryPrimitives.WriteUInt32BigEndian(batch[RecordBatch.CrcOffset..], Crc32C.Compute(batch[RecordBatch.AttributesOffset..]));
    }

    private static void CheckHeader(Span<byte> batch)
    {
        if (batch.Length < RecordBatch.HeaderSize)
        {
            throw new ArgumentException($"A batch has at least {RecordBatch.HeaderSize} bytes; got {batch.Length}.", nameof(batch));
        }
    }

    private static void CheckWritten(int written, int measured)
    {
        if (written != measured)
        {
            throw new InvalidOperationException(
                $"Encoded {written} bytes where {measured} were measured: a record's headers changed during encoding.");
        }
    }

    [DoesNotReturn]
    private static void ThrowNoRecords() =>
        throw new ArgumentException("A batch holds at least one record.", "records");

    [DoesNotReturn]
    private static void ThrowTooLarge() =>
        throw new ArgumentException($"The batch would exceed {BatchSizeMax} bytes.", "records");

    [DoesNotReturn]
    private static void ThrowDestinationTooSmall(int length, int needed) =>
        throw new ArgumentException($"The destination holds {length} bytes; the batch needs {needed}.", "destination");
}
