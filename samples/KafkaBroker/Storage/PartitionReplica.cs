using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using AppendLog.Raft;
using KafkaBroker.Protocol;

namespace KafkaBroker.Storage;

/// <summary>
/// The Raft side of a replicated partition: one <see cref="ReplicatedLog"/> with a member on every broker. The leader
/// replicates each produced batch as one payload, prefixed with a 16-byte tag (this process's random incarnation and
/// a counter). Every member applies committed payloads in order to its <see cref="PartitionLog"/>, which checks the
/// idempotent producer's sequence and appends the batch to a local log that assigns the Kafka offsets (the same on
/// every member, since every member applies the same batches in the same order). The member whose incarnation is in
/// the tag hands the outcome to the produce that is waiting for it.
/// <para>
/// AppendLog.Raft offers no raw-batch replication, so the batch travels as one record's payload inside the group's own
/// record batch and is stored twice on every member (the Raft log, and the local log that serves fetches); and the
/// plain <c>Apply</c> callback returns no response, hence the tag.
/// </para>
/// </summary>
internal sealed class PartitionReplica : IAsyncDisposable
{
    public const int TagSize = 16;

    /// <summary>
    /// Tells this member's payloads from those of the other members and of its own earlier runs (replayed at start);
    /// random per member, so brokers hosted in one process do not share it either.
    /// </summary>
    private readonly long _incarnation = BitConverter.ToInt64(RandomNumberGenerator.GetBytes(8));

    private readonly ConcurrentDictionary<long, TaskCompletionSource<(ErrorCode Error, long BaseOffset)>> _waiting = new();
    private long _nextTag;

    private PartitionReplica(ReplicatedLog log) => Log = log;

    public ReplicatedLog Log { get; }

    /// <summary>The current leader's broker id, or -1 while none is known.</summary>
    public int LeaderNodeId
    {
        get
        {
            var leader = Log.Status.LeaderId;
            return leader.IsNone ? -1 : (int)leader.Value;
        }
    }

    /// <summary>The Raft term, given to clients as the partition's leader epoch.</summary>
    public int LeaderEpoch => (int)Math.Min(Log.Status.Term, int.MaxValue);

    /// <summary>Creates the member and starts it: committed batches are replayed into <paramref name="partition"/>.</summary>
    public static async Task<PartitionReplica> StartAsync(
        PartitionLog partition, BrokerOptions options, string directory, int raftPortOffset, CancellationToken cancellationToken)
    {
        var members = options.Cluster!.ToDictionary(
            n => new RaftNodeId((ulong)n.NodeId),
            n => new IPEndPoint(ResolveAddress(n.Host), n.RaftPortBase + raftPortOffset));
        PartitionReplica? replica = null;
        var log = new ReplicatedLog(new ReplicatedLogOptions
        {
            NodeId = new RaftNodeId((ulong)options.NodeId),
            Members = members,
            Directory = directory,
            Apply = (record, ct) => replica!.ApplyAsync(partition, record, ct),
            Raft = new RaftOptions
            {
                ElectionTimeoutMinimum = options.ElectionTimeout,
                ElectionTimeoutMaximum = options.ElectionTimeout * 2,
                HeartbeatInterval = options.ElectionTimeout / 6,
            },
        });
        replica = new PartitionReplica(log);
        await log.StartAsync(cancellationToken).ConfigureAwait(false);
        return replica;
    }

    /// <summary>
    /// Replicates one batch and waits until a quorum has it durable and this member has applied it.
    /// </summary>
    /// <returns>The outcome of the apply (the producer check) and the batch's base offset.</returns>
    public async Task<(ErrorCode Error, long BaseOffset)> ReplicateAsync(
        RecordBatchView batch, CancellationToken cancellationToken)
    {
        long tag = Interlocked.Increment(ref _nextTag);
        var outcome = new TaskCompletionSource<(ErrorCode, long)>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[tag] = outcome;
        var payload = new byte[TagSize + batch.Bytes.Length];
        BinaryPrimitives.WriteInt64BigEndian(payload, _incarnation);
        BinaryPrimitives.WriteInt64BigEndian(payload.AsSpan(8), tag);
        batch.Bytes.Span.CopyTo(payload.AsSpan(TagSize));
        try
        {
            await Log.ReplicateAsync(payload, cancellationToken).ConfigureAwait(false);
            return await outcome.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (NotLeaderException)
        {
            return (ErrorCode.NotLeaderOrFollower, -1);
        }
        catch (ReplicationTimeoutException)
        {
            return (ErrorCode.RequestTimedOut, -1); // outcome unknown: an idempotent producer's retry is recognised
        }
        catch (InvalidOperationException)
        {
            return (ErrorCode.KafkaStorageError, -1); // the member stopped after a failure
        }
        finally
        {
            _waiting.TryRemove(tag, out _);
        }
    }

    public ValueTask DisposeAsync() => Log.DisposeAsync();

    private async ValueTask ApplyAsync(PartitionLog partition, CommittedRecord record, CancellationToken cancellationToken)
    {
        var payload = record.Payload;
        if (payload.Length < TagSize + RecordBatchView.HeaderSize)
        {
            return; // not a batch this broker replicated (nothing else is proposed to the group)
        }

        var outcome = await partition.ApplyCommittedAsync(payload[TagSize..], cancellationToken).ConfigureAwait(false);
        long incarnation = BinaryPrimitives.ReadInt64BigEndian(payload.Span);
        long tag = BinaryPrimitives.ReadInt64BigEndian(payload.Span[8..]);
        if (incarnation == _incarnation && _waiting.TryGetValue(tag, out var waiting))
        {
            waiting.TrySetResult(outcome);
        }
    }

    private static IPAddress ResolveAddress(string host) =>
        IPAddress.TryParse(host, out var address) ? address : Dns.GetHostAddresses(host)[0];
}
