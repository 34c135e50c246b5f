namespace AppendLog;

/// <summary>
/// <see cref="SegmentedLog.AppendRawBatchAsync"/> refused the bytes: they are not exactly one well-formed Kafka
/// RecordBatch v2 that this log can store and read back. Nothing was appended; the log is unchanged.
/// </summary>
/// <remarks>
/// <para>
/// The batch is validated completely before it is accepted, as a Kafka broker does, so that no accepted batch can
/// make a later read fail. <see cref="FailedCheck"/> names the first check that failed, one of:
/// </para>
/// <list type="table">
/// <listheader><term>FailedCheck</term><description>Meaning</description></listheader>
/// <item><term><c>header</c></term><description>Fewer bytes than the 61-byte batch header.</description></item>
/// <item><term><c>batchLength</c></term><description>batchLength is below 49, or the bytes are not exactly one batch (truncated, a trailing byte, two batches).</description></item>
/// <item><term><c>maximumBatchSize</c></term><description>The batch exceeds <see cref="LogOptions.MaximumBatchSize"/>.</description></item>
/// <item><term><c>magic</c></term><description>The magic byte is not 2.</description></item>
/// <item><term><c>crc</c></term><description>The CRC-32C does not match.</description></item>
/// <item><term><c>codec</c></term><description>Attribute bits 0-2 name no Kafka codec (5, 6 or 7).</description></item>
/// <item><term><c>offsetRange</c></term><description>lastOffsetDelta or recordCount is negative, or recordCount exceeds lastOffsetDelta + 1.</description></item>
/// <item><term><c>compressedPayload</c></term><description>The compressed records do not decompress (bad frame, corrupt block, checksum mismatch) or inflate beyond the limit.</description></item>
/// <item><term><c>recordCount</c></term><description>Fewer or more records than recordCount.</description></item>
/// <item><term><c>recordLength</c></term><description>A record's length varint is malformed, runs past the batch, or disagrees with its fields.</description></item>
/// <item><term><c>attributes</c>, <c>timestampDelta</c>, <c>key</c>, <c>value</c>, <c>headerCount</c>, <c>headerKey</c>, <c>headerValue</c></term><description>That field of a record is a malformed varint or its length runs past the record; <c>headerKey</c> also for a null header key.</description></item>
/// <item><term><c>offsetDelta</c></term><description>Offset deltas do not strictly increase within [0, lastOffsetDelta].</description></item>
/// </list>
/// </remarks>
public sealed class InvalidRecordBatchException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="failedCheck">The name of the check that failed (see the remarks).</param>
    /// <param name="message">What was wrong, with byte positions where known.</param>
    /// <param name="paramName">The argument that held the batch.</param>
    public InvalidRecordBatchException(string failedCheck, string message, string? paramName)
        : base($"The bytes are not a valid record batch ({failedCheck}): {message}", paramName)
    {
        FailedCheck = failedCheck;
    }

    /// <summary>The name of the first check that failed, from the table in the remarks.</summary>
    public string FailedCheck { get; }
}
