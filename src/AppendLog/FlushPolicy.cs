namespace AppendLog;

/// <summary>
/// When the log issues <c>fdatasync</c>. Whatever the policy, an append is acknowledged only after a sync covers
/// it; the policy only decides how appends are grouped into syncs.
/// </summary>
public sealed class FlushPolicy
{
    private FlushPolicy(TimeSpan delay, long pendingBytesMax, bool isManual, string name)
    {
        Delay = delay;
        PendingBytesMax = pendingBytesMax;
        IsManual = isManual;
        _name = name;
    }

    private readonly string _name;

    /// <summary>
    /// Group commit (the default): a sync starts as soon as there is unsynced data and no sync of the log is in
    /// flight; every append that arrives while a sync is in flight joins the next one. Adds no delay when the log
    /// is idle and batches naturally under load. Chosen by measurement; see README, "Choosing the defaults".
    /// </summary>
    public static FlushPolicy GroupCommit { get; } = new(TimeSpan.Zero, long.MaxValue, isManual: false, "GroupCommit");

    /// <summary>
    /// Syncs only when <see cref="SegmentedLog.FlushAsync"/> is called (or the log is disposed). Appends awaited
    /// with <see cref="SegmentedLog.AppendAsync(ReadOnlyMemory{byte}, CancellationToken)"/> wait for that flush; for
    /// callers that pipeline with <see cref="SegmentedLog.TryAppend(ReadOnlyMemory{byte}, out long)"/>.
    /// </summary>
    public static FlushPolicy Manual { get; } = new(Timeout.InfiniteTimeSpan, long.MaxValue, isManual: true, "Manual");

    /// <summary>The default policy, <see cref="GroupCommit"/>.</summary>
    public static FlushPolicy Default => GroupCommit;

    /// <summary>
    /// Debounced: after the first unsynced append, wait up to <paramref name="maxDelay"/> for more appends to join,
    /// or until <paramref name="maxPendingBytes"/> bytes are pending, then sync. Trades latency for fewer syncs
    /// when appends trickle in.
    /// </summary>
    /// <param name="maxDelay">The longest an append waits before its sync starts: from zero to one second.</param>
    /// <param name="maxPendingBytes">Pending bytes that start a sync at once: at least 4096.</param>
    /// <returns>The policy.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public static FlushPolicy Debounced(TimeSpan maxDelay, long maxPendingBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDelay, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxDelay, TimeSpan.FromSeconds(1));
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPendingBytes, 4096);
        return new FlushPolicy(maxDelay, maxPendingBytes, isManual: false, $"Debounced({maxDelay.TotalMilliseconds} ms, {maxPendingBytes} B)");
    }

    /// <summary>The debounce delay; zero for group commit.</summary>
    internal TimeSpan Delay { get; }

    /// <summary>Pending bytes that start a sync without waiting for the delay.</summary>
    internal long PendingBytesMax { get; }

    /// <summary>True when only explicit flushes sync.</summary>
    internal bool IsManual { get; }

    /// <inheritdoc/>
    public override string ToString() => _name;
}
