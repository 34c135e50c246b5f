using System.Buffers.Binary;
using System.IO.Hashing;

namespace KafkaBroker.Protocol;

/// <summary>
/// The header fields of one Kafka RecordBatch v2 inside a produce request, and the checks the broker makes before
/// anything is stored. Layout (Kafka's <c>DefaultRecordBatch</c>; all big-endian): baseOffset @0 (8),
/// batchLength @8 (4, bytes after this field), partitionLeaderEpoch @12 (4), magic @16 (1), crc @17 (4, CRC-32C of
/// everything from @21 to the end), attributes @21 (2), lastOffsetDelta @23 (4), baseTimestamp @27 (8),
/// maxTimestamp @35 (8), producerId @43 (8), producerEpoch @51 (2), baseSequence @53 (4), recordCount @57 (4),
/// records @61. The broker never re-encodes a batch: it checks these fields and stores the bytes as they came.
/// </summary>
internal readonly struct RecordBatchView
{
    /// <summary>Bytes of the header; the records start here.</summary>
    public const int HeaderSize = 61;

    /// <summary>baseOffset and batchLength, which batchLength does not count (Kafka's LOG_OVERHEAD).</summary>
    public const int LogOverhead = 12;

    private const int CrcStart = 21;
    private const short TransactionalFlag = 0x10;
    private const short ControlFlag = 0x20;

    /// <summary>Highest codec id Kafka defines: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.</summary>
    private const int CodecMax = 4;

    private readonly ReadOnlyMemory<byte> _bytes;

    private RecordBatchView(ReadOnlyMemory<byte> bytes) => _bytes = bytes;

    /// <summary>A view of a batch already stored (its checks were made when it was produced).</summary>
    public static RecordBatchView OfStored(ReadOnlyMemory<byte> bytes) => new(bytes);

    /// <summary>The whole batch, as received.</summary>
    public ReadOnlyMemory<byte> Bytes => _bytes;

    public short Attributes => BinaryPrimitives.ReadInt16BigEndian(_bytes.Span[21..]);

    /// <summary>The compression codec id (attributes bits 0–2).</summary>
    public int Codec => Attributes & 0x7;

    public int LastOffsetDelta => BinaryPrimitives.ReadInt32BigEndian(_bytes.Span[23..]);

    public long MaxTimestamp => BinaryPrimitives.ReadInt64BigEndian(_bytes.Span[35..]);

    public long ProducerId => BinaryPrimitives.ReadInt64BigEndian(_bytes.Span[43..]);

    public short ProducerEpoch => BinaryPrimitives.ReadInt16BigEndian(_bytes.Span[51..]);

    public int BaseSequence => BinaryPrimitives.ReadInt32BigEndian(_bytes.Span[53..]);

    public int RecordCount => BinaryPrimitives.ReadInt32BigEndian(_bytes.Span[57..]);

    /// <summary>The sequence number of the batch's last record (sequences wrap from int.MaxValue to 0).</summary>
    public int LastSequence => (int)(((long)BaseSequence + LastOffsetDelta) % ((long)int.MaxValue + 1));

    /// <summary>
    /// Splits a produce request's record set into batches and checks each one; returns the first problem's error
    /// code, so that a partition's data is either stored whole or not at all.
    /// </summary>
    /// <param name="records">The partition's records field.</param>
    /// <param name="maxBatchBytes">The largest batch accepted.</param>
    /// <param name="batches">The batches, when the result is <see cref="ErrorCode.None"/>.</param>
    public static ErrorCode TrySplit(ReadOnlyMemory<byte> records, int maxBatchBytes, out List<RecordBatchView> batches)
    {
        batches = [];
        while (!records.IsEmpty)
        {
            var error = CheckFraming(records.Span, maxBatchBytes, out int totalSize);
            var view = new RecordBatchView(records[..totalSize]);
            if (error == ErrorCode.None)
            {
                error = CheckFields(view);
            }

            if (error != ErrorCode.None)
            {
                return error;
            }

            batches.Add(view);
            records = records[totalSize..];
        }

        return batches.Count == 0 ? ErrorCode.CorruptMessage : ErrorCode.None;
    }

    private static ErrorCode CheckFraming(ReadOnlySpan<byte> data, int maxBatchBytes, out int totalSize)
    {
        totalSize = 0;
        if (data.Length < HeaderSize)
        {
            return ErrorCode.CorruptMessage;
        }

        long total = (long)BinaryPrimitives.ReadInt32BigEndian(data[8..]) + LogOverhead;
        if (total < HeaderSize || total > data.Length)
        {
            return ErrorCode.CorruptMessage;
        }

        if (total > maxBatchBytes)
        {
            return ErrorCode.MessageTooLarge;
        }

        totalSize = (int)total;
        var batch = data[..totalSize];
        if (batch[16] != 2)
        {
            return ErrorCode.UnsupportedForMessageFormat;
        }

        uint crc = Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, batch[CrcStart..]);
        if (crc != BinaryPrimitives.ReadUInt32BigEndian(batch[17..]))
        {
            return ErrorCode.CorruptMessage;
        }

        return ErrorCode.None;
    }

    private static ErrorCode CheckFields(RecordBatchView view)
    {
        if (view.Codec > CodecMax)
        {
            return ErrorCode.UnsupportedCompressionType;
        }

        if ((view.Attributes & (TransactionalFlag | ControlFlag)) != 0)
        {
            // Transactions are not implemented: no transaction coordinator, no markers, no aborted-transaction list.
            return ErrorCode.InvalidRequest;
        }

        // A producer's batch holds one record per offset (Kafka's LogValidator: "lastOffsetDelta + 1 == count").
        if (view.LastOffsetDelta < 0 || view.RecordCount != view.LastOffsetDelta + 1)
        {
            return ErrorCode.InvalidRecord;
        }

        return ErrorCode.None;
    }
}
