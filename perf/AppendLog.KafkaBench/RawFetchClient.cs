using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AppendLog.KafkaBench;

/// <summary>
/// A blocking Fetch v11 loop on one partition that allocates nothing per request: one request buffer patched in
/// place, one response buffer reused. It walks each response's record batches (base offset, length, last offset
/// delta) to count them and to find the next fetch offset.
/// </summary>
internal sealed class RawFetchClient : IDisposable
{
    private const short FetchApiKey = 1;
    private const short FetchVersion = 11;

    /// <summary>Kafka's default <c>fetch.max.bytes</c> (50 MiB): the response limit over all partitions.</summary>
    private const int ResponseMaxBytes = 50 * 1024 * 1024;

    private readonly Socket _socket;
    private readonly byte[] _request;
    private readonly int _offsetPosition;
    private readonly int _correlationPosition;
    private byte[] _response;

    public RawFetchClient(int port, string topic, int partitionMaxBytes)
    {
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        _socket.Connect(new IPEndPoint(IPAddress.Loopback, port));
        var topicBytes = Encoding.UTF8.GetBytes(topic);
        var request = new List<byte>();
        void Int16(short v) => request.AddRange([(byte)(v >> 8), (byte)v]);
        void Int32(int v) => request.AddRange([(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v]);
        void Int64(long v)
        {
            Int32((int)(v >> 32));
            Int32((int)v);
        }

        Int32(0); // size, set below
        Int16(FetchApiKey);
        Int16(FetchVersion);
        _correlationPosition = request.Count;
        Int32(0);
        Int16(-1); // client_id: null
        Int32(-1); // replica_id
        Int32(500); // max_wait_ms
        Int32(1); // min_bytes
        Int32(ResponseMaxBytes);
        request.Add(0); // isolation_level
        Int32(0); // session_id
        Int32(-1); // session_epoch
        Int32(1); // [topics]
        Int16((short)topicBytes.Length);
        request.AddRange(topicBytes);
        Int32(1); // [partitions]
        Int32(0); // partition
        Int32(-1); // current_leader_epoch
        _offsetPosition = request.Count;
        Int64(0); // fetch_offset
        Int64(-1); // log_start_offset
        Int32(partitionMaxBytes);
        Int32(0); // [forgotten_topics_data]
        Int16(0); // rack_id: ""
        _request = [.. request];
        BinaryPrimitives.WriteInt32BigEndian(_request, _request.Length - 4);

        // A response holds at most partitionMaxBytes of batches, or one larger batch (KIP-74): room for both.
        _response = new byte[(2 * Math.Max(partitionMaxBytes, 1024 * 1024)) + (64 * 1024)];
    }

    /// <summary>Fetches from offset 0 until <paramref name="endOffset"/>.</summary>
    public RawFetchResult CatchUp(long endOffset, int warmupFetches, TimeSpan deadline)
    {
        long offset = 0;
        long bytes = 0;
        long fetches = 0;
        long measuredBatches = 0;
        long allocatedAtStart = 0;
        var clock = Stopwatch.StartNew();
        while (offset < endOffset)
        {
            if (clock.Elapsed > deadline)
            {
                throw new TimeoutException($"the raw fetch did not reach offset {endOffset} in {deadline}");
            }

            if (fetches == warmupFetches)
            {
                allocatedAtStart = GC.GetTotalAllocatedBytes(precise: true);
            }

            var (batches, batchBytes, next) = FetchOnce(offset, (int)fetches);
            fetches++;
            bytes += batchBytes;
            if (fetches > warmupFetches)
            {
                measuredBatches += batches;
            }

            offset = next;
        }

        double seconds = clock.Elapsed.TotalSeconds;
        long allocated = fetches > warmupFetches ? GC.GetTotalAllocatedBytes(precise: true) - allocatedAtStart : 0;
        return new RawFetchResult(bytes, seconds, Math.Max(0, fetches - warmupFetches), measuredBatches, allocated);
    }

    public void Dispose() => _socket.Dispose();

    private (int Batches, int Bytes, long NextOffset) FetchOnce(long offset, int correlationId)
    {
        BinaryPrimitives.WriteInt32BigEndian(_request.AsSpan(_correlationPosition), correlationId);
        BinaryPrimitives.WriteInt64BigEndian(_request.AsSpan(_offsetPosition), offset);
        _socket.Send(_request);
        ReceiveExactly(4);
        int size = BinaryPrimitives.ReadInt32BigEndian(_response);
        if (size > _response.Length)
        {
            _response = new byte[size];
        }

        ReceiveExactly(size);
        var response = _response.AsSpan(0, size);
        int position = 4 + 4 + 2 + 4 + 4; // correlation, throttle, error, session_id, [topics]
        position += 2 + BinaryPrimitives.ReadInt16BigEndian(response[position..]) + 4 + 4; // name, [partitions], index
        short error = BinaryPrimitives.ReadInt16BigEndian(response[position..]);
        if (error != 0)
        {
            throw new InvalidOperationException($"fetch at offset {offset} answered error {error}");
        }

        position += 2 + 8 + 8 + 8 + 4 + 4; // error, high watermark, last stable, log start, aborted, preferred
        int recordsSize = BinaryPrimitives.ReadInt32BigEndian(response[position..]);
        var records = response.Slice(position + 4, recordsSize);
        int batches = 0;
        long next = offset;
        while (records.Length >= 12)
        {
            long baseOffset = BinaryPrimitives.ReadInt64BigEndian(records);
            int length = 12 + BinaryPrimitives.ReadInt32BigEndian(records[8..]);
            if (length > records.Length)
            {
                break; // a partial trailing batch (Kafka may send one; the broker here does not)
            }

            next = baseOffset + BinaryPrimitives.ReadInt32BigEndian(records[23..]) + 1;
            batches++;
            records = records[length..];
        }

        if (batches == 0)
        {
            throw new InvalidOperationException($"fetch at offset {offset} returned no whole batch");
        }

        return (batches, recordsSize, next);
    }

    private void ReceiveExactly(int count)
    {
        int received = 0;
        while (received < count)
        {
            int n = _socket.Receive(_response, received, count - received, SocketFlags.None);
            if (n == 0)
            {
                throw new IOException("the broker closed the connection");
            }

            received += n;
        }
    }
}
