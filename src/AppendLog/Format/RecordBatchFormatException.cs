namespace AppendLog.Format;

/// <summary>
/// A batch that passed <see cref="RecordBatchDecoder.Check"/> (or was handed over without it) holds a record
/// whose varints or lengths do not fit inside the batch, or an LZ4 frame that does not decode. The decoder
/// never reads out of bounds; it throws this instead. The log maps it to <see cref="LogCorruptedException"/>
/// with the file and position, which the decoder does not know.
/// </summary>
internal sealed class RecordBatchFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was malformed, with the record index and byte position.</param>
    /// <param name="position">The byte position inside the records section where decoding stopped.</param>
    /// <param name="check">The failed check, as <see cref="InvalidRecordBatchException.FailedCheck"/> names it.</param>
    public RecordBatchFormatException(string message, int position, string check)
        : base(message)
    {
        Position = position;
        Check = check;
    }

    /// <summary>The failed check, one of the names listed on <see cref="InvalidRecordBatchException"/>.</summary>
    public string Check { get; }

    /// <summary>The byte position inside the records section (or LZ4 frame) where decoding stopped.</summary>
    public int Position { get; }
}
