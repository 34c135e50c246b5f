namespace AppendLog.Format;

/// <summary>
/// Constants of Kafka's RecordBatch v2 ("magic 2") layout, which AppendLog writes byte for byte so that
/// batches can later be served verbatim to Kafka-protocol consumers.
/// </summary>
/// <remarks>
/// <para>
/// The 61-byte header, all integers big-endian (source: Apache Kafka, <c>DefaultRecordBatch.java</c>, and
/// the protocol guide's "Record Batch" section):
/// </para>
/// <code>
/// offset size field                  covered by CRC
///      0    8 baseOffset             no  (the log assigns offsets after encoding)
///      8    4 batchLength            no  (bytes after this field: TotalSize - 12)
///     12    4 partitionLeaderEpoch   no  (we store the Raft term here; patched after encoding)
///     16    1 magic = 2              no
///     17    4 crc (CRC32C, unsigned) no  (it covers offset 21 to the end of the batch)
///     21    2 attributes             yes (bits 0-2 codec: 0 none, 1 GZIP, 2 Snappy, 3 LZ4, 4 ZSTD; bit 3 timestamp
///                                            type, 1 = LogAppendTime; bit 4 transactional; bit 5 control)
///     23    4 lastOffsetDelta        yes
///     27    8 baseTimestamp          yes (Unix milliseconds)
///     35    8 maxTimestamp           yes
///     43    8 producerId = -1        yes
///     51    2 producerEpoch = -1     yes
///     53    4 baseSequence = -1      yes
///     57    4 recordCount            yes
///     61    . records                yes (LZ4 frame of the records when the codec is LZ4)
/// </code>
/// <para>
/// Because baseOffset and partitionLeaderEpoch sit outside the CRC, a bit flip there is not caught by the
/// checksum. The log catches a damaged baseOffset by requiring every batch it reads to start at the offset
/// it expects next (ARCHITECTURE §3, "a batch is valid only if its CRC matches and its base offset is the
/// one expected next"). Nothing in the batch detects a damaged epoch (Kafka has the same gap, and keeps
/// leader epochs in a separate checkpoint file): whoever relies on the stored term, such as Raft's
/// last-log-term in elections, must cross-check it against a checksummed record of term start offsets.
/// </para>
/// </remarks>
internal static class RecordBatch
{
    /// <summary>Size of the batch header in bytes; the records start here.</summary>
    public const int HeaderSize = 61;

    /// <summary>
    /// Bytes before the point from which <see cref="RecordBatchHeader.BatchLength"/> counts: baseOffset (8)
    /// plus batchLength itself (4). Kafka calls this <c>LOG_OVERHEAD</c>.
    /// </summary>
    public const int LogOverhead = 12;

    /// <summary>The smallest legal batchLength: a header with no records, 61 - 12 = 49 bytes.</summary>
    public const int BatchLengthMin = HeaderSize - LogOverhead;

    /// <summary>The only magic (format version) this library reads or writes.</summary>
    public const byte CurrentMagic = 2;

    /// <summary>Offset of baseOffset (int64).</summary>
    public const int BaseOffsetOffset = 0;

    /// <summary>Offset of batchLength (int32).</summary>
    public const int BatchLengthOffset = 8;

    /// <summary>Offset of partitionLeaderEpoch (int32).</summary>
    public const int PartitionLeaderEpochOffset = 12;

    /// <summary>Offset of magic (int8).</summary>
    public const int MagicOffset = 16;

    /// <summary>Offset of crc (uint32).</summary>
    public const int CrcOffset = 17;

    /// <summary>Offset of attributes (int16); the CRC covers this byte to the end of the batch.</summary>
    public const int AttributesOffset = 21;

    /// <summary>Offset of lastOffsetDelta (int32).</summary>
    public const int LastOffsetDeltaOffset = 23;

    /// <summary>Offset of baseTimestamp (int64).</summary>
    public const int BaseTimestampOffset = 27;

    /// <summary>Offset of maxTimestamp (int64).</summary>
    public const int MaxTimestampOffset = 35;

    /// <summary>Offset of producerId (int64).</summary>
    public const int ProducerIdOffset = 43;

    /// <summary>Offset of producerEpoch (int16).</summary>
    public const int ProducerEpochOffset = 51;

    /// <summary>Offset of baseSequence (int32).</summary>
    public const int BaseSequenceOffset = 53;

    /// <summary>Offset of recordCount (int32).</summary>
    public const int RecordCountOffset = 57;

    /// <summary>Offset of the first record (or of the LZ4 frame holding the records).</summary>
    public const int RecordsOffset = 61;

    /// <summary>The bits of attributes that hold the compression codec (Kafka: <c>COMPRESSION_CODEC_MASK</c>).</summary>
    public const short CodecMask = 0x07;

    /// <summary>Attribute bit 3: the timestamp type; set = LogAppendTime (every record's timestamp is maxTimestamp).</summary>
    public const short LogAppendTimeFlag = 0x08;

    /// <summary>Attribute bit 4: the batch belongs to a transaction.</summary>
    public const short TransactionalFlag = 0x10;

    /// <summary>Attribute bit 5: the batch holds a control record (a transaction marker).</summary>
    public const short ControlFlag = 0x20;

    /// <summary>producerId of a batch written without an idempotent producer.</summary>
    public const long NoProducerId = -1;

    /// <summary>producerEpoch of a batch written without an idempotent producer.</summary>
    public const short NoProducerEpoch = -1;

    /// <summary>baseSequence of a batch written without an idempotent producer.</summary>
    public const int NoSequence = -1;
}
