using System.Buffers.Binary;
using AppendLog.Format;
using AppendLog.Tests.Format;

namespace AppendLog.Tests.Integrity;

/// <summary>Hand-made records and batches for validation tests: every field under the test's control.</summary>
internal static class RawBatchBuilder
{
    /// <summary>One record: [length varint][attributes, timestampDelta, offsetDelta, key, value, headers].</summary>
    public static byte[] Record(int offsetDelta, byte[]? key = null, byte[]? value = null, (byte[]? Key, byte[]? Value)[]? headers = null, long timestampDelta = 0)
    {
        var body = new List<byte> { 0 };
        body.AddRange(Varlong(timestampDelta));
        body.AddRange(Varint(offsetDelta));
        body.AddRange(Bytes(key));
        body.AddRange(Bytes(value));
        headers ??= [];
        body.AddRange(Varint(headers.Length));
        foreach (var (k, v) in headers)
        {
            body.AddRange(Bytes(k));
            body.AddRange(Bytes(v));
        }

        return [.. Varint(body.Count), .. body];
    }

    /// <summary>Records with offset deltas 0 … count - 1 and small distinct values.</summary>
    public static byte[] Records(int count) => [.. Enumerable.Range(0, count).SelectMany(i => Record(i, value: [(byte)i, 0xAB]))];

    public static byte[] Varint(int value)
    {
        var buffer = new byte[5];
        return buffer[..AppendLog.Format.Varint.Write(buffer, value)];
    }

    public static byte[] Varlong(long value)
    {
        var buffer = new byte[10];
        return buffer[..AppendLog.Format.Varint.Write(buffer, value)];
    }

    private static byte[] Bytes(byte[]? bytes) => bytes is null ? Varint(-1) : [.. Varint(bytes.Length), .. bytes];

    /// <summary>A batch around <paramref name="records"/> (compressed with <paramref name="codec"/> by our encoder), CRC sealed.</summary>
    public static byte[] Batch(byte[] records, int recordCount, int lastOffsetDelta, CompressionCodec codec = CompressionCodec.None)
    {
        byte[] payload = codec == CompressionCodec.None ? records : Compress(codec, records);
        return Batches.Raw(payload, recordCount, lastOffsetDelta, codec);
    }

    /// <summary>A batch with the given payload bytes and codec bits as they are (no compression applied), CRC sealed.</summary>
    public static byte[] BatchWithPayload(byte[] payload, int recordCount, int lastOffsetDelta, short codecBits) =>
        Batches.Raw(payload, recordCount, lastOffsetDelta, (CompressionCodec)codecBits);

    public static byte[] Compress(CompressionCodec codec, byte[] records)
    {
        var output = new byte[BatchCompression.MaxCompressedLength(codec, records.Length)];
        int n = BatchCompression.Compress(codec, records, output);
        return output[..n];
    }

    /// <summary>A valid uncompressed batch of <paramref name="count"/> records.</summary>
    public static byte[] Valid(int count = 3) => Batch(Records(count), count, count - 1);

    /// <summary>Edits a header field, then reseals the CRC (fields before offset 21 are outside it anyway).</summary>
    public static byte[] WithInt32(byte[] batch, int offset, int value)
    {
        byte[] copy = [.. batch];
        BinaryPrimitives.WriteInt32BigEndian(copy.AsSpan(offset), value);
        Batches.Reseal(copy);
        return copy;
    }
}
