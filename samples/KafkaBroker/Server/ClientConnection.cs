using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using AppendLog;
using KafkaBroker.Protocol;

namespace KafkaBroker.Server;

/// <summary>
/// One client connection. Kafka's framing: every request and response is a 4-byte big-endian size followed by that
/// many bytes. Requests are served one at a time, in order, as a Kafka broker does (it mutes a connection while a
/// request is in progress), so responses go back in request order and a producer's batches reach the log in the
/// order it sent them. The connection is closed on a framing error: a size below the smallest header or above
/// <see cref="BrokerOptions.MaximumRequestSize"/>, a body that does not parse, or a version not advertised.
/// </summary>
internal sealed class ClientConnection(Socket socket, BrokerContext broker)
{
    /// <summary>api_key (2) + api_version (2) + correlation_id (4): the smallest request header.</summary>
    private const int RequestSizeMin = 8;

    private readonly NetworkStream _stream = new(socket, ownsSocket: true);
    private readonly string _advertisedHost =
        broker.Options.AdvertisedHost ?? ((IPEndPoint)socket.LocalEndPoint!).Address.ToString();

    public async Task RunAsync()
    {
        socket.NoDelay = true; // as Kafka brokers do: answers are whole frames, never worth delaying
        await using var stream = _stream.ConfigureAwait(false);
        var sizePrefix = new byte[4];
        try
        {
            while (!broker.Stopping.IsCancellationRequested)
            {
                if (!await TryReadExactlyAsync(sizePrefix).ConfigureAwait(false))
                {
                    return;
                }

                int size = BinaryPrimitives.ReadInt32BigEndian(sizePrefix);
                if (size < RequestSizeMin || size > broker.Options.MaximumRequestSize)
                {
                    Log($"request size {size} outside [{RequestSizeMin}, {broker.Options.MaximumRequestSize}]");
                    return;
                }

                if (!await ServeOneAsync(size).ConfigureAwait(false))
                {
                    return;
                }
            }
        }
        catch (Exception e)
            when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The client went away or the broker is stopping.
        }
        catch (KafkaProtocolException e)
        {
            Log($"malformed request: {e.Message}");
        }
        catch (Exception e) when (e is LogFaultedException or LogCorruptedException)
        {
            Log($"storage failure: {e.Message}");
        }
        catch (Exception e)
        {
            // A bug in a handler: one connection is closed, the broker and its other clients carry on.
            Log($"unexpected {e.GetType().Name} serving a request: {e.Message}");
        }
    }

    /// <summary>
    /// Reads one request of <paramref name="size"/> bytes, serves it, and writes its response (if any).
    /// </summary>
    /// <returns>False when the connection must be closed.</returns>
    private async Task<bool> ServeOneAsync(int size)
    {
        byte[] frame = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            await _stream.ReadExactlyAsync(frame.AsMemory(0, size), broker.Stopping).ConfigureAwait(false);
            var reader = new KafkaReader(frame.AsMemory(0, size));
            var header = RequestHeader.Read(reader);
            if (!SupportedApis.IsSupported(header.ApiKey, header.ApiVersion) && header.ApiKey != ApiKey.ApiVersions)
            {
                Log($"{header.ApiKey} v{header.ApiVersion} is not supported");
                return false;
            }

            var request = new RequestContext(broker, header, reader, _advertisedHost);
            var response = await RequestDispatcher.HandleAsync(request).ConfigureAwait(false);
            if (response is not null)
            {
                await SendAsync(response.Complete()).ConfigureAwait(false);
            }

            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    /// <summary>One write of one part; one gathering send (writev) of several, each part from its own array.</summary>
    private async Task SendAsync(List<ReadOnlyMemory<byte>> parts)
    {
        if (parts.Count == 1)
        {
            await _stream.WriteAsync(parts[0], broker.Stopping).ConfigureAwait(false);
            return;
        }

        var segments = parts
            .Select(p => MemoryMarshal.TryGetArray(p, out var array) ? array : new ArraySegment<byte>(p.ToArray()))
            .ToList();
        await socket.SendAsync(segments, SocketFlags.None).ConfigureAwait(false);
    }

    private async Task<bool> TryReadExactlyAsync(byte[] buffer)
    {
        int read = await _stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, broker.Stopping)
            .ConfigureAwait(false);
        if (read == 0)
        {
            return false;
        }

        return read == buffer.Length ? true : throw new IOException("The connection closed inside a size prefix.");
    }

    private void Log(string message) =>
        broker.Options.Log?.WriteLine($"kafka-broker: {socket.RemoteEndPoint}: {message}: closing");
}
