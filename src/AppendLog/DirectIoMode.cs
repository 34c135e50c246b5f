namespace AppendLog;

/// <summary>Whether segment files bypass the kernel page cache (O_DIRECT).</summary>
public enum DirectIoMode
{
    /// <summary>
    /// Use O_DIRECT where the file system supports it; otherwise fall back to buffered I/O followed by
    /// fdatasync, and report the fallback through <c>SegmentedLog.IsDirectIo</c>, a log line and a metric.
    /// The durability contract holds in both modes.
    /// </summary>
    Preferred = 0,

    /// <summary>Use O_DIRECT; opening fails with <see cref="IOException"/> where it is refused.</summary>
    Required = 1,

    /// <summary>Always use buffered I/O followed by fdatasync (the durability contract still holds).</summary>
    Disabled = 2,
}
