using System.Buffers.Binary;
using System.Collections.Concurrent;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>
/// A state machine whose snapshot carries, after every applied (offset, payload) pair, a blob of
/// <see cref="BlobBytes"/> generated on the fly: a snapshot as large as a test wants that no member ever holds in memory.
/// Restoring checks the blob byte by byte as it streams past. <see cref="SnapshotDelay"/> makes writing a snapshot slow.
/// </summary>
internal sealed class BlobStateMachine(ConcurrentDictionary<long, byte[]> applied, long blobBytes) : IReplicatedStateMachine
{
    private const int BlockBytes = 64 * 1024;

    public long BlobBytes => blobBytes;

    public TimeSpan SnapshotDelay { get; init; }

    /// <summary>Blob bytes of the last restore, and whether each was the one expected there.</summary>
    public (long Bytes, bool Intact) LastRestoredBlob { get; private set; }

    public int SnapshotsWritten { get; private set; }

    private static byte Expected(long position) => (byte)((position * 131) ^ (position >> 16));

    public ValueTask ApplyAsync(CommittedRecord record, CancellationToken cancellationToken)
    {
        applied[record.Offset] = record.Payload.ToArray();
        return ValueTask.CompletedTask;
    }

    public async ValueTask WriteSnapshotAsync(Stream destination, CancellationToken cancellationToken)
    {
        if (SnapshotDelay > TimeSpan.Zero)
        {
            await Task.Delay(SnapshotDelay, cancellationToken);
        }

        var records = applied.OrderBy(p => p.Key).ToList();
        var header = new byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(header, records.Count);
        await destination.WriteAsync(header.AsMemory(0, 4), cancellationToken);
        foreach (var (offset, payload) in records)
        {
            BinaryPrimitives.WriteInt64LittleEndian(header, offset);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), payload.Length);
            await destination.WriteAsync(header, cancellationToken);
            await destination.WriteAsync(payload, cancellationToken);
        }

        BinaryPrimitives.WriteInt64LittleEndian(header, blobBytes);
        await destination.WriteAsync(header.AsMemory(0, 8), cancellationToken);
        var block = new byte[BlockBytes];
        for (long position = 0; position < blobBytes; position += BlockBytes)
        {
            var count = (int)Math.Min(BlockBytes, blobBytes - position);
            for (var i = 0; i < count; i++)
            {
                block[i] = Expected(position + i);
            }

            await destination.WriteAsync(block.AsMemory(0, count), cancellationToken);
        }

        SnapshotsWritten++;
    }

    public async ValueTask RestoreSnapshotAsync(Stream source, CancellationToken cancellationToken)
    {
        applied.Clear();
        var header = new byte[12];
        await source.ReadExactlyAsync(header.AsMemory(0, 4), cancellationToken);
        var count = BinaryPrimitives.ReadInt32LittleEndian(header);
        for (var r = 0; r < count; r++)
        {
            await source.ReadExactlyAsync(header, cancellationToken);
            var payload = new byte[BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8))];
            await source.ReadExactlyAsync(payload, cancellationToken);
            applied[BinaryPrimitives.ReadInt64LittleEndian(header)] = payload;
        }

        await source.ReadExactlyAsync(header.AsMemory(0, 8), cancellationToken);
        var length = BinaryPrimitives.ReadInt64LittleEndian(header);
        var block = new byte[BlockBytes];
        long position = 0;
        var intact = true;
        int read;
        while ((read = await source.ReadAsync(block, cancellationToken)) > 0)
        {
            for (var i = 0; i < read; i++)
            {
                intact &= block[i] == Expected(position + i);
            }

            position += read;
        }

        LastRestoredBlob = (position, intact && position == length);
    }
}
