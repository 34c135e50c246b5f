using AppendLog.Io;
using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>
/// The active segment's write handle under a <see cref="LogManager"/>'s descriptor cap
/// (<see cref="DescriptorBudget"/>): counted while open, closed for the budget when the log is idle, reopened by the
/// next append. A standalone log has no budget and only housekeeping's <see cref="ReleaseIdleFile"/> applies.
/// </summary>
internal sealed partial class LogWriter
{
    /// <summary>True while this writer's active handle is counted in the budget (guarded by <see cref="_lock"/>).</summary>
    private bool _activeFileCounted;

    /// <summary>Set by each append, cleared by the budget's CLOCK hand (second chance): no lock, a hint only.</summary>
    private volatile bool _recentlyUsed;

    /// <summary>
    /// Counts an active handle that is open now (a log just opened, or one whose truncation or reset opened a new active
    /// file while uncounted). Under no lock of the writer's: it takes it.
    /// </summary>
    public void JoinDescriptorBudget()
    {
        lock (_lock)
        {
            CountActiveFileUnsynchronized();
        }
    }

    /// <summary>At close: the handle is closed (or about to be), so it no longer counts.</summary>
    public void LeaveDescriptorBudget()
    {
        lock (_lock)
        {
            UncountActiveFileUnsynchronized();
        }
    }

    /// <summary>True when an append used the log since the last call (and clears it): the CLOCK hand's second chance.</summary>
    public bool TakeRecentUse()
    {
        if (!_recentlyUsed)
        {
            return false;
        }

        _recentlyUsed = false;
        return true;
    }

    /// <summary>
    /// Closes the active segment's handle for the budget when the log is idle right now: nothing in flight or being
    /// prepared, everything accepted durable, no truncation, reset or compaction swap going on. Unlike
    /// <see cref="ReleaseIdleFile"/> it needs no idle time and keeps the reserve ahead of the data and the chunk holding
    /// the tail (the next append reopens the file and writes into them as before); a prepared next segment is deleted
    /// (recreated when needed). Never waits for the writer's lock: a busy log is not idle.
    /// </summary>
    public bool TryReleaseFileForBudget()
    {
        if (!_lock.TryEnter())
        {
            return false;
        }

        try
        {
            if (_fault is not null || _closing || _frozen is not null || _allocation is not null || _preparing
                || _ioInFlight > 0 || DurableGlobal != HeadGlobal || !_active.DirectoryEntryDurable || _active.File is null)
            {
                return false;
            }

            DiscardPreparedUnsynchronized();
            _active.File.Dispose();
            _active.File = null;
            UncountActiveFileUnsynchronized();
            return true;
        }
        finally
        {
            _lock.Exit();
        }
    }

    /// <summary>
    /// Opens the active segment again after <see cref="ReleaseIdleFile"/> or <see cref="TryReleaseFileForBudget"/> (the
    /// first append after idleness), making room in the budget first; marks the log as recently used.
    /// </summary>
    /// <exception cref="IOException">The file could not be opened (for example the process's descriptor limit); nothing changed.</exception>
    private void EnsureActiveFileUnsynchronized()
    {
        _recentlyUsed = true;
        if (_active.File is null)
        {
            _options.Descriptors?.MakeRoom(this);
            _active.File = _storage.Open(_active.Path, FileCreation.OpenExisting, _options.DirectIo);
        }

        CountActiveFileUnsynchronized();
    }

    private void CountActiveFileUnsynchronized()
    {
        if (!_activeFileCounted && !_closing && _active.File is not null && _options.Descriptors is { } budget)
        {
            budget.Add(this);
            _activeFileCounted = true;
        }
    }

    private void UncountActiveFileUnsynchronized()
    {
        if (_activeFileCounted)
        {
            _options.Descriptors!.Remove(this);
            _activeFileCounted = false;
        }
    }
}
