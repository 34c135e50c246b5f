namespace AppendLog;

/// <summary>Reset: restart the log empty at a given offset.</summary>
public sealed partial class SegmentedLog
{
    /// <summary>
    /// Discards every record and restarts the log empty at <paramref name="nextOffset"/>: afterwards
    /// <see cref="StartOffset"/>, <see cref="EndOffset"/> and <see cref="DurableEndOffset"/> all equal it and the next
    /// append gets it. For a replica that replaces its log with a snapshot taken elsewhere, so that the records after
    /// the snapshot keep the offsets they have on the other replicas. Everything accepted before the call is made durable
    /// first (appends made meanwhile wait, then land after the reset); the reset is durable when the call returns.
    /// </summary>
    /// <remarks>
    /// A crash during the reset leaves, after recovery, either what remains of the old log (whole segments removed at its
    /// start or end, never a gap or a torn batch) or the empty log at <paramref name="nextOffset"/>. A caller that needs
    /// all-or-nothing records its intent durably first (for Raft: the snapshot, with the offset) and, after a restart
    /// that finds <see cref="StartOffset"/> different from <paramref name="nextOffset"/>, calls this again. Readers in
    /// progress may fail: keep them out for the duration.
    /// </remarks>
    /// <param name="nextOffset">The offset the next record gets; any offset, above or below the current end.</param>
    /// <param name="cancellationToken">Cancels the wait for earlier appends to become durable.</param>
    /// <returns>A task that completes when the reset is durable.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nextOffset"/> is negative.</exception>
    /// <exception cref="InvalidOperationException">A truncation or another reset is in progress.</exception>
    /// <exception cref="LogFaultedException">A write or sync failed (the log must be reopened).</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public async ValueTask ResetAsync(long nextOffset, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(nextOffset);
        await _writer.ResetAsync(nextOffset, cancellationToken).ConfigureAwait(false);
    }
}
