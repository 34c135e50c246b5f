using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using AppendLog;

namespace KafkaBroker.Storage;

/// <summary>
/// Committed consumer-group offsets and the producer-id allocator, kept in one AppendLog log compacted by key
/// (Kafka's <c>__consumer_offsets</c> plays the same part). Every commit is one batch, durable before the commit is
/// answered; the in-memory map is rebuilt from the log at start (the last value of each key wins).
/// <code>
/// key                                      value
/// "offset\0{group}\0{topic}\0{partition}"  offset (int64) · leader epoch (int32) · has metadata (byte) ·
///                                          metadata (UTF-8)
/// "producer-id-block"                      the first producer id not handed out yet (int64)
/// </code>
/// </summary>
internal sealed class OffsetStore : IAsyncDisposable
{
    /// <summary>
    /// Producer ids reserved per durable write: InitProducerId costs an fdatasync only once per block, and a restart
    /// skips the rest of the block, so ids are never reused.
    /// </summary>
    public const long ProducerIdBlockSize = 1000;

    private const string ProducerIdBlockKey = "producer-id-block";
    /// <summary>offset (8) + leader epoch (4) + has-metadata flag (1).</summary>
    private const int ValueHeaderSize = 13;

    /// <summary>Small segments, so that compaction (after each roll) keeps the log near one value per key.</summary>
    private const long OffsetsSegmentSize = 8 << 20;

    private readonly SegmentedLog _log;
    private readonly ConcurrentDictionary<(string Group, string Topic, int Partition), CommittedOffset> _offsets =
        new();
    private readonly SemaphoreSlim _producerIdGate = new(1, 1);
    private long _nextProducerId;
    private long _producerIdBlockEnd;

    private OffsetStore(SegmentedLog log) => _log = log;

    /// <summary>Opens (or creates) the log in <paramref name="directory"/> and loads what it holds.</summary>
    public static async Task<OffsetStore> OpenAsync(string directory, CancellationToken cancellationToken)
    {
        var options = new LogOptions
        {
            Directory = directory,
            CompactionPolicy = CompactionPolicy.AfterRoll,
            SegmentSize = OffsetsSegmentSize,
        };
        var store = new OffsetStore(await SegmentedLog.OpenAsync(options, cancellationToken).ConfigureAwait(false));
        var records = store._log.ReadAsync(store._log.StartOffset, cancellationToken).ConfigureAwait(false);
        await foreach (var record in records)
        {
            store.Load(record);
        }

        store._nextProducerId = store._producerIdBlockEnd;
        return store;
    }

    /// <summary>The committed offset of a group's partition, or null.</summary>
    public CommittedOffset? Get(string group, string topic, int partition) =>
        _offsets.TryGetValue((group, topic, partition), out var committed) ? committed : null;

    /// <summary>The partitions a group has committed offsets for.</summary>
    public IEnumerable<(string Topic, int Partition, CommittedOffset Offset)> ForGroup(string group) =>
        _offsets.Where(e => e.Key.Group == group).Select(e => (e.Key.Topic, e.Key.Partition, e.Value));

    /// <summary>Stores a group's offsets as one batch and completes when it is durable.</summary>
    public async Task CommitAsync(
        string group,
        IReadOnlyList<(string Topic, int Partition, CommittedOffset Offset)> commits,
        CancellationToken cancellationToken)
    {
        if (commits.Count == 0)
        {
            return;
        }

        var records = commits
            .Select(c => new AppendRecord(OffsetKey(group, c.Topic, c.Partition), EncodeValue(c.Offset)))
            .ToArray();
        await _log.AppendBatchAsync(records, cancellationToken).ConfigureAwait(false);
        foreach (var (topic, partition, offset) in commits)
        {
            _offsets[(group, topic, partition)] = offset;
        }
    }

    /// <summary>A producer id never handed out before, also across restarts.</summary>
    public async Task<long> AllocateProducerIdAsync(CancellationToken cancellationToken)
    {
        await _producerIdGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_nextProducerId == _producerIdBlockEnd)
            {
                long end = _producerIdBlockEnd + ProducerIdBlockSize;
                var value = new byte[8];
                BinaryPrimitives.WriteInt64BigEndian(value, end);
                var record = new AppendRecord(Encoding.UTF8.GetBytes(ProducerIdBlockKey), value);
                await _log.AppendAsync(record, cancellationToken).ConfigureAwait(false);
                _producerIdBlockEnd = end;
            }

            return _nextProducerId++;
        }
        finally
        {
            _producerIdGate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _log.DisposeAsync().ConfigureAwait(false);
        _producerIdGate.Dispose();
    }

    private void Load(LogRecord record)
    {
        if (record.Key is null || record.Value is null)
        {
            return;
        }

        string[] parts = Encoding.UTF8.GetString(record.Key).Split('\0');
        if (parts is [ProducerIdBlockKey])
        {
            _producerIdBlockEnd = BinaryPrimitives.ReadInt64BigEndian(record.Value);
        }
        else if (parts is ["offset", var group, var topic, var partition] && record.Value.Length >= ValueHeaderSize)
        {
            int number = int.Parse(partition, System.Globalization.CultureInfo.InvariantCulture);
            _offsets[(group, topic, number)] = DecodeValue(record.Value);
        }
    }

    private static byte[] OffsetKey(string group, string topic, int partition) =>
        Encoding.UTF8.GetBytes($"offset\0{group}\0{topic}\0{partition}");

    private static byte[] EncodeValue(CommittedOffset offset)
    {
        int metadataBytes = offset.Metadata is null ? 0 : Encoding.UTF8.GetByteCount(offset.Metadata);
        var value = new byte[ValueHeaderSize + metadataBytes];
        BinaryPrimitives.WriteInt64BigEndian(value, offset.Offset);
        BinaryPrimitives.WriteInt32BigEndian(value.AsSpan(8), offset.LeaderEpoch);
        value[12] = offset.Metadata is null ? (byte)0 : (byte)1;
        Encoding.UTF8.GetBytes(offset.Metadata ?? "", value.AsSpan(ValueHeaderSize));
        return value;
    }

    private static CommittedOffset DecodeValue(byte[] value) => new(
        BinaryPrimitives.ReadInt64BigEndian(value),
        BinaryPrimitives.ReadInt32BigEndian(value.AsSpan(8)),
        value[12] == 0 ? null : Encoding.UTF8.GetString(value.AsSpan(ValueHeaderSize)));
}
