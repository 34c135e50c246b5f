using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using AppendLog;
using KafkaBroker.Protocol;

namespace KafkaBroker.Server;

/// <summary>
/// One client connection. Kafka's framing: every request and response is a 4-byte big-endian size followed by that
/// many bytes. Requests are pipelined: the reader reads, parses and starts each request in order (so a producer's
/// batches reach each log in the order it sent them: a handler starts its appends before it first waits), while the
/// writer awaits the answers in request order and sends them, as Kafka requires. What one connection holds is
/// bounded by <see cref="InflightRequests"/> (<see cref="BrokerOptions.MaximumInflightRequestsPerConnection"/>,
/// <see cref="BrokerOptions.MaximumInflightBytesPerConnection"/>); the reader waits, reading nothing, while the bound
/// is reached. The connection is closed on a framing error: a size below the smallest header or above
/// <see cref="BrokerOptions.MaximumRequestSize"/> (before any of the body is read), a body that does not parse, or a
/// version not advertised; requests read after the bad one are not started.
/// </summary>
internal sealed class ClientConnection
{
    /// <summary>api_key (2) + api_version (2) + correlation_id (4): the smallest request header.</summary>
    private const int RequestSizeMin = 8;

    private readonly Socket _socket;
    private readonly BrokerContext _broker;
    private readonly NetworkStream _stream;
    private readonly string _advertisedHost;
    private readonly InflightRequests _inflight;
    private readonly Channel<Pending> _pending = Channel.CreateUnbounded<Pending>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    /// <summary>
    /// The requests started so far (the reader's count), and the count at the last request other than a Produce
    /// started (a later Produce waits until every request up to it is handled). Used by the reader only.
    /// </summary>
    private long _started;
    private long _lastBarrier;

    /// <summary>
    /// The requests done so far, counted in order by the writer once each is answered (or its answer dropped) and its
    /// loans ended; the reader waits on <see cref="_handledSignal"/> (made only when it waits) for a count. Both under
    /// <see cref="_turnLock"/>.
    /// </summary>
    private long _handled;
    private TaskCompletionSource? _handledSignal;
    private readonly Lock _turnLock = new();

    /// <summary>The connection's fetch readers: kept between fetches, closed with the connection.</summary>
    private readonly FetchReaders _fetchReaders = new();

    /// <summary>The gathering send of answers in several parts (used by the writer only; disposed with the connection).</summary>
    private readonly GatheringSender _sender;

    /// <summary>The parts of the answer being sent (used by the writer only).</summary>
    private readonly List<ArraySegment<byte>> _sendSegments = [];

    /// <summary>The client id of the last request (a client sends the same one every time; used by the reader only).</summary>
    private string? _clientId;

    /// <summary>Set once the connection is being closed: no more responses are sent.</summary>
    private volatile bool _closing;

    public ClientConnection(Socket socket, BrokerContext broker)
    {
        _socket = socket;
        _broker = broker;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _sender = new GatheringSender(socket);
        _advertisedHost = broker.Options.AdvertisedHost ?? ((IPEndPoint)socket.LocalEndPoint!).Address.ToString();
        _inflight = new InflightRequests(
            broker.Options.MaximumInflightRequestsPerConnection, broker.Options.MaximumInflightBytesPerConnection);
    }

    /// <summary>
    /// A request started and not yet answered: its frame stays rented until its handler is done. Arrived: when its
    /// size prefix was read (<see cref="TimeProvider.GetTimestamp"/>); Api: its API, once its header parsed.
    /// </summary>
    private readonly record struct Pending(
        ValueTask<KafkaWriter?> Handling, byte[] Frame, KafkaReader Reader, int Size, long Arrived, ApiKey? Api);

    /// <summary>
    /// Request readers no started request holds (the reader takes one per request, the writer gives it back once the
    /// request is done): at most one per request in flight, so none is allocated per request. Under its own lock.
    /// </summary>
    private readonly Stack<KafkaReader> _spareReaders = new();

    public async Task RunAsync()
    {
        _socket.NoDelay = true; // as Kafka brokers do: answers are whole frames, never worth delaying
        await using var stream = _stream.ConfigureAwait(false);
        var writer = WriteResponsesAsync();
        try
        {
            await ReadRequestsAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            // The client went away or the broker is stopping.
        }
        finally
        {
            _pending.Writer.TryComplete();
        }

        // Every started handler is awaited before the frames go back to the pool and the socket is closed.
        await writer.ConfigureAwait(false);
        _sender.Dispose();
        await _fetchReaders.DisposeAsync().ConfigureAwait(false);
    }

    private async Task ReadRequestsAsync()
    {
        var sizePrefix = new byte[4];
        while (!_broker.Stopping.IsCancellationRequested && !_closing)
        {
            if (!await TryReadExactlyAsync(sizePrefix).ConfigureAwait(false))
            {
                return;
            }

            long arrived = _broker.Options.TimeProvider.GetTimestamp();
            int size = BinaryPrimitives.ReadInt32BigEndian(sizePrefix);
            if (size < RequestSizeMin || size > _broker.Options.MaximumRequestSize)
            {
                Close($"request size {size} outside [{RequestSizeMin}, {_broker.Options.MaximumRequestSize}]");
                return;
            }

            await _inflight.EnterAsync(size, _broker.Stopping).ConfigureAwait(false);
            byte[] frame = ArrayPool<byte>.Shared.Rent(size);
            var reader = RentReader(frame.AsMemory(0, size));
            var (handling, api) = await ReadAndStartAsync(frame, size, reader).ConfigureAwait(false);
            bool failed = handling.IsFaulted; // before the writer may take its outcome
            _started++;
            if (api != ApiKey.Produce)
            {
                _lastBarrier = _started;
            }

            _pending.Writer.TryWrite(new Pending(handling, frame, reader, size, arrived, api));
            if (failed)
            {
                return; // a request that does not parse fails before it acts: read nothing after it
            }
        }
    }

    /// <summary>
    /// Reads one request's body and starts its handler (its synchronous part runs here, in order). This and the other
    /// helpers awaited once per request use pooled state machines (no allocation per request when they wait).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<(ValueTask<KafkaWriter?> Handling, ApiKey? Api)> ReadAndStartAsync(
        byte[] frame, int size, KafkaReader reader)
    {
        try
        {
            await _stream.ReadExactlyAsync(frame.AsMemory(0, size), _broker.Stopping).ConfigureAwait(false);
            var header = RequestHeader.Read(reader, _clientId);
            _clientId = header.ClientId;
            if (!SupportedApis.IsSupported(header.ApiKey, header.ApiVersion) && header.ApiKey != ApiKey.ApiVersions)
            {
                throw new KafkaProtocolException($"{header.ApiKey} v{header.ApiVersion} is not supported");
            }

            await WaitForTurnAsync(header.ApiKey).ConfigureAwait(false);
            var handling = RequestDispatcher.HandleAsync(new RequestContext(_broker, header, reader, _advertisedHost, _fetchReaders));
            return (handling, header.ApiKey);
        }
        catch (Exception e)
        {
            return (ValueTask.FromException<KafkaWriter?>(e), null);
        }
    }

    /// <summary>
    /// Produce requests overlap one another (a producer's batches are still appended in order: each handler starts
    /// its appends before it first waits). Any other request waits until every earlier request of the connection has
    /// been handled, and a Produce after it waits for it: an OffsetFetch after an OffsetCommit, or a Fetch after a
    /// Produce, sees what a client that waited for each answer would see. Requests are counted, not kept: the writer
    /// finishes requests in order, so "the first n done" is one number (<see cref="_handled"/>), and a handler's task
    /// is awaited once, by the writer (so it may be a pooled one). Done means answered too, so a Fetch after a Fetch
    /// finds the connection's fetch readers free (no wait on them, no task for one).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WaitForTurnAsync(ApiKey apiKey)
    {
        long mustBeHandled = apiKey == ApiKey.Produce ? _lastBarrier : _started;
        while (true)
        {
            Task handled;
            lock (_turnLock)
            {
                if (_handled >= mustBeHandled)
                {
                    return;
                }

                _handledSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                handled = _handledSignal.Task;
            }

            await handled.ConfigureAwait(false);
        }
    }

    private KafkaReader RentReader(ReadOnlyMemory<byte> frame)
    {
        lock (_spareReaders)
        {
            if (_spareReaders.TryPop(out var reader))
            {
                reader.Reset(frame);
                return reader;
            }
        }

        return new KafkaReader(frame);
    }

    private void ReturnReader(KafkaReader reader)
    {
        reader.Reset(ReadOnlyMemory<byte>.Empty); // no reference to the frame, which goes back to the pool
        lock (_spareReaders)
        {
            _spareReaders.Push(reader);
        }
    }

    /// <summary>The writer has finished one more request: wakes the reader if it waits for it.</summary>
    private void CountHandled()
    {
        TaskCompletionSource? signal;
        lock (_turnLock)
        {
            _handled++;
            signal = _handledSignal;
            _handledSignal = null;
        }

        signal?.TrySetResult(); // outside the lock; the reader's continuation runs asynchronously
    }

    /// <summary>Awaits each started request in order and sends its answer; closes the connection on a failure.</summary>
    private async Task WriteResponsesAsync()
    {
        await foreach (var pending in _pending.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            KafkaWriter? response = null;
            try
            {
                response = await pending.Handling.ConfigureAwait(false);
                if (response is not null && !_closing)
                {
                    await SendAsync(response.Complete()).ConfigureAwait(false);
                    RecordDuration(pending);
                }
            }
            catch (Exception e)
            {
                Close(Describe(e));
            }
            finally
            {
                if (response?.AfterSent is { } afterSent)
                {
                    try
                    {
                        await afterSent().ConfigureAwait(false);
                    }
                    catch (Exception e)
                    {
                        // Ending the loans failed (a reader's close): the connection goes, the frames still go back.
                        Close(Describe(e));
                    }
                }

                ArrayPool<byte>.Shared.Return(pending.Frame);
                ReturnReader(pending.Reader);
                _inflight.Exit(pending.Size);
                CountHandled();
            }
        }
    }

    /// <summary>One write of one part; one gathering send (writev) of several, each part from its own array.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendAsync(List<ReadOnlyMemory<byte>> parts)
    {
        if (parts.Count == 1)
        {
            await _stream.WriteAsync(parts[0], _broker.Stopping).ConfigureAwait(false);
            return;
        }

        // One list for every send of the connection (only the writer sends): no list per answer.
        _sendSegments.Clear();
        foreach (var part in parts)
        {
            _sendSegments.Add(MemoryMarshal.TryGetArray(part, out var array) ? array : new ArraySegment<byte>(part.ToArray()));
        }

        await _sender.SendAsync(_sendSegments).ConfigureAwait(false);
        _sendSegments.Clear(); // drop the references to lent arrays before they are released
    }

    private void RecordDuration(Pending pending)
    {
        if (BrokerMetrics.RequestDuration.Enabled && pending.Api is { } api && (int)api < ApiNames.Length)
        {
            var elapsed = _broker.Options.TimeProvider.GetElapsedTime(pending.Arrived);
            BrokerMetrics.RequestDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("api", ApiNames[(int)api]));
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> TryReadExactlyAsync(byte[] buffer)
    {
        int read = await _stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, _broker.Stopping)
            .ConfigureAwait(false);
        if (read == 0)
        {
            return false;
        }

        return read == buffer.Length ? true : throw new IOException("The connection closed inside a size prefix.");
    }

    /// <summary>
    /// Stops the connection: nothing more is sent, and shutting the socket down ends the reader's wait for the next
    /// request (requests already started still complete, their answers dropped).
    /// </summary>
    private void Close(string? reason)
    {
        if (_closing)
        {
            return;
        }

        _closing = true;
        if (reason is not null)
        {
            _broker.Options.Log?.WriteLine($"kafka-broker: {_socket.RemoteEndPoint}: {reason}: closing");
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }
    }

    /// <summary>The metric tag of each API key (indexed by key; names allocated once).</summary>
    private static readonly string[] ApiNames = Enumerable.Range(0, 64).Select(k => ((ApiKey)k).ToString()).ToArray();

    private static bool IsDisconnect(Exception e) =>
        e is IOException or SocketException or OperationCanceledException or ObjectDisposedException;

    /// <summary>What is logged when a request fails; null for a disconnect (nothing worth a line).</summary>
    private static string? Describe(Exception e) => e switch
    {
        KafkaProtocolException => $"malformed request: {e.Message}",
        LogFaultedException or LogCorruptedException => $"storage failure: {e.Message}",
        _ when IsDisconnect(e) => null,

        // A bug in a handler: one connection is closed, the broker and its other clients carry on.
        _ => $"unexpected {e.GetType().Name} serving a request: {e.Message}",
    };
}
