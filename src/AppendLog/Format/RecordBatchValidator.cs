using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Format;

/// <summary>
/// Validates a batch handed to <see cref="SegmentedLog.AppendRawBatchAsync"/> completely, as a Kafka broker validates
/// a produce request, so that no accepted batch can make a later read fail: a batch that passes decodes in full on
/// every read.
/// </summary>
/// <remarks>
/// <para>The checks, in order (the first failure is reported by the name in brackets, see
/// <see cref="InvalidRecordBatchException"/>):</para>
/// <list type="number">
/// <item>the header is present [header]; batchLength ≥ 49 [batchLength]; the batch fits the log's limit
/// [maximumBatchSize]; magic 2 [magic]; the buffer is exactly one batch, nothing before or after
/// [batchLength]; the CRC-32C matches [crc];</item>
/// <item>the codec is one of Kafka's four or none [codec]; 0 ≤ recordCount ≤ lastOffsetDelta + 1 [offsetRange];</item>
/// <item>a compressed payload decompresses, within <c>decompressedLimit</c> bytes [compressedPayload];</item>
/// <item>the records section holds exactly recordCount records [recordCount], each framed within its length
/// [recordLength and the field names], every varint well formed, header keys non-null [headerKey], offset deltas
/// strictly increasing within [0, lastOffsetDelta] [offsetDelta], and no byte after the last record [recordCount].</item>
/// </list>
/// <para>Offset deltas are not required to be exactly 0 … recordCount - 1: a batch that key compaction thinned (here or
/// in Kafka) keeps its range with gaps, and such batches are forwarded between logs. When recordCount is
/// lastOffsetDelta + 1 the rule above leaves exactly 0 … lastOffsetDelta.</para>
/// </remarks>
internal static class RecordBatchValidator
{
    /// <summary>Validates <paramref name="batch"/>, which must be exactly one batch.</summary>
    /// <param name="batch">The bytes offered.</param>
    /// <param name="maxBatchSize">The largest batch accepted, in bytes.</param>
    /// <param name="decompressedLimit">The most bytes a compressed records section may inflate to.</param>
    /// <param name="paramName">The caller's argument name, for the exception.</param>
    /// <returns>The batch's header.</returns>
    /// <exception cref="InvalidRecordBatchException">A check failed; <see cref="InvalidRecordBatchException.FailedCheck"/> names it.</exception>
    public static RecordBatchHeader Validate(ReadOnlySpan<byte> batch, int maxBatchSize, int decompressedLimit, string paramName)
    {
        var header = CheckFraming(batch, maxBatchSize, paramName);
        if (!BatchCompression.IsSupported(header.Codec))
        {
            Throw("codec", $"attribute bits 0-2 are {(int)header.Codec}, which names no Kafka codec", paramName);
        }

        if (!OffsetRange.IsValid(header))
        {
            Throw("offsetRange", $"recordCount {header.RecordCount} and lastOffsetDelta {header.LastOffsetDelta} do not satisfy 0 ≤ recordCount ≤ lastOffsetDelta + 1", paramName);
        }

        try
        {
            if (header.Codec == CompressionCodec.None)
            {
                WalkRecords(RecordBatchDecoder.GetRecords(batch, header));
            }
            else
            {
                WalkCompressed(batch, header, decompressedLimit, paramName);
            }
        }
        catch (RecordBatchFormatException ex)
        {
            Throw(ex.Check, ex.Message, paramName);
        }

        return header;
    }

    private static RecordBatchHeader CheckFraming(ReadOnlySpan<byte> batch, int maxBatchSize, string paramName)
    {
        var check = RecordBatchDecoder.Check(batch, Math.Max(maxBatchSize, RecordBatch.HeaderSize), out var header);
        switch (check)
        {
            case BatchCheck.Incomplete when batch.Length < RecordBatch.HeaderSize:
                Throw("header", $"{batch.Length} bytes are fewer than the {RecordBatch.HeaderSize}-byte header", paramName);
                break;
            case BatchCheck.BadLength when header.BatchLength < RecordBatch.BatchLengthMin:
                Throw("batchLength", $"batchLength {header.BatchLength} is below {RecordBatch.BatchLengthMin}", paramName);
                break;
            case BatchCheck.BadLength:
                Throw("maximumBatchSize", $"the batch takes {header.TotalSize} bytes, more than LogOptions.MaximumBatchSize ({maxBatchSize})", paramName);
                break;
            case BatchCheck.BadMagic:
                Throw("magic", $"magic is {header.Magic}, not {RecordBatch.CurrentMagic}", paramName);
                break;
            case BatchCheck.BadCrc when header.TotalSize == batch.Length:
                Throw("crc", "the CRC-32C does not match the bytes", paramName);
                break;
        }

        // Incomplete with a whole header, or any other outcome on a buffer that is not exactly the batch.
        if (header.TotalSize != batch.Length)
        {
            Throw("batchLength", $"the header says the batch takes {header.TotalSize} bytes, but {batch.Length} were given (exactly one batch is expected)", paramName);
        }

        if (check != BatchCheck.Valid)
        {
            Throw("crc", "the CRC-32C does not match the bytes", paramName);
        }

        return header;
    }

    private static void WalkCompressed(ReadOnlySpan<byte> batch, in RecordBatchHeader header, int decompressedLimit, string paramName)
    {
        // Start near the payload's likely inflation and grow by 4 up to the limit; the buffer is pooled.
        int size = Math.Min(decompressedLimit, Math.Max(4 * batch.Length, 64 * 1024));
        while (true)
        {
            byte[] scratch = ArrayPool<byte>.Shared.Rent(size);
            try
            {
                var status = RecordBatchDecoder.DecompressRecords(batch, header, scratch.AsSpan(0, size), out int written);
                if (status == OperationStatus.Done)
                {
                    WalkRecords(RecordBatchDecoder.GetDecompressedRecords(scratch.AsSpan(0, written), header));
                    return;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }

            if (size >= decompressedLimit)
            {
                Throw(BatchCompression.PayloadCheck, $"the records inflate beyond {decompressedLimit} bytes, or the payload is corrupt", paramName);
            }

            size = (int)Math.Min(decompressedLimit, 4L * size);
        }
    }

    private static void WalkRecords(RecordEnumerator records)
    {
        // The enumerator validates every record before returning it, and the section's end after the last.
        while (records.MoveNext())
        {
        }
    }

    [DoesNotReturn]
    private static void Throw(string check, string message, string paramName) =>
        throw new InvalidRecordBatchException(check, message, paramName);
}
