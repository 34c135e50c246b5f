namespace AppendLog;

/// <summary>Immutable options of a <see cref="LogManager"/>, validated when it opens.</summary>
public sealed record LogManagerOptions
{
    /// <summary>The root directory; each log lives in a subdirectory named after it. Required.</summary>
    public string RootDirectory { get; init; } = "";

    /// <summary>
    /// The options every log is opened with (its <see cref="LogOptions.Directory"/> is replaced by the log's own, and
    /// its <see cref="LogOptions.BufferPool"/> by <see cref="BufferPool"/>). Null for the defaults.
    /// </summary>
    public LogOptions? LogDefaults { get; init; }

    /// <summary>The buffer pool all logs share; <see cref="LogBufferPool.Shared"/> when null.</summary>
    public LogBufferPool? BufferPool { get; init; }

    /// <summary>How often housekeeping runs (idle buffer release, retention): 10 ms to 1 hour.</summary>
    public TimeSpan HousekeepingInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A log with no append for this long returns its buffers to the pool, keeping at most 4 KiB.</summary>
    public TimeSpan IdleBufferRelease { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Checks every option; <c>OpenAsync</c>/<c>Create</c> call this, and hosts can call it at startup.</summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it and its rule.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(RootDirectory))
        {
            throw new ArgumentException("LogManagerOptions.RootDirectory is required.", nameof(RootDirectory));
        }

        if (HousekeepingInterval < TimeSpan.FromMilliseconds(10) || HousekeepingInterval > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(nameof(HousekeepingInterval), HousekeepingInterval, "LogManagerOptions.HousekeepingInterval must be from 10 ms to 1 hour.");
        }

        if (IdleBufferRelease < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(IdleBufferRelease), IdleBufferRelease, "LogManagerOptions.IdleBufferRelease must not be negative.");
        }
    }
}
