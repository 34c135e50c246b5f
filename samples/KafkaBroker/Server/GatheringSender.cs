using System.Net.Sockets;
using System.Threading.Tasks.Sources;

namespace KafkaBroker.Server;

/// <summary>
/// One connection's gathering send (one writev of a response's parts: its header bytes and the lent batches) without
/// a task per send: one <see cref="SocketAsyncEventArgs"/> for the connection's life, awaited through a
/// <see cref="ValueTask"/> backed by its own <see cref="ManualResetValueTaskSourceCore{TResult}"/>.
/// <see cref="Socket.SendAsync(IList{ArraySegment{byte}}, SocketFlags)"/> returned a new <see cref="Task{TResult}"/>
/// for every fetch answer. Only the connection's response writer sends, one send at a time, and awaits each send once.
/// </summary>
internal sealed class GatheringSender : SocketAsyncEventArgs, IValueTaskSource
{
    private readonly Socket _socket;
    private ManualResetValueTaskSourceCore<bool> _core;

    public GatheringSender(Socket socket)
        : base(unsafeSuppressExecutionContextFlow: true)
    {
        _socket = socket;

        // Completions arrive on the thread pool (the socket engine dispatches them there): the writer's continuation
        // may run on that thread, as it does after the socket's own ValueTask sends.
        _core.RunContinuationsAsynchronously = false;
    }

    /// <summary>Sends every byte of <paramref name="parts"/>, in order; completes when the kernel has taken them all.</summary>
    /// <exception cref="SocketException">The send failed (the connection is gone).</exception>
    public ValueTask SendAsync(IList<ArraySegment<byte>> parts)
    {
        _core.Reset();
        BufferList = parts;
        if (!_socket.SendAsync(this))
        {
            Complete();
        }

        return new ValueTask(this, _core.Version);
    }

    protected override void OnCompleted(SocketAsyncEventArgs e) => Complete();

    private void Complete()
    {
        var error = SocketError;
        BufferList = null; // the send is over: no reference to lent arrays stays here
        if (error == SocketError.Success)
        {
            _core.SetResult(true);
        }
        else
        {
            _core.SetException(new SocketException((int)error));
        }
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(
        Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
