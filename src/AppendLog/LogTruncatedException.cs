namespace AppendLog;

/// <summary>
/// A reader had already returned records that a suffix truncation (<see cref="SegmentedLog.TruncateSuffixAsync"/>)
/// then removed: the records it returned from <see cref="TruncatedFromOffset"/> on are no longer in the log (other
/// records may now hold those offsets). The reader ends; start a new one from an offset at or below the cut.
/// </summary>
public sealed class LogTruncatedException : InvalidOperationException
{
    /// <summary>Creates the exception for a reader at <paramref name="readerOffset"/> and a cut at <paramref name="truncatedFromOffset"/>.</summary>
    /// <param name="readerOffset">The next offset the reader would have returned.</param>
    /// <param name="truncatedFromOffset">The first offset the truncation removed.</param>
    public LogTruncatedException(long readerOffset, long truncatedFromOffset)
        : base($"The log was truncated from offset {truncatedFromOffset} while a reader had returned records up to offset {readerOffset - 1}; read again from offset {truncatedFromOffset} or below.")
    {
        ReaderOffset = readerOffset;
        TruncatedFromOffset = truncatedFromOffset;
    }

    /// <summary>The next offset the reader would have returned.</summary>
    public long ReaderOffset { get; }

    /// <summary>The first offset the truncation removed.</summary>
    public long TruncatedFromOffset { get; }
}
