using Microsoft.Extensions.Logging;

namespace AppendLog;

/// <summary>
/// Immutable options of a <see cref="SegmentedLog"/>, validated when the log opens. Every size is in bytes.
/// </summary>
public sealed record LogOptions
{
    /// <summary>The default <see cref="SegmentSize"/> (128 MiB, as Redpanda); see README, "Choosing the defaults".</summary>
    public const long DefaultSegmentSize = 128L * 1024 * 1024;

    /// <summary>The default <see cref="MaximumBatchSize"/> (1 MiB of encoded batch, as Kafka's message.max.bytes).</summary>
    public const int DefaultMaximumBatchSize = 1024 * 1024 + 61;

    /// <summary>The log's directory; created when missing. Required.</summary>
    public string Directory { get; init; } = "";

    /// <summary>The buffer pool; <see cref="LogBufferPool.Shared"/> when null.</summary>
    public LogBufferPool? BufferPool { get; init; }

    /// <summary>When appends are synced; <see cref="FlushPolicy.Default"/> when null.</summary>
    public FlushPolicy? FlushPolicy { get; init; }

    /// <summary>Whether segment files use O_DIRECT.</summary>
    public DirectIoMode DirectIo { get; init; } = DirectIoMode.Preferred;

    /// <summary>A segment is rolled when the next batch would take it past this size: 1 MiB to 16 GiB.</summary>
    public long SegmentSize { get; init; } = DefaultSegmentSize;

    /// <summary>A segment is rolled at the first append after it has been active this long; null for never.</summary>
    public TimeSpan? SegmentMaxAge { get; init; }

    /// <summary>
    /// The largest encoded batch accepted (header included): 1 KiB up to <see cref="SegmentSize"/>. When not set, it is
    /// <see cref="DefaultMaximumBatchSize"/>, or <see cref="SegmentSize"/> when segments are smaller than that (1 MiB
    /// segments take batches of up to 1 MiB).
    /// </summary>
    public int MaximumBatchSize
    {
        get => _maximumBatchSize ?? (int)Math.Min(DefaultMaximumBatchSize, SegmentSize);
        init => _maximumBatchSize = value;
    }

    private readonly int? _maximumBatchSize;

    /// <summary>The smallest step of space reserved ahead of the write head: 64 KiB up to <see cref="PreallocationMaximumStep"/>.</summary>
    public long PreallocationMinimumStep { get; init; } = 1024 * 1024;

    /// <summary>The largest step of space reserved ahead of the write head (the step grows while appends are fast).</summary>
    public long PreallocationMaximumStep { get; init; } = 32L * 1024 * 1024;

    /// <summary>
    /// <see cref="AppendLog.TimestampType.CreateTime"/> (default) keeps the appended timestamps;
    /// <see cref="AppendLog.TimestampType.LogAppendTime"/> stamps every batch with the log's clock when it is appended.
    /// </summary>
    public TimestampType TimestampType { get; init; } = TimestampType.CreateTime;

    /// <summary>
    /// How often, at most, the durable position is recorded in the log's checkpoint file (one small write and sync,
    /// off the append path, only while appends make progress). Recovery never truncates below the recorded position:
    /// damage there raises <see cref="LogCorruptedException"/> instead of being cut off as a torn tail. Damage to data
    /// made durable within the last interval before a crash is indistinguishable from a torn tail. A clean close
    /// always records the whole log. From 10 ms to 1 hour; default 1 second.
    /// </summary>
    public TimeSpan DurableCheckpointInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Retention by size: when the log's segments hold more than this many bytes, whole segments are deleted from the
    /// head (oldest first, never the active one). Null keeps everything. At least <see cref="SegmentSize"/>.
    /// </summary>
    public long? RetentionBytes { get; init; }

    /// <summary>
    /// Retention by age: a sealed segment whose newest record is older than this is deleted (oldest first). Null keeps
    /// everything.
    /// </summary>
    public TimeSpan? RetentionAge { get; init; }

    /// <summary>
    /// When key compaction runs: only when <see cref="SegmentedLog.CompactAsync"/> is called (the default), or also in
    /// the background after each segment is sealed, as retention does.
    /// </summary>
    public CompactionPolicy CompactionPolicy { get; init; } = CompactionPolicy.Manual;

    /// <summary>
    /// How long a tombstone (a keyed record with a null value) is kept after its timestamp before compaction removes it
    /// (once no older value of its key can remain), so that readers behind the head still see the deletion. Default
    /// 24 hours, as Kafka's <c>delete.retention.ms</c>. Zero removes tombstones at the first compaction.
    /// </summary>
    public TimeSpan TombstoneRetention { get; init; } = TimeSpan.FromHours(24);

    /// <summary>
    /// The memory a compaction's key map may use, in bytes (about 40 per distinct key). When the keys of the sealed
    /// segments need more, compaction works in passes over runs of segments, oldest first; a single segment with more
    /// keys than the limit is still compacted in one pass. Default 64 MiB (about 1.6 million keys); at least 1 MiB.
    /// </summary>
    public long CompactionKeyMapBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// How appended batches are compressed, in any of Kafka's four codecs as Kafka's clients write them (GZIP, Snappy,
    /// LZ4, ZSTD). Compression costs CPU on the append path and pays off for large, compressible batches; single small
    /// records rarely shrink. Batches of every codec are read whatever this option says.
    /// </summary>
    public CompressionCodec Compression { get; init; } = CompressionCodec.None;

    /// <summary>
    /// Bytes of data between two entries of a segment's sparse offset and time index (an entry also marks the first
    /// batch). A lookup reads at most this much more than it needs; 128 MiB segments need 4,096 entries at the default,
    /// 32 KiB, which costs one 64 KiB read per lookup (the read unit of the pool) and 96 KiB of index per full segment.
    /// From 4 KiB to 16 MiB. Applies to data appended from now on; indexes already written keep their entries.
    /// </summary>
    public int IndexIntervalBytes { get; init; } = 32 * 1024;

    /// <summary>
    /// The cache of batches read back, shared with other logs (its budget is global); <see cref="BatchCache.Shared"/>
    /// when null. A <see cref="BatchCache"/> with a budget of 0 disables caching.
    /// </summary>
    public BatchCache? BatchCache { get; init; }

    /// <summary>
    /// The most a sequential reader reads ahead, in bytes: its read-ahead starts at one pool chunk (64 KiB) and doubles
    /// on each refill while it stays sequential, up to this (and an eighth of the buffer pool's budget); the next
    /// stretch is read in the background, as up to 8 reads of consecutive chunks in flight (at 4 MiB: 8 reads of
    /// 512 KiB), while the current one is consumed. From one pool chunk to 64 MiB; 4 MiB by default (the disk this was
    /// measured on serves 64 KiB requests at about a third of its 1 MiB rate). Each scanning reader holds up to this much
    /// of the pool; a seek drops it back to one chunk.
    /// </summary>
    public long MaximumReadAhead { get; init; } = 4L * 1024 * 1024;

    /// <summary>The read handles of this log's segments (shared by a <see cref="LogManager"/>'s logs); a private cache when null.</summary>
    internal Segments.ReadFileCache? ReadFiles { get; init; }

    /// <summary>
    /// Set by a <see cref="LogManager"/> for the logs it opens: their active-segment handles count against its descriptor
    /// cap, and they take no lock file of their own (the manager holds its root's lock; its registry opens each log
    /// once). Null for a standalone log.
    /// </summary>
    internal Segments.DescriptorBudget? Descriptors { get; init; }

    /// <summary>Internal switches of the write pipeline, for side-by-side measurement and tests.</summary>
    internal Appender.PipelineTuning Tuning { get; init; } = Appender.PipelineTuning.Default;

    /// <summary>
    /// The syncs shared with the other logs of a <see cref="LogManager"/> (<see cref="LogManagerOptions.ShareFileSystemSync"/>),
    /// or null: this log runs its own fdatasyncs on the I/O workers. Set by the manager only.
    /// </summary>
    internal Appender.SharedSync? SharedSync { get; init; }

    /// <summary>Where this log's I/O runs: a manager's I/O loop (<c>LogManagerOptions.RingIoLoop</c>), or the process's I/O workers when null. Set by the manager only.</summary>
    internal Appender.IIoExecutor? IoExecutor { get; init; }

    /// <summary>The clock used for record timestamps, segment age and flush delays; <see cref="TimeProvider.System"/> when null.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>Where the log reports fallbacks, recovery actions and faults; silent when null.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>Checks every option; <c>OpenAsync</c>/<c>Create</c> call this, and hosts can call it at startup.</summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it and its rule.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Directory))
        {
            throw new ArgumentException("LogOptions.Directory is required.", nameof(Directory));
        }

        Check(SegmentSize >= 1024 * 1024 && SegmentSize <= 16L * 1024 * 1024 * 1024, nameof(SegmentSize), SegmentSize, "must be from 1 MiB to 16 GiB");
        Check(MaximumBatchSize >= 1024, nameof(MaximumBatchSize), MaximumBatchSize, "must be at least 1 KiB");
        if (MaximumBatchSize > SegmentSize)
        {
            // Two options clash, so neither alone is out of range: name both and what to change.
            throw new ArgumentException(
                $"LogOptions.MaximumBatchSize ({MaximumBatchSize}) is larger than LogOptions.SegmentSize ({SegmentSize}): a batch must fit in one segment. Lower MaximumBatchSize to at most SegmentSize, or raise SegmentSize.",
                nameof(MaximumBatchSize));
        }
        Check(PreallocationMaximumStep >= PreallocationMinimumStep && PreallocationMaximumStep % 4096 == 0, nameof(PreallocationMaximumStep), PreallocationMaximumStep, "must be a multiple of 4096, at least PreallocationMinimumStep");
        Check(DurableCheckpointInterval >= TimeSpan.FromMilliseconds(10) && DurableCheckpointInterval <= TimeSpan.FromHours(1), nameof(DurableCheckpointInterval), DurableCheckpointInterval, "must be from 10 ms to 1 hour");
        Check(SegmentMaxAge is null || SegmentMaxAge > TimeSpan.Zero, nameof(SegmentMaxAge), SegmentMaxAge, "must be positive");
        Check(RetentionBytes is null || RetentionBytes >= SegmentSize, nameof(RetentionBytes), RetentionBytes, "must be at least SegmentSize");
        Check(RetentionAge is null || RetentionAge > TimeSpan.Zero, nameof(RetentionAge), RetentionAge, "must be positive");
        Check(IndexIntervalBytes >= 4096 && IndexIntervalBytes <= 16 * 1024 * 1024, nameof(IndexIntervalBytes), IndexIntervalBytes, "must be from 4 KiB to 16 MiB");
        Check(MaximumReadAhead >= 64 * 1024 && MaximumReadAhead <= 64L * 1024 * 1024, nameof(MaximumReadAhead), MaximumReadAhead, "must be from 64 KiB to 64 MiB");
        Check(Enum.IsDefined(CompactionPolicy), nameof(CompactionPolicy), CompactionPolicy, "is not a defined value");
        Check(TombstoneRetention >= TimeSpan.Zero, nameof(TombstoneRetention), TombstoneRetention, "must not be negative");
        Check(CompactionKeyMapBytes >= 1024 * 1024, nameof(CompactionKeyMapBytes), CompactionKeyMapBytes, "must be at least 1 MiB");
        Check(Enum.IsDefined(TimestampType), nameof(TimestampType), TimestampType, "is not a defined value");
        Check(Enum.IsDefined(Compression), nameof(Compression), Compression, "is not a supported codec");
        Check(!Enum.IsDefined(DirectIo) is false, nameof(DirectIo), DirectIo, "is not a defined value");
    }

    private static void Check(bool ok, string name, object? value, string rule)
    {
        if (!ok)
        {
            throw new ArgumentOutOfRangeException(name, value, $"LogOptions.{name} {rule}.");
        }
    }
}
