using AppendLog.Format;
using BenchmarkDotNet.Attributes;

namespace AppendLog.Benchmarks;

/// <summary>
/// Micro paths of the record batch format. Expected allocation per operation is in expectations.json:
/// 0 B for encode, decode and CRC (they run on the append and read hot paths).
/// </summary>
[MemoryDiagnoser]
public class FormatBenchmarks
{
    private const long Timestamp = 1_700_000_000_000;

    private AppendRecord[] _records = [];
    private byte[] _batch = [];
    private byte[] _encoded = [];
    private byte[] _data16KiB = [];
    private byte[] _data1MiB = [];
    private byte[] _text64KiB = [];
    private byte[] _frame = [];
    private byte[] _lz4Scratch = [];
    private byte[] _decompressed = [];

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        var value = new byte[1024];
        random.NextBytes(value);
        _records = [new AppendRecord(value)];
        _batch = new byte[RecordBatchEncoder.MeasureUncompressed(_records)];
        _encoded = new byte[_batch.Length];
        RecordBatchEncoder.Encode(_encoded, _records, Timestamp, 1);

        _data16KiB = new byte[16 * 1024];
        _data1MiB = new byte[1024 * 1024];
        random.NextBytes(_data16KiB);
        random.NextBytes(_data1MiB);

        // Semi-compressible: text drawn from a vocabulary of 512 random "words" of 2-9 letters. LZ4 has no
        // entropy coder, so it gains only from repeated words: about 2:1 here (Program prints the ratio).
        var vocabulary = new byte[512][];
        for (int w = 0; w < vocabulary.Length; w++)
        {
            vocabulary[w] = new byte[random.Next(2, 10)];
            for (int c = 0; c < vocabulary[w].Length; c++)
            {
                vocabulary[w][c] = (byte)('a' + random.Next(26));
            }
        }

        _text64KiB = new byte[64 * 1024];
        for (int i = 0; i < _text64KiB.Length;)
        {
            byte[] word = vocabulary[random.Next(vocabulary.Length)];
            int n = Math.Min(word.Length, _text64KiB.Length - i);
            word.AsSpan(0, n).CopyTo(_text64KiB.AsSpan(i));
            i += n;
            if (i < _text64KiB.Length)
            {
                _text64KiB[i++] = (byte)' ';
            }
        }

        _lz4Scratch = new byte[Lz4Frame.MaxEncodedLength(_text64KiB.Length)];
        _frame = _lz4Scratch[..Lz4Frame.Encode(_text64KiB, _lz4Scratch)];
        _decompressed = new byte[_text64KiB.Length];
    }

    [Benchmark(Description = "Encode 1 KiB single-record batch")]
    public int Encode1KiB() => RecordBatchEncoder.Encode(_batch, _records, Timestamp, 1);

    [Benchmark(Description = "Check + enumerate 1 KiB single-record batch")]
    public long DecodeEnumerate1KiB()
    {
        if (RecordBatchDecoder.Check(_encoded, _encoded.Length, out RecordBatchHeader header) != BatchCheck.Valid)
        {
            return -1;
        }

        long sum = 0;
        foreach (RecordView record in RecordBatchDecoder.GetRecords(_encoded, header))
        {
            sum += record.Offset + record.Value.Length;
        }

        return sum;
    }

    [Benchmark(Description = "CRC32C 16 KiB")]
    public uint Crc32C16KiB() => Crc32C.Compute(_data16KiB);

    [Benchmark(Description = "CRC32C 1 MiB")]
    public uint Crc32C1MiB() => Crc32C.Compute(_data1MiB);

    [Benchmark(Description = "LZ4 frame compress 64 KiB")]
    public int Lz4Compress64KiB() => Lz4Frame.Encode(_text64KiB, _lz4Scratch);

    [Benchmark(Description = "LZ4 frame decompress 64 KiB")]
    public int Lz4Decompress64KiB()
    {
        Lz4Frame.Decode(_frame, _decompressed, out int written);
        return written;
    }

    /// <summary>Input size / frame size of the LZ4 benchmarks (valid after <see cref="Setup"/>).</summary>
    public double Lz4Ratio => (double)_text64KiB.Length / _frame.Length;
}
