using System.Net;
using System.Net.Sockets;
using KafkaBroker.Groups;
using KafkaBroker.Server;
using KafkaBroker.Storage;

namespace KafkaBroker;

/// <summary>
/// A single-node Kafka broker over AppendLog: it accepts TCP connections and serves each one on its own task until
/// the client closes it or the broker stops. Start it with <see cref="StartAsync"/>, stop it with
/// <see cref="DisposeAsync"/> (which closes every connection and then every log, flushing them).
/// </summary>
public sealed class KafkaServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly BrokerContext _context;
    private readonly CancellationTokenSource _stop;
    private readonly Task _acceptLoop;
    private readonly HashSet<Task> _connections = [];
    private readonly Lock _connectionsLock = new();
    private int _disposed;

    private KafkaServer(TcpListener listener, BrokerContext context, CancellationTokenSource stop)
    {
        _listener = listener;
        _context = context;
        _stop = stop;
        _acceptLoop = AcceptAsync();
    }

    /// <summary>The topics (tests).</summary>
    internal TopicStore Topics => _context.Topics;

    /// <summary>The port the broker listens on.</summary>
    public int Port => _context.Port;

    /// <summary>Opens the data directory (recovering every log) and starts listening.</summary>
    /// <param name="options">The options.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>The running broker.</returns>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="SocketException">The address cannot be bound.</exception>
    public static async Task<KafkaServer> StartAsync(
        BrokerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var topics = options.IsReplicated
            ? await TopicStore.OpenReplicatedAsync(
                    Path.Combine(options.DataDirectory, "replica-views"),
                    Path.Combine(options.DataDirectory, "raft"),
                    options,
                    cancellationToken)
                .ConfigureAwait(false)
            : await TopicStore.OpenAsync(Path.Combine(options.DataDirectory, "topics"), options, cancellationToken)
                .ConfigureAwait(false);
        string offsetsDirectory = Path.Combine(options.DataDirectory, "group-offsets");
        var offsets = await OffsetStore.OpenAsync(offsetsDirectory, cancellationToken).ConfigureAwait(false);
        var groups = new GroupCoordinator(options.TimeProvider, options.InitialRebalanceDelay);
        var listener = new TcpListener(IPAddress.Parse(options.Host), options.Port);
        listener.Start();
        var stop = new CancellationTokenSource();
        var context = new BrokerContext(options, topics, offsets, groups, stop.Token)
        {
            Port = ((IPEndPoint)listener.LocalEndpoint).Port,
        };
        return new KafkaServer(listener, context, stop);
    }

    /// <summary>
    /// Stops listening, closes every connection, then closes the logs (each flushes what it accepted).
    /// </summary>
    /// <returns>A task that completes when everything is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _acceptLoop.ConfigureAwait(false);
        Task[] connections;
        lock (_connectionsLock)
        {
            connections = [.. _connections];
        }

        await Task.WhenAll(connections).ConfigureAwait(false);
        await _context.Groups.DisposeAsync().ConfigureAwait(false);
        await _context.Offsets.DisposeAsync().ConfigureAwait(false);
        await _context.Topics.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            var connection = new ClientConnection(socket, _context);
            var task = connection.RunAsync();
            lock (_connectionsLock)
            {
                _connections.Add(task);
            }

            _ = task.ContinueWith(
                t =>
                {
                    lock (_connectionsLock)
                    {
                        _connections.Remove(t);
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }
}
