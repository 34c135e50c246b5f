using System.Buffers;
using System.IO.Compression;
using AppendLog.Format;
using BenchmarkDotNet.Attributes;

namespace AppendLog.Benchmarks;

/// <summary>
/// The Kafka codecs over one 64 KiB records section of Kafka-like records (JSON-ish values, repeated keys), compress
/// and decompress, for choosing the packages: Snappier vs IronSnappy (the two managed Snappy ports), ZstdSharp.Port at
/// Kafka's default level 3 and at 1, GZIP (the runtime's zlib) at Optimal (Kafka's level 6) and Fastest, and our LZ4
/// frame layer for reference. Throughput = 64 KiB / mean; the ratio each codec reaches is printed by Setup.
/// </summary>
[MemoryDiagnoser]
public class CodecBenchmarks
{
    private byte[] _records = [];
    private byte[] _output = [];
    private byte[] _restored = [];
    private byte[] _snappy = [];
    private byte[] _zstd = [];
    private byte[] _gzip = [];
    private byte[] _lz4 = [];
    private ZstdSharp.Compressor _zstd3 = null!;
    private ZstdSharp.Compressor _zstd1 = null!;
    private ZstdSharp.Decompressor _unzstd = null!;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        var buffer = new ArrayBufferWriter<byte>();
        int i = 0;
        while (buffer.WrittenCount < 64 * 1024)
        {
            string value = $"{{\"user\":{random.Next(1000)},\"event\":\"{(random.Next(4) switch { 0 => "click", 1 => "view", 2 => "purchase", _ => "scroll" })}\",\"ts\":{1_700_000_000_000 + (i * 13)},\"session\":\"{random.Next():x8}\",\"amount\":{random.NextDouble() * 100:F2}}}";
            byte[] record = RecordBytes(i++, System.Text.Encoding.UTF8.GetBytes($"user-{random.Next(1000)}"), System.Text.Encoding.UTF8.GetBytes(value));
            buffer.Write(record);
        }

        _records = buffer.WrittenSpan[..(64 * 1024)].ToArray();
        _output = new byte[2 * _records.Length + 1024];
        _restored = new byte[_records.Length];
        _zstd3 = new ZstdSharp.Compressor(3);
        _zstd1 = new ZstdSharp.Compressor(1);
        _unzstd = new ZstdSharp.Decompressor();
        _snappy = Snappier.Snappy.CompressToArray(_records);
        _zstd = _zstd3.Wrap(_records).ToArray();
        _gzip = Compress(CompressionCodec.Gzip);
        _lz4 = Compress(CompressionCodec.Lz4);
        Console.WriteLine($"// ratios on 64 KiB: snappy {Ratio(_snappy)}, zstd3 {Ratio(_zstd)}, gzip6 {Ratio(_gzip)}, lz4 {Ratio(_lz4)}");
    }

    [Benchmark]
    public int SnappierCompress() => Snappier.Snappy.Compress(_records, _output);

    [Benchmark]
    public byte[] IronSnappyCompress() => IronSnappy.Snappy.Encode(_records);

    [Benchmark]
    public int SnappierDecompress() => Snappier.Snappy.Decompress(_snappy, _restored);

    [Benchmark]
    public byte[] IronSnappyDecompress() => IronSnappy.Snappy.Decode(_snappy);

    [Benchmark]
    public int ZstdLevel3Compress() => _zstd3.Wrap(_records, _output);

    [Benchmark]
    public int ZstdLevel1Compress() => _zstd1.Wrap(_records, _output);

    [Benchmark]
    public int ZstdDecompress() => _unzstd.Unwrap(_zstd, _restored);

    [Benchmark]
    public int GzipOptimalCompress() => BatchCompression.Compress(CompressionCodec.Gzip, _records, _output);

    [Benchmark]
    public long GzipFastestCompress()
    {
        using var output = new MemoryStream(_output);
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(_records);
        }

        return output.Position;
    }

    [Benchmark]
    public OperationStatus GzipDecompress() => BatchCompression.Decompress(CompressionCodec.Gzip, _gzip, _restored, out _);

    [Benchmark]
    public int Lz4Compress() => BatchCompression.Compress(CompressionCodec.Lz4, _records, _output);

    [Benchmark]
    public OperationStatus Lz4Decompress() => BatchCompression.Decompress(CompressionCodec.Lz4, _lz4, _restored, out _);

    private byte[] Compress(CompressionCodec codec) => _output[..BatchCompression.Compress(codec, _records, _output)];

    private string Ratio(byte[] compressed) => $"{(double)_records.Length / compressed.Length:F2}:1";

    private static byte[] RecordBytes(int offsetDelta, byte[] key, byte[] value)
    {
        var body = new ArrayBufferWriter<byte>();
        Span<byte> varint = stackalloc byte[10];
        body.Write<byte>([0]);
        body.Write(varint[..Varint.Write(varint, 0L)]);
        body.Write(varint[..Varint.Write(varint, offsetDelta)]);
        body.Write(varint[..Varint.Write(varint, key.Length)]);
        body.Write(key);
        body.Write(varint[..Varint.Write(varint, value.Length)]);
        body.Write(value);
        body.Write(varint[..Varint.Write(varint, 0)]);
        var record = new ArrayBufferWriter<byte>();
        record.Write(varint[..Varint.Write(varint, body.WrittenCount)]);
        record.Write(body.WrittenSpan);
        return record.WrittenSpan.ToArray();
    }
}
