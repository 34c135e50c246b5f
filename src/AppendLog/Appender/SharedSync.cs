using AppendLog.Diagnostics;
using AppendLog.Io;

namespace AppendLog.Appender;

/// <summary>A log's sync handed to a <see cref="SharedSync"/>.</summary>
internal interface ISharedSyncWork : IIoWork
{
    /// <summary>
    /// A file-system sync that started after this work was submitted has finished (<paramref name="error"/> null) or
    /// failed: it covered every file of the work, so the work completes with that outcome and runs no fdatasync.
    /// Must not throw (as <see cref="IIoWork.Execute"/>).
    /// </summary>
    void CompleteCovered(Exception? error);
}

/// <summary>
/// Shares syncs among the logs of one <see cref="LogManager"/> on one file system
/// (<see cref="LogManagerOptions.ShareFileSystemSync"/>). Logs hand their syncs here instead of to the I/O workers;
/// a round takes every sync waiting, and when at least <see cref="FileSystemSyncThreshold"/> are waiting, one syncfs(2)
/// replaces all their fdatasyncs (it makes every write completed before it started durable, file data and directory
/// entries alike; each sync was submitted only after its writes completed). Fewer waiting syncs run their own
/// fdatasyncs: for one busy log, fdatasync of its file costs about half a syncfs (docs/internals.md, "Measured facts").
/// <para>
/// Why: a thousand logs each appending a hundred records a second ask for a hundred thousand fdatasyncs a second,
/// far beyond what the disk and two cores give; one syncfs per round costs about as much as two fdatasyncs and
/// serves every log with data waiting. Threads: <see cref="ThreadCount"/> dedicated ones, so that one round's syncfs
/// overlaps the next round's gathering, as two syncs of one log overlap.
/// </para>
/// </summary>
internal sealed class SharedSync : IDisposable
{
    /// <summary>Syncs waiting at once from which one syncfs replaces their fdatasyncs.</summary>
    public const int FileSystemSyncThreshold = 3;

    /// <summary>Round threads: two rounds may be in flight at once.</summary>
    public const int ThreadCount = 2;

    private readonly IFileSystemSync _fileSystem;
    private readonly object _lock = new(); // Monitor.Wait/Pulse need a plain object
    private readonly List<ISharedSyncWork> _pending = new();
    private readonly Thread[] _threads;
    private int _idle;
    private bool _closing;
    private long _rounds;
    private long _fileSystemSyncs;
    private long _syncs;

    /// <summary>Starts the round threads over <paramref name="fileSystem"/>, which this instance owns from now on.</summary>
    public SharedSync(IFileSystemSync fileSystem, string name)
    {
        _fileSystem = fileSystem;
        _threads = new Thread[ThreadCount];
        for (int i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(Run) { IsBackground = true, Name = $"{name}-{i}" };
            _threads[i].Start();
        }
    }

    /// <summary>Rounds run: wake-ups of the round threads (each serves every sync waiting).</summary>
    public long Rounds => Interlocked.Read(ref _rounds);

    /// <summary>syncfs calls made.</summary>
    public long FileSystemSyncs => Interlocked.Read(ref _fileSystemSyncs);

    /// <summary>Syncs of logs completed (covered by a syncfs or run as their own fdatasyncs).</summary>
    public long Syncs => Interlocked.Read(ref _syncs);

    /// <summary>True when <paramref name="directory"/> (existing) is on the file system this instance syncs.</summary>
    public bool Covers(string directory) => _fileSystem.Covers(directory);

    /// <summary>Queues a log's sync for the next round.</summary>
    /// <exception cref="ObjectDisposedException">After <see cref="Dispose"/> (every log using it must be closed first).</exception>
    public void Submit(ISharedSyncWork work)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_closing, this);
            _pending.Add(work);
            if (_idle > 0)
            {
                Monitor.Pulse(_lock);
            }
        }
    }

    /// <summary>Stops the round threads once the syncs already submitted are done, then closes the handle.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_closing)
            {
                return;
            }

            _closing = true;
            Monitor.PulseAll(_lock);
        }

        foreach (var thread in _threads)
        {
            if (thread != Thread.CurrentThread)
            {
                thread.Join();
            }
        }

        _fileSystem.Dispose();
    }

    private void Run()
    {
        var round = new List<ISharedSyncWork>();
        while (true)
        {
            lock (_lock)
            {
                while (_pending.Count == 0)
                {
                    if (_closing)
                    {
                        return;
                    }

                    _idle++;
                    Monitor.Wait(_lock);
                    _idle--;
                }

                round.AddRange(_pending);
                _pending.Clear();
            }

            RunRound(round);
            round.Clear();
        }
    }

    private void RunRound(List<ISharedSyncWork> round)
    {
        Interlocked.Increment(ref _rounds);
        Interlocked.Add(ref _syncs, round.Count);
        if (round.Count < FileSystemSyncThreshold)
        {
            foreach (var work in round)
            {
                RunContained(work, covered: false, error: null);
            }

            return;
        }

        Exception? error = null;
        long started = AppendLogMetrics.Timestamp();
        try
        {
            _fileSystem.Sync();
            AppendLogMetrics.FsyncCompleted(started, 1);
        }
        catch (Exception e)
        {
            // Every write the round's syncs cover is in doubt: each of their logs faults (fail-stop, as after a
            // failed fdatasync).
            error = e;
        }

        Interlocked.Increment(ref _fileSystemSyncs);
        foreach (var work in round)
        {
            RunContained(work, covered: true, error);
        }
    }

    private static void RunContained(ISharedSyncWork work, bool covered, Exception? error)
    {
        try
        {
            if (covered)
            {
                work.CompleteCovered(error);
            }
            else
            {
                work.Execute();
            }
        }
        catch (Exception)
        {
            // Neither throws (the owner's handler faults its log); a bug must not end the round thread, which serves
            // every log of the manager (as IoWorkers).
        }
    }
}
