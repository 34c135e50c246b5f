namespace AppendLog.Format;

/// <summary>The outcome of <see cref="RecordBatchDecoder.Check"/> on the bytes at a batch boundary.</summary>
internal enum BatchCheck
{
    /// <summary>A whole batch: length in bounds, magic 2, CRC32C matches.</summary>
    Valid = 0,

    /// <summary>
    /// Fewer bytes than the header (61) or than the batch's <see cref="RecordBatchHeader.TotalSize"/>:
    /// read more, or, at the end of the written data, this is a torn tail.
    /// </summary>
    Incomplete = 1,

    /// <summary>batchLength is below 49 (smaller than a header) or the batch is larger than the caller's limit.</summary>
    BadLength = 2,

    /// <summary>The magic byte is not 2.</summary>
    BadMagic = 3,

    /// <summary>The CRC32C over attributes to the end of the batch does not match the stored one.</summary>
    BadCrc = 4,
}
