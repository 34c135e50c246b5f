using FASTER.core;

namespace AppendLog.LoadGen.Engines;

/// <summary>
/// PEERS.md's workaround for FasterLog's commit stall (the last record never flushed): every period, when
/// <c>CommittedUntilAddress</c> has not moved since the previous look while <c>TailAddress</c> is ahead, call
/// <c>ReadAsync(long.MaxValue)</c>, which enters and leaves FASTER's epoch and so drains its deferred work.
/// It also acts whenever one commit simply takes longer than the period, so <see cref="Kicks"/> is an upper
/// bound on stalls avoided, not a count of them.
/// </summary>
internal sealed class FasterCommitWatchdog
{
    /// <summary>PEERS.md: "every ~1 ms when the committed address stalls".</summary>
    private static readonly TimeSpan s_period = TimeSpan.FromMilliseconds(1);

    private readonly FasterLog _log;
    private readonly Thread _thread;
    private volatile bool _stopping;
    private long _kicks;
    private long _readsPending;

    public FasterCommitWatchdog(FasterLog log)
    {
        _log = log;
        _thread = new Thread(Loop) { IsBackground = true, Name = "fasterlog-watchdog" };
        _thread.Start();
    }

    public long Kicks => Interlocked.Read(ref _kicks);

    /// <summary>Reads that did not complete at once (0 in the runs checked).</summary>
    public long ReadsPending => Interlocked.Read(ref _readsPending);

    /// <returns>False when the thread did not stop within <paramref name="waitMax"/>.</returns>
    public bool Stop(TimeSpan waitMax)
    {
        _stopping = true;
        return _thread.Join(waitMax);
    }

    private void Loop()
    {
        long committedBefore = -1;
        while (!_stopping)
        {
            Thread.Sleep(s_period);
            long committed = _log.CommittedUntilAddress;
            if (committed == committedBefore && _log.TailAddress > committed)
            {
                Kick();
            }
            committedBefore = committed;
        }
    }

    private void Kick()
    {
        Interlocked.Increment(ref _kicks);
        try
        {
            ValueTask<(byte[], int)> read = _log.ReadAsync(long.MaxValue);
            if (!read.IsCompleted)
            {
                Interlocked.Increment(ref _readsPending);
                // Observe whatever it ends with; the epoch side effect is all that is wanted.
                _ = read.AsTask().ContinueWith(
                    t =>
                    {
                        Interlocked.Decrement(ref _readsPending);
                        _ = t.Exception;
                    },
                    CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            else if (read.IsFaulted)
            {
                _ = read.AsTask().Exception;
            }
        }
        catch (FasterException)
        {
            // Reading past the tail may be rejected; entering and leaving the epoch already happened.
        }
    }
}
