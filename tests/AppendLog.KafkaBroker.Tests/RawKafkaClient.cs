using System.Buffers.Binary;
using System.IO.Hashing;
using System.Net.Sockets;
using System.Text;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// A minimal Kafka wire client for the cases a real client never sends: forged sequences, broken CRCs, lying
/// lengths. Requests are written with header v1 (client id "raw"); responses are returned without their size and
/// correlation id, or null when the broker closed the connection.
/// </summary>
internal sealed class RawKafkaClient : IAsyncDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private int _correlationId;

    private RawKafkaClient(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
    }

    public static async Task<RawKafkaClient> ConnectAsync(string bootstrap, CancellationToken cancellationToken)
    {
        string[] parts = bootstrap.Split(':');
        var client = new TcpClient();
        await client.ConnectAsync(parts[0], int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), cancellationToken);
        return new RawKafkaClient(client);
    }

    /// <summary>Sends one request and reads its response body.</summary>
    public async Task<byte[]?> SendAsync(short apiKey, short version, byte[] body, CancellationToken cancellationToken)
    {
        var header = new Bytes().Int16(apiKey).Int16(version).Int32(++_correlationId).String("raw").ToArray();
        await SendFrameAsync([.. header, .. body], cancellationToken);
        return await ReceiveAsync(cancellationToken);
    }

    /// <summary>Sends one request without waiting for its response (pipelining); returns its correlation id.</summary>
    public async Task<int> SendOnlyAsync(short apiKey, short version, byte[] body, CancellationToken cancellationToken)
    {
        var header = new Bytes().Int16(apiKey).Int16(version).Int32(++_correlationId).String("raw").ToArray();
        await SendFrameAsync([.. header, .. body], cancellationToken);
        return _correlationId;
    }

    /// <summary>Reads one response: its correlation id and body; null when the connection is closed.</summary>
    public async Task<(int CorrelationId, byte[] Body)?> ReceiveFrameAsync(CancellationToken cancellationToken)
    {
        var prefix = new byte[4];
        try
        {
            if (await _stream.ReadAtLeastAsync(prefix, 4, throwOnEndOfStream: false, cancellationToken) < 4)
            {
                return null;
            }

            var frame = new byte[BinaryPrimitives.ReadInt32BigEndian(prefix)];
            await _stream.ReadExactlyAsync(frame, cancellationToken);
            return (BinaryPrimitives.ReadInt32BigEndian(frame), frame[4..]);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Writes a size prefix and the bytes as given (the size may lie).</summary>
    public async Task SendRawAsync(int sizePrefix, byte[] bytes, CancellationToken cancellationToken)
    {
        var prefix = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(prefix, sizePrefix);
        await _stream.WriteAsync(prefix, cancellationToken);
        await _stream.WriteAsync(bytes, cancellationToken);
    }

    /// <summary>Reads one response body (after the correlation id); null when the connection is closed.</summary>
    public async Task<byte[]?> ReceiveAsync(CancellationToken cancellationToken) =>
        (await ReceiveFrameAsync(cancellationToken))?.Body;

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }

    private Task SendFrameAsync(byte[] frame, CancellationToken cancellationToken) => SendRawAsync(frame.Length, frame, cancellationToken);

    /// <summary>
    /// An uncompressed RecordBatch v2 with one record per value (Kafka's DefaultRecordBatch layout), CRC-32C set.
    /// </summary>
    public static byte[] Batch(long producerId, short producerEpoch, int baseSequence, params string[] values)
    {
        var records = new Bytes();
        for (int i = 0; i < values.Length; i++)
        {
            var value = Encoding.UTF8.GetBytes(values[i]);
            var record = new Bytes().Int8(0).Varint(0).Varint(i).Varint(-1).Varint(value.Length).Raw(value).Varint(0).ToArray();
            records.Varint(record.Length).Raw(record);
        }

        long now = 1_700_000_000_000;
        var afterCrc = new Bytes().Int16(0).Int32(values.Length - 1).Int64(now).Int64(now)
            .Int64(producerId).Int16(producerEpoch).Int32(baseSequence).Int32(values.Length).Raw(records.ToArray()).ToArray();
        uint crc = Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, afterCrc);
        return new Bytes().Int64(0).Int32(4 + 1 + 4 + afterCrc.Length).Int32(-1).Int8(2).Int32((int)crc).Raw(afterCrc).ToArray();
    }

    /// <summary>A Produce v7 body for one partition.</summary>
    public static byte[] ProduceBody(string topic, int partition, byte[] records, short acks = -1) =>
        new Bytes().NullString().Int16(acks).Int32(5000).Int32(1).String(topic).Int32(1).Int32(partition).Int32(records.Length).Raw(records).ToArray();

    /// <summary>Error code and base offset of the one partition of a Produce v7 response.</summary>
    public static (short Error, long BaseOffset) ParseProduce(byte[] response)
    {
        // [topics: 1] name [partitions: 1] index error base_offset ...
        int position = 4;
        position += 2 + BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(position)) + 4 + 4;
        return (BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(position)), BinaryPrimitives.ReadInt64BigEndian(response.AsSpan(position + 2)));
    }

    /// <summary>Big-endian request building.</summary>
    internal sealed class Bytes
    {
        private readonly List<byte> _bytes = [];

        public Bytes Int8(sbyte v)
        {
            _bytes.Add((byte)v);
            return this;
        }

        public Bytes Int16(short v) => Raw([(byte)(v >> 8), (byte)v]);

        public Bytes Int32(int v) => Raw([(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v]);

        public Bytes Int64(long v) => Int32((int)(v >> 32)).Int32((int)v);

        public Bytes String(string s)
        {
            var utf8 = Encoding.UTF8.GetBytes(s);
            return Int16((short)utf8.Length).Raw(utf8);
        }

        public Bytes NullString() => Int16(-1);

        public Bytes Varint(long v)
        {
            ulong zigzag = (ulong)((v << 1) ^ (v >> 63));
            while (zigzag >= 0x80)
            {
                _bytes.Add((byte)(zigzag | 0x80));
                zigzag >>= 7;
            }

            _bytes.Add((byte)zigzag);
            return this;
        }

        public Bytes Raw(byte[] raw)
        {
            _bytes.AddRange(raw);
            return this;
        }

        public byte[] ToArray() => [.. _bytes];
    }
}
