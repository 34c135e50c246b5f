namespace AppendLog.Appender;

/// <summary>
/// Per-log switches of the write pipeline that exist to compare alternatives side by side (the load generator's
/// <c>appendlog-*</c> engines) and to test both sides of a choice. Internal: the defaults are the measured choices
/// (README, "Choosing the defaults"); one log's tuning never changes another's.
/// </summary>
internal sealed record PipelineTuning
{
    /// <summary>The measured defaults.</summary>
    public static PipelineTuning Default { get; } = new();

    /// <summary>
    /// Syncs of one log in flight at once. A second fdatasync may start while the first is still running (it covers
    /// every write completed before it started), so appends that arrive during a sync need not wait for it to end
    /// before their own sync starts. Two overlapping write+sync loops reach about twice the syncs/s of one on this
    /// project's disk (docs/internals.md, "Measured facts").
    /// </summary>
    public int SyncsInFlightMax { get; init; } = 2;

    /// <summary>
    /// True: continuations of a completed append run inline on the thread-pool work item that completes a group of
    /// waiters (never an I/O thread, never under a lock). False: each continuation is queued to the thread pool on
    /// its own.
    /// </summary>
    public bool InlineContinuations { get; init; } = true;

    /// <summary>
    /// Zero-fill reserved space with O_DIRECT writes after fallocate (direct files only): fdatasync after a write into
    /// fallocated-but-unwritten blocks commits an extent conversion, into written blocks it does not.
    /// </summary>
    public bool ZeroFillPreallocation { get; init; } = true;
}
