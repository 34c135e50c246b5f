using System.Buffers.Binary;
using System.Collections.Concurrent;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>
/// A state machine that keeps every applied record by offset; its snapshot is every (offset, payload) pair. Its response
/// to a session record is the number of records it holds after applying it (8 bytes, little-endian): the same on every
/// member, and different for every record applied.
/// </summary>
internal sealed class DictionaryStateMachine(ConcurrentDictionary<long, byte[]> applied) : IReplicatedStateMachine
{
    public int Restores { get; private set; }

    public ValueTask ApplyAsync(CommittedRecord record, CancellationToken cancellationToken)
    {
        applied[record.Offset] = record.Payload.ToArray();
        return ValueTask.CompletedTask;
    }

    public ValueTask<ReadOnlyMemory<byte>> ApplyWithResponseAsync(CommittedRecord record, CancellationToken cancellationToken)
    {
        applied[record.Offset] = record.Payload.ToArray();
        var response = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(response, applied.Count);
        return ValueTask.FromResult<ReadOnlyMemory<byte>>(response);
    }

    public async ValueTask WriteSnapshotAsync(Stream destination, CancellationToken cancellationToken)
    {
        var header = new byte[12];
        foreach (var (offset, payload) in applied.OrderBy(p => p.Key))
        {
            BinaryPrimitives.WriteInt64LittleEndian(header, offset);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), payload.Length);
            await destination.WriteAsync(header, cancellationToken);
            await destination.WriteAsync(payload, cancellationToken);
        }
    }

    public async ValueTask RestoreSnapshotAsync(Stream source, CancellationToken cancellationToken)
    {
        applied.Clear();
        Restores++;
        var header = new byte[12];
        while (await source.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, cancellationToken) == header.Length)
        {
            var payload = new byte[BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8))];
            await source.ReadExactlyAsync(payload, cancellationToken);
            applied[BinaryPrimitives.ReadInt64LittleEndian(header)] = payload;
        }
    }
}
