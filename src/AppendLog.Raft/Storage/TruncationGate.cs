namespace AppendLog.Raft.Storage;

/// <summary>
/// Keeps readers of the local log and a suffix truncation apart. The core's readers read up to the durable end as it
/// was when they started, which on a follower includes entries that are not committed yet, and a truncation may trim
/// or delete exactly those files. Readers therefore take a short lease around each bounded read
/// (<see cref="EnterReadAsync"/> / <see cref="ExitRead"/>), and a truncation waits for the leases held to end while new
/// ones wait for it (<see cref="BeginTruncateAsync"/> / <see cref="EndTruncate"/>). Leases cover a read of at most a
/// bounded number of records, never the time a consumer takes with them, so a truncation waits for little.
/// </summary>
internal sealed class TruncationGate
{
    private readonly object _lock = new();
    private int _readers;
    private TaskCompletionSource? _drained;
    private TaskCompletionSource? _truncating;

    public async ValueTask EnterReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task truncating;
            lock (_lock)
            {
                if (_truncating is null)
                {
                    _readers++;
                    return;
                }

                truncating = _truncating.Task;
            }

            await truncating.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public void ExitRead()
    {
        TaskCompletionSource? drained = null;
        lock (_lock)
        {
            Core.Invariant.Assert(_readers > 0, "a read lease is released once");
            _readers--;
            if (_readers == 0)
            {
                drained = _drained;
                _drained = null;
            }
        }

        drained?.TrySetResult();
    }

    public async ValueTask BeginTruncateAsync()
    {
        Task? drained = null;
        lock (_lock)
        {
            Core.Invariant.Assert(_truncating is null, "one truncation at a time");
            _truncating = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_readers > 0)
            {
                _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                drained = _drained.Task;
            }
        }

        if (drained is not null)
        {
            await drained.ConfigureAwait(false);
        }
    }

    public void EndTruncate()
    {
        TaskCompletionSource? truncating;
        lock (_lock)
        {
            truncating = _truncating;
            _truncating = null;
        }

        truncating?.TrySetResult();
    }
}
