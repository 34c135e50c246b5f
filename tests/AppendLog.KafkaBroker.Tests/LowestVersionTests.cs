using System.Buffers.Binary;
using System.Text;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// librdkafka 2.16 uses the highest versions the broker advertises, so the other tests exercise the top of each
/// range. These check the bottom of the ranges an older client would pick (Produce v3, Fetch v4, ListOffsets v1,
/// Metadata v1), byte layout included: each response is read field by field to its last byte.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class LowestVersionTests
{
    [Test]
    [CancelAfter(20_000)]
    public async Task ProduceV3_FetchV4_ListOffsetsV1_MetadataV1_RoundTrip(CancellationToken cancellationToken)
    {
        await using var broker = await TestBroker.StartAsync();
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        var batch = RawKafkaClient.Batch(-1, -1, -1, "one", "two");

        // Metadata v1 (auto-creates "old"): throttle-free layout with rack and controller id, no cluster id.
        var metadata = new Reader((await client.SendAsync(3, 1, new RawKafkaClient.Bytes().Int32(1).String("old").ToArray(), cancellationToken))!);
        Assert.That(metadata.Int32(), Is.EqualTo(1), "brokers");
        Assert.That((metadata.Int32(), metadata.String(), metadata.Int32() > 0, metadata.NullableString()), Is.EqualTo((0, "127.0.0.1", true, (string?)null)));
        Assert.That(metadata.Int32(), Is.EqualTo(0), "controller id");
        Assert.That((metadata.Int32(), metadata.Int16(), metadata.String(), metadata.Int8()), Is.EqualTo((1, (short)0, "old", (sbyte)0)));
        Assert.That((metadata.Int32(), metadata.Int16(), metadata.Int32(), metadata.Int32()), Is.EqualTo((1, (short)0, 0, 0)), "partition 0 led by node 0");
        Assert.That((metadata.Int32(), metadata.Int32(), metadata.Int32(), metadata.Int32()), Is.EqualTo((1, 0, 1, 0)), "replicas and isr");
        metadata.AssertEnd();

        // Produce v3: no log_start_offset in the answer.
        var produce = new Reader((await client.SendAsync(0, 3, RawKafkaClient.ProduceBody("old", 0, batch), cancellationToken))!);
        Assert.That((produce.Int32(), produce.String(), produce.Int32(), produce.Int32()), Is.EqualTo((1, "old", 1, 0)));
        Assert.That((produce.Int16(), produce.Int64(), produce.Int64()), Is.EqualTo(((short)0, 0L, -1L)), "error, base offset, append time");
        Assert.That(produce.Int32(), Is.EqualTo(0), "throttle");
        produce.AssertEnd();

        // Fetch v4: no log_start_offset, no session fields, no preferred replica.
        var fetchBody = new RawKafkaClient.Bytes().Int32(-1).Int32(0).Int32(1).Int32(1 << 20).Int8(0)
            .Int32(1).String("old").Int32(1).Int32(0).Int64(0).Int32(1 << 20).ToArray();
        var fetch = new Reader((await client.SendAsync(1, 4, fetchBody, cancellationToken))!);
        Assert.That((fetch.Int32(), fetch.Int32(), fetch.String(), fetch.Int32(), fetch.Int32()), Is.EqualTo((0, 1, "old", 1, 0)));
        Assert.That((fetch.Int16(), fetch.Int64(), fetch.Int64(), fetch.Int32()), Is.EqualTo(((short)0, 2L, 2L, -1)), "error, hw, lso, no aborted list");
        var records = fetch.Bytes();
        fetch.AssertEnd();
        Assert.That(records[12..], Is.EqualTo(batch[12..]), "the stored batch, byte for byte after its base offset");
        Assert.That(BinaryPrimitives.ReadInt64BigEndian(records), Is.EqualTo(0), "base offset assigned by the log");

        // ListOffsets v1: latest.
        var listBody = new RawKafkaClient.Bytes().Int32(-1).Int32(1).String("old").Int32(1).Int32(0).Int64(-1).ToArray();
        var list = new Reader((await client.SendAsync(2, 1, listBody, cancellationToken))!);
        Assert.That((list.Int32(), list.String(), list.Int32(), list.Int32()), Is.EqualTo((1, "old", 1, 0)));
        Assert.That((list.Int16(), list.Int64(), list.Int64()), Is.EqualTo(((short)0, -1L, 2L)));
        list.AssertEnd();
    }

    /// <summary>A response read field by field.</summary>
    private sealed class Reader(byte[] bytes)
    {
        private int _position;

        public sbyte Int8() => (sbyte)bytes[_position++];

        public short Int16() => BinaryPrimitives.ReadInt16BigEndian(Take(2));

        public int Int32() => BinaryPrimitives.ReadInt32BigEndian(Take(4));

        public long Int64() => BinaryPrimitives.ReadInt64BigEndian(Take(8));

        public string String() => Encoding.UTF8.GetString(Take(Int16()));

        public string? NullableString()
        {
            short length = Int16();
            return length < 0 ? null : Encoding.UTF8.GetString(Take(length));
        }

        public byte[] Bytes() => Take(Int32()).ToArray();

        public void AssertEnd() => Assert.That(_position, Is.EqualTo(bytes.Length), "the whole response was read");

        private ReadOnlySpan<byte> Take(int length)
        {
            var span = bytes.AsSpan(_position, length);
            _position += length;
            return span;
        }
    }
}
