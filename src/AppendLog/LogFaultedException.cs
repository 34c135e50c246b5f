namespace AppendLog;

/// <summary>
/// A write or fdatasync failed (for example EIO). After such a failure the state of unsynced pages is
/// unknown, so the log stops: every pending and later call fails with this exception, carrying the
/// original error as <see cref="Exception.InnerException"/>, until the log is disposed and reopened
/// (reopening runs recovery). Acknowledged data is not affected.
/// </summary>
public sealed class LogFaultedException : IOException
{
    /// <summary>Creates the exception for a log faulted by <paramref name="innerException"/>.</summary>
    /// <param name="directory">The log's directory.</param>
    /// <param name="innerException">The original failure.</param>
    public LogFaultedException(string directory, Exception innerException)
        : base($"The log in '{directory}' is faulted after an I/O failure and must be reopened: {innerException.Message}", innerException)
    {
        Directory = directory;
    }

    /// <summary>The faulted log's directory.</summary>
    public string Directory { get; }
}
