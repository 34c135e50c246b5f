namespace KafkaBroker.Server;

/// <summary>
/// The bound on what one connection holds at once: requests read but not yet answered, by count and by frame bytes.
/// The connection's reader enters before it reads a request's body and waits while the bound is reached (the client's
/// further sends then wait in TCP's flow control: nothing more is read, nothing more is held); the response writer
/// exits once the answer is sent. A single request always fits: the options require
/// <see cref="BrokerOptions.MaximumRequestSize"/> ≤ <see cref="BrokerOptions.MaximumInflightBytesPerConnection"/>.
/// </summary>
internal sealed class InflightRequests(int requestsMax, long bytesMax)
{
    private readonly Lock _lock = new();
    private int _requests;
    private long _bytes;
    private TaskCompletionSource? _exited;

    /// <summary>Waits until one more request of <paramref name="size"/> bytes fits, then counts it.</summary>
    public async ValueTask EnterAsync(int size, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, bytesMax);
        while (true)
        {
            Task exited;
            lock (_lock)
            {
                if (_requests < requestsMax && _bytes + size <= bytesMax)
                {
                    _requests++;
                    _bytes += size;
                    return;
                }

                _exited ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                exited = _exited.Task;
            }

            await exited.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Uncounts a request entered with <paramref name="size"/> bytes and wakes a waiting reader.</summary>
    public void Exit(int size)
    {
        TaskCompletionSource? exited;
        lock (_lock)
        {
            _requests--;
            _bytes -= size;
            if (_requests < 0 || _bytes < 0)
            {
                throw new InvalidOperationException($"in-flight requests {_requests}, bytes {_bytes}: below zero");
            }

            exited = _exited;
            _exited = null;
        }

        exited?.TrySetResult(); // outside the lock: never complete a waiter while holding it
    }
}
