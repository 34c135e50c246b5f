namespace AppendLog;

/// <summary>The log directory is already open in another process or another log instance.</summary>
public sealed class LogLockedException : IOException
{
    /// <summary>Creates the exception for <paramref name="directory"/>.</summary>
    /// <param name="directory">The locked directory.</param>
    public LogLockedException(string directory)
        : base($"The log directory '{directory}' is already open (advisory lock held by another process or instance).")
    {
        Directory = directory;
    }

    /// <summary>The locked directory.</summary>
    public string Directory { get; }
}
