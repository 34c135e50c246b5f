using System.Runtime.CompilerServices;
using System.Text;
using AppendLog.Format;

namespace AppendLog;

/// <summary>Reading back by offset (the read-path work adds time lookups, caching and tailing).</summary>
public sealed partial class SegmentedLog
{
    /// <summary>
    /// Reads the records from <paramref name="fromOffset"/> up to the durable end offset as it was when the
    /// enumeration started. Every batch's checksum is verified before its records are returned.
    /// </summary>
    /// <param name="fromOffset">The first offset to return: from <see cref="StartOffset"/> to <see cref="DurableEndOffset"/>.</param>
    /// <param name="cancellationToken">Ends the enumeration.</param>
    /// <returns>The records, in offset order.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromOffset"/> is outside the readable range.</exception>
    /// <exception cref="LogCorruptedException">A batch failed its checksum (names file and position).</exception>
    /// <exception cref="ObjectDisposedException">The log is disposed.</exception>
    public async IAsyncEnumerable<LogRecord> ReadAsync(long fromOffset, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var batch in ReadBatchesAsync(fromOffset, cancellationToken).ConfigureAwait(false))
        {
            foreach (var record in DecodeRecords(batch))
            {
                if (record.Offset >= fromOffset)
                {
                    yield return record;
                }
            }
        }
    }

    private void AddRecords(ReadOnlySpan<byte> batch, in RecordBatchHeader header, string path, long position, long from, long end, List<LogRecord> into)
    {
        var records = header.Codec == CompressionCodec.None
            ? RecordBatchDecoder.GetRecords(batch, header)
            : Decompress(batch, header, path, position, out _);
        foreach (var r in records)
        {
            if (r.Offset < from || r.Offset >= end)
            {
                continue;
            }

            into.Add(new LogRecord(
                r.Offset,
                r.TimestampMs,
                header.PartitionLeaderEpoch,
                r.HasKey ? r.Key.ToArray() : null,
                r.HasValue ? r.Value.ToArray() : null,
                CopyHeaders(r)));
        }
    }

    /// <summary>
    /// The most bytes a compressed batch's records may inflate to: 64 × <see cref="LogOptions.MaximumBatchSize"/>, at most
    /// 256 MiB (the compactor's bound). The raw append path refuses batches beyond it, and the read path reads up to it,
    /// so every accepted batch reads back.
    /// </summary>
    private int DecompressedBatchLimit => (int)Math.Min(256L * 1024 * 1024, 64L * _options.MaximumBatchSize);

    private RecordEnumerator Decompress(ReadOnlySpan<byte> batch, in RecordBatchHeader header, string path, long position, out byte[] scratch)
    {
        scratch = new byte[Math.Max(4 * batch.Length, 64 * 1024)];
        while (true)
        {
            var status = RecordBatchDecoder.DecompressRecords(batch, header, scratch, out int written);
            if (status == System.Buffers.OperationStatus.Done)
            {
                return RecordBatchDecoder.GetDecompressedRecords(scratch.AsSpan(0, written), header);
            }

            if (scratch.Length >= DecompressedBatchLimit)
            {
                throw new LogCorruptedException(path, position, "the compressed batch inflates beyond the allowed size");
            }

            scratch = new byte[Math.Min(DecompressedBatchLimit, scratch.Length * 4L)];
        }
    }

    private static IReadOnlyList<RecordHeader> CopyHeaders(in RecordView record)
    {
        if (record.HeaderCount == 0)
        {
            return Array.Empty<RecordHeader>();
        }

        var headers = new RecordHeader[record.HeaderCount];
        int i = 0;
        foreach (var h in record.Headers)
        {
            string key = Encoding.UTF8.GetString(h.KeyUtf8);
            headers[i++] = h.HasValue ? new RecordHeader(key, h.Value.ToArray()) : RecordHeader.WithNullValue(key);
        }

        return headers;
    }
}
