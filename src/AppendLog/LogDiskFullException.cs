namespace AppendLog;

/// <summary>
/// The disk has no room for the space the log reserves ahead of its write head (ENOSPC from fallocate).
/// Nothing acknowledged is lost and the log stays readable; the append that saw this was not accepted,
/// and appends succeed again once space is freed.
/// </summary>
public sealed class LogDiskFullException : IOException
{
    /// <summary>Creates the exception for <paramref name="filePath"/>.</summary>
    /// <param name="filePath">The file whose reservation failed.</param>
    /// <param name="innerException">The original error.</param>
    public LogDiskFullException(string filePath, Exception? innerException)
        : base($"No space left on the device for '{filePath}'; the append was not accepted. Acknowledged data is intact.", innerException)
    {
        FilePath = filePath;
    }

    /// <summary>The file whose space reservation failed.</summary>
    public string FilePath { get; }
}
