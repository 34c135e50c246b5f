using AppendLog.Io;

namespace AppendLog.Appender;

/// <summary>
/// Keeps the roll off the append path: when the active segment is three quarters full, an I/O worker creates the next
/// segment's file under a temporary name and reserves and zero-fills its first step. The roll then only renames it
/// (its base offset, hence its name, is known only then); the rename becomes durable with the directory fsync that
/// the first sync covering the new segment performs anyway. Recovery deletes a leftover temporary file.
/// </summary>
internal sealed partial class LogWriter
{
    /// <summary>The temporary name of the prepared next segment (a dot file: recovery's listing skips it).</summary>
    public const string NextSegmentFileName = ".next-segment.log";

    private PreparedSegment? _prepared;
    private bool _preparing;

    private sealed record PreparedSegment(IDirectFile File, long AllocatedEnd);

    private string NextSegmentPath => Path.Combine(_directory, NextSegmentFileName);

    private void MaybePrepareNextSegmentUnsynchronized()
    {
        if (_prepared is null && !_preparing && !_closing && _fault is null && _active.Size >= _options.SegmentSize / 4 * 3)
        {
            _preparing = true;
            PostUnsynchronized(new PrepareWork(this, Math.Min(_options.PreallocationMinimumStep * 4, _options.SegmentSize)));
        }
    }

    /// <summary>Takes the prepared file for a roll (renamed to its final name), or null when none is ready.</summary>
    private PreparedSegment? TakePreparedUnsynchronized(string finalPath)
    {
        var prepared = _prepared;
        if (prepared is null)
        {
            return null;
        }

        _prepared = null;
        try
        {
            _storage.RenameFile(NextSegmentPath, finalPath);
            return prepared;
        }
        catch (IOException)
        {
            prepared.File.Dispose();
            return null;
        }
    }

    private void OnPrepared(PrepareWork work)
    {
        lock (_lock)
        {
            _ioInFlight--;
            _preparing = false;
            if (work.Error is null && !_closing && _fault is null)
            {
                _prepared = new PreparedSegment(work.File!, work.Length);
            }
            else
            {
                work.File?.Dispose();
            }

            TrySignalIdleUnsynchronized();
        }
    }

    /// <summary>At close: the prepared file is not part of the log; remove it.</summary>
    private void DiscardPreparedUnsynchronized()
    {
        if (_prepared is { } prepared)
        {
            _prepared = null;
            prepared.File.Dispose();
            try
            {
                _storage.DeleteFile(NextSegmentPath);
            }
            catch (IOException)
            {
                // Best effort (a faulted or failing disk): recovery deletes a leftover prepared file at the next open,
                // and closing must not fail because of a file that is not part of the log.
            }
        }
    }

    private sealed class PrepareWork(LogWriter owner, long length) : IIoWork
    {
        public IDirectFile? File { get; private set; }

        public long Length => length;

        public Exception? Error { get; private set; }

        public void Execute()
        {
            try
            {
                owner._storage.DeleteFile(owner.NextSegmentPath);
                File = owner._storage.Open(owner.NextSegmentPath, FileCreation.CreateNew, owner._options.DirectIo);
                owner.Reserve(File, 0, length);
            }
            catch (Exception e)
            {
                // A failed preparation only means the roll creates the file itself (and sees any error there).
                Error = e;
            }

            owner.OnPrepared(this);
        }
    }
}
