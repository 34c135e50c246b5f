using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using AppendLog.Raft.Core;

namespace AppendLog.Raft.Transport;

/// <summary>
/// The real <see cref="IRaftTransport"/>: one outgoing TCP connection per peer (this node's messages to it) and the
/// peers' incoming connections (their messages to us), carrying <see cref="RaftFrame"/>s.
/// <para>
/// Sending never blocks the node's loop: each peer has a bounded queue of <see cref="SendQueueMessagesMax"/>
/// messages, and a message that finds it full is dropped (counted in <see cref="DroppedMessages"/>). Dropping is
/// what Raft expects of a network: a lost append is retransmitted after the follower's rejection or the next
/// heartbeat; a lost vote is repeated by the next election. Back-pressure would instead stall the leader on its
/// slowest follower. While a peer is unreachable its queue fills and further messages are dropped; the connection is
/// retried with exponential backoff from <see cref="ReconnectDelayMin"/> to <see cref="ReconnectDelayMax"/>.
/// </para>
/// <para>A message whose frame would exceed <see cref="RaftFrame.PayloadBytesMax"/> (a snapshot above 64 MiB) is dropped
/// by the writer and counted in <see cref="OversizeMessagesDropped"/>: the peer's other messages keep flowing, and a
/// follower that needs that snapshot stays behind until snapshots are streamed in chunks.</para>
/// <para>A writer drains everything queued (up to <see cref="WriteBytesMax"/>) into one socket write, so a burst of
/// pipelined appends costs one send call.</para>
/// </summary>
internal sealed class TcpRaftTransport : IRaftTransport, IAsyncDisposable
{
    public const int SendQueueMessagesMax = 1024;
    public const int WriteBytesMax = 1024 * 1024;
    public static readonly TimeSpan ReconnectDelayMin = TimeSpan.FromMilliseconds(20);
    public static readonly TimeSpan ReconnectDelayMax = TimeSpan.FromSeconds(1);
    private const int ReadBufferBytes = 64 * 1024;

    private readonly RaftNodeId _self;
    private readonly Action<RaftMessage> _receive;
    private readonly TimeProvider _time;
    /// <summary>Peers by id; replaced whole (copy on write) by <see cref="SetPeerEndpoints"/>, read by any thread.</summary>
    private volatile Dictionary<RaftNodeId, Peer> _peers = [];
    private readonly Lock _peersLock = new();
    private bool _started;
    private bool _stopping;
    private readonly ConcurrentDictionary<Socket, byte> _incoming = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly Socket _listener;
    private long _dropped;
    private long _framesReceived;
    private long _oversize;
    private long _refused;

    /// <summary>The hello each connection opens with: the sender's cluster id and node id (see <see cref="ClusterHello"/>).</summary>
    private readonly byte[] _hello;
    private readonly byte[] _clusterId;

    public TcpRaftTransport(
        RaftNodeId self,
        IPEndPoint listen,
        IReadOnlyDictionary<RaftNodeId, IPEndPoint> peers,
        Action<RaftMessage> receive,
        TimeProvider time,
        string clusterId = "",
        string? advertisedAddress = null)
    {
        _self = self;
        _clusterId = ClusterHello.EncodeId(clusterId);
        _hello = ClusterHello.Encode(_clusterId, self, advertisedAddress);
        _receive = receive;
        _time = time;
        foreach (var (id, endpoint) in peers)
        {
            if (id != self)
            {
                _peers[id] = new Peer(id, endpoint);
            }
        }

        _listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            _listener.Bind(listen);
            _listener.Listen(64);
        }
        catch
        {
            _listener.Dispose();
            _stop.Dispose();
            throw;
        }
    }

    /// <summary>Messages dropped because a peer's send queue was full.</summary>
    public long DroppedMessages => Interlocked.Read(ref _dropped);

    /// <summary>Messages dropped because they do not fit one frame (<see cref="RaftFrame.PayloadBytesMax"/>).</summary>
    public long OversizeMessagesDropped => Interlocked.Read(ref _oversize);

    public long FramesReceived => Interlocked.Read(ref _framesReceived);

    /// <summary>The address each peer advertised in its latest hello (peers that advertise none are absent).</summary>
    private readonly ConcurrentDictionary<RaftNodeId, string> _advertised = new();

    /// <summary>The address <paramref name="id"/> advertised when it last connected here, or null.</summary>
    public string? AdvertisedAddressOf(RaftNodeId id) => _advertised.TryGetValue(id, out var address) ? address : null;

    /// <summary>Connections refused because the peer's hello named another cluster (or was not a hello).</summary>
    public long RefusedConnections => Interlocked.Read(ref _refused);

    public void Start()
    {
        lock (_peersLock)
        {
            _started = true;
            _loops.Add(Task.Run(AcceptLoopAsync));
            foreach (var peer in _peers.Values)
            {
                _loops.Add(Task.Run(() => SendLoopAsync(peer)));
            }
        }
    }

    /// <summary>
    /// Learns where peers listen (from the replicated membership): a peer not known yet gets a send queue and a connection,
    /// and a known peer whose endpoint changed reconnects to the new one. Peers absent from <paramref name="endpoints"/>
    /// are kept (a removed member's queue just stays idle). This node's own entry is ignored.
    /// </summary>
    public void SetPeerEndpoints(IEnumerable<KeyValuePair<RaftNodeId, IPEndPoint>> endpoints)
    {
        lock (_peersLock)
        {
            if (_stopping)
            {
                return;
            }

            Dictionary<RaftNodeId, Peer>? updated = null;
            foreach (var (id, endpoint) in endpoints)
            {
                if (id == _self)
                {
                    continue;
                }

                if (_peers.TryGetValue(id, out var known))
                {
                    if (!known.Endpoint.Equals(endpoint))
                    {
                        known.Endpoint = endpoint;
                        known.Socket?.Dispose(); // the send loop reconnects, to the new endpoint
                    }

                    continue;
                }

                updated ??= new Dictionary<RaftNodeId, Peer>(_peers);
                var peer = new Peer(id, endpoint);
                updated[id] = peer;
                if (_started)
                {
                    _loops.Add(Task.Run(() => SendLoopAsync(peer)));
                }
            }

            if (updated is not null)
            {
                _peers = updated;
            }
        }
    }

    /// <summary>The endpoint messages to <paramref name="id"/> go to, or null when it is unknown.</summary>
    public IPEndPoint? EndpointOf(RaftNodeId id) => _peers.TryGetValue(id, out var peer) ? peer.Endpoint : null;

    /// <summary>Tests: messages for which this returns true are dropped as if lost (it also sees every message sent).</summary>
    internal Func<RaftMessage, bool>? DropOutgoing { get; set; }

    /// <summary>Tests: closes every connection, in and out, as a network failure would; the send loops reconnect.</summary>
    internal void DropConnections()
    {
        foreach (var socket in _incoming.Keys)
        {
            socket.Dispose();
        }

        foreach (var peer in _peers.Values)
        {
            peer.Socket?.Dispose();
        }
    }

    public void Send(RaftMessage message)
    {
        Invariant.Assert(message.From == _self, "a transport sends only its own node's messages");
        if (DropOutgoing?.Invoke(message) == true || !_peers.TryGetValue(message.To, out var peer) || !peer.Queue.Writer.TryWrite(message))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        lock (_peersLock)
        {
            _stopping = true; // under the lock: SetPeerEndpoints starts no send loop after this
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        foreach (var socket in _incoming.Keys)
        {
            socket.Dispose();
        }

        foreach (var peer in _peers.Values)
        {
            peer.Queue.Writer.TryComplete();
            peer.Socket?.Dispose();
        }

        try
        {
            Task[] loops;
            lock (_peersLock)
            {
                loops = [.. _loops];
            }

            await Task.WhenAll(loops).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Expected: the loops stop by cancellation.
        }

        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (token.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            socket.NoDelay = true;
            _incoming[socket] = 0;
            _ = Task.Run(() => ReceiveLoopAsync(socket, token), CancellationToken.None);
        }
    }

    private async Task ReceiveLoopAsync(Socket socket, CancellationToken token)
    {
        try
        {
            var stream = new BufferedStream(new NetworkStream(socket, ownsSocket: true), ReadBufferBytes);
            await using var streamScope = stream.ConfigureAwait(false);
            var (accepted, peer, address) = await ClusterHello.AcceptAsync(stream, _clusterId, token).ConfigureAwait(false);
            if (!accepted)
            {
                // A member of another cluster (or something that is not a member): close before reading any frame.
                Interlocked.Increment(ref _refused);
                return;
            }

            if (address is not null)
            {
                _advertised[peer] = address;
            }

            var header = new byte[RaftFrame.HeaderBytes];
            while (!token.IsCancellationRequested)
            {
                await stream.ReadExactlyAsync(header, token).ConfigureAwait(false);
                var payload = new byte[RaftFrame.PayloadLength(header)];
                await stream.ReadExactlyAsync(payload, token).ConfigureAwait(false);
                RaftFrame.CheckPayload(header, payload);
                var message = RaftMessageCodec.Decode(payload);
                Interlocked.Increment(ref _framesReceived);
                if (message.To == _self)
                {
                    _receive(message);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or InvalidDataException or EndOfStreamException
            or OperationCanceledException or ObjectDisposedException)
        {
            // The peer went away, or sent a damaged frame: drop the connection; it reconnects.
        }
        finally
        {
            _incoming.TryRemove(socket, out _);
            socket.Dispose();
        }
    }

    private async Task SendLoopAsync(Peer peer)
    {
        var token = _stop.Token;
        var delay = ReconnectDelayMin;
        var buffer = new ArrayBufferWriter<byte>(64 * 1024);
        while (!token.IsCancellationRequested)
        {
            var endpoint = peer.Endpoint;
            var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            peer.Socket = socket;
            try
            {
                await socket.ConnectAsync(endpoint, token).ConfigureAwait(false);
                await socket.SendAsync(_hello, SocketFlags.None, token).ConfigureAwait(false);
                delay = ReconnectDelayMin;
                var reader = peer.Queue.Reader;
                while (await reader.WaitToReadAsync(token).ConfigureAwait(false))
                {
                    buffer.ResetWrittenCount();
                    while (buffer.WrittenCount < WriteBytesMax && reader.TryRead(out var message))
                    {
                        if (!RaftFrame.TryWrite(message, buffer))
                        {
                            // Larger than any frame a peer accepts (a snapshot above the limit): it can never be sent.
                            // Drop it like a lost message and count it; the sender, and the later heartbeats, live on.
                            Interlocked.Increment(ref _oversize);
                        }
                    }

                    if (buffer.WrittenCount > 0)
                    {
                        await socket.SendAsync(buffer.WrittenMemory, SocketFlags.None, token).ConfigureAwait(false);
                    }
                }

                return;
            }
            catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
            {
                // Unreachable or reset: what was in hand is lost (Raft retransmits); retry after a backoff.
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            finally
            {
                socket.Dispose();
            }

            try
            {
                await Task.Delay(delay, _time, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, ReconnectDelayMax.Ticks));
        }
    }

    private sealed class Peer(RaftNodeId id, IPEndPoint endpoint)
    {
        public RaftNodeId Id { get; } = id;

        private volatile IPEndPoint _endpoint = endpoint;

        /// <summary>Where the peer listens; the send loop reads it at each connection attempt.</summary>
        public IPEndPoint Endpoint
        {
            get => _endpoint;
            set => _endpoint = value;
        }

        public Channel<RaftMessage> Queue { get; } = Channel.CreateBounded<RaftMessage>(new BoundedChannelOptions(SendQueueMessagesMax)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails when full, and Send counts the drop
        });

        public volatile Socket? Socket;
    }
}

/// <summary>
/// The first bytes of every connection: magic u32 "ALRH", version u8 = 1, cluster id length u8 + UTF-8 bytes, node id
/// u64, advertised address length u16 (0xFFFF: none) + UTF-8 bytes (little-endian). The address is the one clients
/// should use to reach the sender (<see cref="ReplicatedLogOptions.AdvertisedAddress"/>): every member learns the
/// leader's when the leader connects to send it heartbeats, and names it in <see cref="NotLeaderException"/>. A receiver reads it before any frame and closes a connection whose cluster id differs from its
/// own, so a member of another group given this group's addresses (a copied configuration, a reused port) never gets a
/// message in. It is a guard against mistakes, not authentication: anyone who knows the id can send it.
/// </summary>
internal static class ClusterHello
{
    public const int ClusterIdBytesMax = 255;

    public const int AddressBytesMax = 1024;

    private const ushort NoAddress = ushort.MaxValue;

    private const uint Magic = 0x48524C41; // "ALRH" read little-endian
    private const byte Version = 1;

    /// <exception cref="ArgumentException">The id is longer than <see cref="ClusterIdBytesMax"/> bytes in UTF-8.</exception>
    public static byte[] EncodeId(string clusterId)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(clusterId);
        if (bytes.Length > ClusterIdBytesMax)
        {
            throw new ArgumentException($"A cluster id is at most {ClusterIdBytesMax} bytes in UTF-8.", nameof(clusterId));
        }

        return bytes;
    }

    public static byte[] Encode(byte[] clusterId, RaftNodeId self, string? advertisedAddress)
    {
        var address = advertisedAddress is null ? [] : System.Text.Encoding.UTF8.GetBytes(advertisedAddress);
        if (address.Length > AddressBytesMax)
        {
            throw new ArgumentException($"An advertised address is at most {AddressBytesMax} bytes in UTF-8.", nameof(advertisedAddress));
        }

        var hello = new byte[4 + 1 + 1 + clusterId.Length + 8 + 2 + address.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(hello, Magic);
        hello[4] = Version;
        hello[5] = (byte)clusterId.Length;
        clusterId.CopyTo(hello, 6);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(hello.AsSpan(6 + clusterId.Length), self.Value);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(
            hello.AsSpan(14 + clusterId.Length), advertisedAddress is null ? NoAddress : (ushort)address.Length);
        address.CopyTo(hello, 16 + clusterId.Length);
        return hello;
    }

    /// <summary>Reads a hello from <paramref name="stream"/>: whether it names <paramref name="clusterId"/>, the sender, and the address it advertises.</summary>
    /// <exception cref="InvalidDataException">The advertised address is longer than <see cref="AddressBytesMax"/>.</exception>
    public static async ValueTask<(bool Accepted, RaftNodeId Sender, string? Address)> AcceptAsync(
        Stream stream, byte[] clusterId, CancellationToken cancellationToken)
    {
        var head = new byte[6];
        await stream.ReadExactlyAsync(head, cancellationToken).ConfigureAwait(false);
        if (System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(head) != Magic || head[4] != Version || head[5] != clusterId.Length)
        {
            return (false, RaftNodeId.None, null);
        }

        var rest = new byte[head[5] + 8 + 2];
        await stream.ReadExactlyAsync(rest, cancellationToken).ConfigureAwait(false);
        if (!rest.AsSpan(0, head[5]).SequenceEqual(clusterId))
        {
            return (false, RaftNodeId.None, null);
        }

        var sender = new RaftNodeId(System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(rest.AsSpan(head[5])));
        var length = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(rest.AsSpan(head[5] + 8));
        if (length == NoAddress)
        {
            return (true, sender, null);
        }

        if (length > AddressBytesMax)
        {
            throw new InvalidDataException($"An advertised address of {length} bytes is longer than {AddressBytesMax}.");
        }

        var address = new byte[length];
        await stream.ReadExactlyAsync(address, cancellationToken).ConfigureAwait(false);
        return (true, sender, System.Text.Encoding.UTF8.GetString(address));
    }
}
