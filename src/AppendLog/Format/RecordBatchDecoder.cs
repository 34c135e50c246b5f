using System.Buffers;

namespace AppendLog.Format;

/// <summary>
/// Validates batches and hands out zero-copy views of their records.
/// </summary>
/// <remarks>
/// <para>The intended sequence: <see cref="Check"/> the bytes at a batch boundary; on
/// <see cref="BatchCheck.Valid"/>, enumerate with <see cref="GetRecords"/> (codec none) or
/// <see cref="DecompressRecords"/> then <see cref="GetDecompressedRecords"/> (compressed).</para>
/// <para>What <see cref="Check"/> does <em>not</em> cover, and who does: baseOffset and
/// partitionLeaderEpoch lie outside the CRC (see <see cref="RecordBatch"/>). The log checks that the base
/// offset equals the offset it expects next; the epoch (Raft term) is not protected by the batch at all,
/// so its users must cross-check it (see <see cref="RecordBatch"/>).</para>
/// </remarks>
internal static class RecordBatchDecoder
{
    /// <summary>
    /// Classifies the bytes at a batch boundary. Never throws on any content of <paramref name="data"/>.
    /// </summary>
    /// <param name="data">Bytes starting at a batch; may hold more than one batch.</param>
    /// <param name="maxBatchSize">The largest batch the caller accepts, in bytes (at least 61).</param>
    /// <param name="header">The header as read (also on failures other than a short header, for diagnostics).</param>
    /// <returns>
    /// The checks run in this order, each only when the previous passed: header present (61 bytes) →
    /// <see cref="BatchCheck.Incomplete"/>; 49 ≤ batchLength and TotalSize ≤ <paramref name="maxBatchSize"/> →
    /// <see cref="BatchCheck.BadLength"/>; magic 2 → <see cref="BatchCheck.BadMagic"/>; TotalSize bytes present →
    /// <see cref="BatchCheck.Incomplete"/>; CRC32C matches → <see cref="BatchCheck.BadCrc"/>. Length comes before
    /// the byte count so that a garbage length is refused at once instead of waiting for 2 GiB to arrive.
    /// </returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxBatchSize"/> is below 61.</exception>
    public static BatchCheck Check(ReadOnlySpan<byte> data, int maxBatchSize, out RecordBatchHeader header)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchSize, RecordBatch.HeaderSize);
        if (!RecordBatchHeader.TryRead(data, out header))
        {
            return BatchCheck.Incomplete;
        }

        if (header.BatchLength < RecordBatch.BatchLengthMin || header.TotalSize > maxBatchSize)
        {
            return BatchCheck.BadLength;
        }

        if (header.Magic != RecordBatch.CurrentMagic)
        {
            return BatchCheck.BadMagic;
        }

        if (data.Length < header.TotalSize)
        {
            return BatchCheck.Incomplete;
        }

        uint crc = Crc32C.Compute(data[RecordBatch.AttributesOffset..(int)header.TotalSize]);
        return crc == header.Crc ? BatchCheck.Valid : BatchCheck.BadCrc;
    }

    /// <summary>Enumerates the records of a checked, uncompressed batch without copying.</summary>
    /// <param name="batch">The batch's bytes (at least <see cref="RecordBatchHeader.TotalSize"/>).</param>
    /// <param name="header">The header <see cref="Check"/> returned with <see cref="BatchCheck.Valid"/>.</param>
    /// <returns>An enumerator whose <c>MoveNext</c> throws <see cref="RecordBatchFormatException"/> on a malformed record.</returns>
    /// <exception cref="ArgumentException">The batch is compressed, or shorter than its header says.</exception>
    public static RecordEnumerator GetRecords(ReadOnlySpan<byte> batch, in RecordBatchHeader header)
    {
        if (header.Codec != CompressionCodec.None)
        {
            throw new ArgumentException($"The batch is compressed with {header.Codec}; decompress it first.", nameof(header));
        }

        return new RecordEnumerator(RecordsSection(batch, header), header);
    }

    /// <summary>
    /// Decompresses the records section of a checked compressed batch (any codec of <see cref="BatchCompression"/>)
    /// into <paramref name="scratch"/>.
    /// </summary>
    /// <param name="batch">The batch's bytes (at least <see cref="RecordBatchHeader.TotalSize"/>).</param>
    /// <param name="header">The header <see cref="Check"/> returned with <see cref="BatchCheck.Valid"/>.</param>
    /// <param name="scratch">Where the records go; its length is the decompression limit, which also stops a
    /// small batch that inflates without bound ("zip bomb") from taking memory.</param>
    /// <param name="written">The length of the records section in <paramref name="scratch"/>.</param>
    /// <returns><see cref="OperationStatus.Done"/>, or <see cref="OperationStatus.DestinationTooSmall"/> when the
    /// records need more than <paramref name="scratch"/> (retry larger, or treat it as over the limit).</returns>
    /// <exception cref="ArgumentException">The batch is not compressed, or shorter than its header says.</exception>
    /// <exception cref="RecordBatchFormatException">The codec is not supported, or the payload is malformed.</exception>
    public static OperationStatus DecompressRecords(
        ReadOnlySpan<byte> batch, in RecordBatchHeader header, Span<byte> scratch, out int written)
    {
        if (header.Codec == CompressionCodec.None)
        {
            throw new ArgumentException("The batch is not compressed.", nameof(header));
        }

        if (!BatchCompression.IsSupported(header.Codec))
        {
            throw new RecordBatchFormatException($"Codec {(int)header.Codec} is not a Kafka codec.", 0, "codec");
        }

        return BatchCompression.Decompress(header.Codec, RecordsSection(batch, header), scratch, out written);
    }

    /// <summary>Enumerates records that <see cref="DecompressRecords"/> wrote.</summary>
    /// <param name="records">The decompressed records section (<c>scratch[..written]</c>).</param>
    /// <param name="header">The batch's header (base offset, base timestamp, record count).</param>
    /// <returns>An enumerator whose <c>MoveNext</c> throws <see cref="RecordBatchFormatException"/> on a malformed record.</returns>
    public static RecordEnumerator GetDecompressedRecords(ReadOnlySpan<byte> records, in RecordBatchHeader header) =>
        new(records, header);

    private static ReadOnlySpan<byte> RecordsSection(ReadOnlySpan<byte> batch, in RecordBatchHeader header)
    {
        if (header.BatchLength < RecordBatch.BatchLengthMin || batch.Length < header.TotalSize)
        {
            throw new ArgumentException(
                $"The batch holds {batch.Length} bytes; its header says {header.TotalSize}. Check it first.", nameof(batch));
        }

        return batch[RecordBatch.RecordsOffset..(int)header.TotalSize];
    }
}
