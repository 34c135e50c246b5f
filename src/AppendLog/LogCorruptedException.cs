namespace AppendLog;

/// <summary>
/// Data before the log's tail failed its checksum or structure check. The damaged bytes are never served
/// as data and never silently truncated away; the exception names the file and the byte position.
/// </summary>
public sealed class LogCorruptedException : IOException
{
    /// <summary>Creates the exception for damage found in <paramref name="filePath"/> at <paramref name="position"/>.</summary>
    /// <param name="filePath">The segment file holding the damaged bytes.</param>
    /// <param name="position">The byte position of the damaged batch inside the file.</param>
    /// <param name="reason">What check failed.</param>
    public LogCorruptedException(string filePath, long position, string reason)
        : base($"Log data is corrupted in '{filePath}' at byte position {position}: {reason}")
    {
        FilePath = filePath;
        Position = position;
    }

    /// <summary>The segment file holding the damaged bytes.</summary>
    public string FilePath { get; }

    /// <summary>The byte position of the damaged batch inside <see cref="FilePath"/>.</summary>
    public long Position { get; }
}
