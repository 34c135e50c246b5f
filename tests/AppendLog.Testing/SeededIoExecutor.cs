using AppendLog.Appender;

namespace AppendLog.Testing;

/// <summary>
/// Runs a log's blocking I/O (writes, syncs, reservations, seals, checkpoints) one work at a time on the caller's
/// thread, picking which queued work runs next from a seeded <see cref="Random"/>. With the simulator as storage, no
/// other thread in the log and a fake clock, a seed replays the exact interleaving: the same works complete in the same
/// order (out of order with respect to posting whenever the draw says so, as on real I/O threads).
/// </summary>
internal sealed class SeededIoExecutor : IIoExecutor
{
    private readonly Lock _lock = new();
    private readonly List<IIoWork> _queued = [];

    /// <summary>Works posted and not yet run.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _queued.Count;
            }
        }
    }

    /// <summary>Works run so far.</summary>
    public long Executed { get; private set; }

    /// <inheritdoc/>
    public void Post(IIoWork work)
    {
        lock (_lock)
        {
            _queued.Add(work);
        }
    }

    /// <summary>Runs one queued work drawn by <paramref name="random"/>; false when none is queued.</summary>
    public bool RunOne(Random random)
    {
        IIoWork work;
        lock (_lock)
        {
            if (_queued.Count == 0)
            {
                return false;
            }

            int index = random.Next(_queued.Count);
            work = _queued[index];
            _queued.RemoveAt(index);
        }

        Executed++;
        work.Execute();
        return true;
    }

    /// <summary>Drops every queued work unrun (a power cut: the process is gone).</summary>
    public void Abandon()
    {
        lock (_lock)
        {
            _queued.Clear();
        }
    }
}
