using System.Buffers.Binary;
using System.Text;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// The group coordinator's refusals, over the raw wire client: commits and heartbeats from a wrong generation or an
/// unknown member, and a member removed when its session lapses (on a fake clock, so no test waits 6 s).
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class GroupProtocolTests
{
    private const short OffsetCommit = 8;
    private const short OffsetFetch = 9;
    private const short JoinGroup = 11;
    private const short Heartbeat = 12;
    private const short SyncGroup = 14;
    private const short None = 0;
    private const short IllegalGeneration = 22;
    private const short UnknownMemberId = 25;

    [Test]
    [CancelAfter(20_000)]
    public async Task OffsetCommit_FromAWrongGenerationOrAStranger_IsRefused_AndStoresNothing(CancellationToken cancellationToken)
    {
        await using var broker = await StartWithTopicAsync("t", time: null);
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        var (memberId, generation) = await JoinAndSyncAsync(client, cancellationToken);

        short wrongGeneration = await CommitAsync(client, generation + 1, memberId, offset: 5, cancellationToken);
        short stranger = await CommitAsync(client, generation, "stranger", offset: 6, cancellationToken);
        long afterRefusals = await FetchCommittedAsync(client, cancellationToken);
        short member = await CommitAsync(client, generation, memberId, offset: 7, cancellationToken);
        long afterCommit = await FetchCommittedAsync(client, cancellationToken);

        Assert.That((wrongGeneration, stranger, member), Is.EqualTo((IllegalGeneration, UnknownMemberId, None)));
        Assert.That(afterRefusals, Is.EqualTo(-1), "no offset stored by a refused commit");
        Assert.That(afterCommit, Is.EqualTo(7));
    }

    [Test]
    [CancelAfter(20_000)]
    public async Task Member_WhoseSessionLapses_IsRemoved(CancellationToken cancellationToken)
    {
        var time = new FakeTimeProvider();
        await using var broker = await StartWithTopicAsync("t", time);
        await using var client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers, cancellationToken);
        var (memberId, generation) = await JoinAndSyncAsync(client, cancellationToken);

        short beforeExpiry = await HeartbeatAsync(client, generation, memberId, cancellationToken);
        short wrongGeneration = await HeartbeatAsync(client, generation + 1, memberId, cancellationToken);
        time.Advance(TimeSpan.FromSeconds(5)); // within the 6 s session
        short withinSession = await HeartbeatAsync(client, generation, memberId, cancellationToken);
        time.Advance(TimeSpan.FromSeconds(7)); // past it, with no heartbeat
        short afterExpiry = await EventuallyAsync(() => HeartbeatAsync(client, generation, memberId, cancellationToken), UnknownMemberId);

        Assert.That((beforeExpiry, wrongGeneration, withinSession), Is.EqualTo((None, IllegalGeneration, None)));
        Assert.That(afterExpiry, Is.EqualTo(UnknownMemberId));
    }

    private static async Task<TestBroker> StartWithTopicAsync(string topic, TimeProvider? time)
    {
        var broker = await TestBroker.StartAsync(o => o with
        {
            InitialRebalanceDelay = TimeSpan.Zero,
            TimeProvider = time ?? TimeProvider.System,
        });
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = 1, ReplicationFactor = 1 }]);
        return broker;
    }

    /// <summary>JoinGroup v5 then SyncGroup v3 as the only member (hence the leader).</summary>
    private static async Task<(string MemberId, int Generation)> JoinAndSyncAsync(RawKafkaClient client, CancellationToken cancellationToken)
    {
        var join = new RawKafkaClient.Bytes().String("g").Int32(6000).Int32(6000).String("").NullString()
            .String("consumer").Int32(1).String("range").Int32(1).Raw([0]).ToArray();
        var joined = (await client.SendAsync(JoinGroup, 5, join, cancellationToken))!;
        Assert.That(BinaryPrimitives.ReadInt16BigEndian(joined.AsSpan(4)), Is.EqualTo(None), "joined");
        int generation = BinaryPrimitives.ReadInt32BigEndian(joined.AsSpan(6));
        int position = 10;
        position += 2 + BinaryPrimitives.ReadInt16BigEndian(joined.AsSpan(position)); // protocol name
        position += 2 + BinaryPrimitives.ReadInt16BigEndian(joined.AsSpan(position)); // leader
        short idLength = BinaryPrimitives.ReadInt16BigEndian(joined.AsSpan(position));
        string memberId = Encoding.UTF8.GetString(joined.AsSpan(position + 2, idLength));

        var sync = new RawKafkaClient.Bytes().String("g").Int32(generation).String(memberId).NullString()
            .Int32(1).String(memberId).Int32(1).Raw([1]).ToArray();
        var synced = (await client.SendAsync(SyncGroup, 3, sync, cancellationToken))!;
        Assert.That(BinaryPrimitives.ReadInt16BigEndian(synced.AsSpan(4)), Is.EqualTo(None), "synced");
        return (memberId, generation);
    }

    /// <summary>OffsetCommit v7 of one offset for t-0; returns its error code.</summary>
    private static async Task<short> CommitAsync(RawKafkaClient client, int generation, string memberId, long offset, CancellationToken cancellationToken)
    {
        var body = new RawKafkaClient.Bytes().String("g").Int32(generation).String(memberId).NullString()
            .Int32(1).String("t").Int32(1).Int32(0).Int64(offset).Int32(-1).NullString().ToArray();
        var response = (await client.SendAsync(OffsetCommit, 7, body, cancellationToken))!;
        // throttle, [topics: 1] name, [partitions: 1] index, error
        return BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(4 + 4 + 2 + 1 + 4 + 4));
    }

    /// <summary>OffsetFetch v5 of t-0; returns the committed offset (-1 when none).</summary>
    private static async Task<long> FetchCommittedAsync(RawKafkaClient client, CancellationToken cancellationToken)
    {
        var body = new RawKafkaClient.Bytes().String("g").Int32(1).String("t").Int32(1).Int32(0).ToArray();
        var response = (await client.SendAsync(OffsetFetch, 5, body, cancellationToken))!;
        // throttle, [topics: 1] name, [partitions: 1] index, offset
        return BinaryPrimitives.ReadInt64BigEndian(response.AsSpan(4 + 4 + 2 + 1 + 4 + 4));
    }

    /// <summary>Heartbeat v3; returns its error code.</summary>
    private static async Task<short> HeartbeatAsync(RawKafkaClient client, int generation, string memberId, CancellationToken cancellationToken)
    {
        var body = new RawKafkaClient.Bytes().String("g").Int32(generation).String(memberId).NullString().ToArray();
        var response = (await client.SendAsync(Heartbeat, 3, body, cancellationToken))!;
        return BinaryPrimitives.ReadInt16BigEndian(response.AsSpan(4));
    }

    /// <summary>
    /// Repeats <paramref name="attempt"/> until it gives <paramref name="expected"/> (the coordinator's tick runs on
    /// the fake clock's timer, which fires on the thread pool after <c>Advance</c>); at most 100 tries, 10 ms apart.
    /// </summary>
    private static async Task<short> EventuallyAsync(Func<Task<short>> attempt, short expected)
    {
        short result = await attempt();
        for (int i = 0; i < 100 && result != expected; i++)
        {
            await Task.Delay(10);
            result = await attempt();
        }

        return result;
    }
}
