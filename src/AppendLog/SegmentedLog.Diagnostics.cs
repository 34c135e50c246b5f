using AppendLog.Diagnostics;

namespace AppendLog;

/// <summary>What the log reports about itself: the mode it obtained at open, and the state the metrics observe.</summary>
public sealed partial class SegmentedLog
{
    /// <summary>The pool this log rents its buffers from.</summary>
    internal LogBufferPool BufferPool => _writer.Pool;

    /// <summary>
    /// Disk space the log holds: each sealed segment's size (sealed files are trimmed to it), and for unsealed
    /// segments the larger of the data size and the reserved length (preallocation ahead of the write head).
    /// </summary>
    internal long DiskBytes
    {
        get
        {
            lock (_writer.SyncRoot)
            {
                long total = 0;
                foreach (var segment in _segments)
                {
                    total += segment.IsSealed ? segment.Size : Math.Max(segment.Size, segment.AllocatedEnd);
                }

                return total;
            }
        }
    }

    private long _batchesFromCache;
    private long _batchesFromWriter;
    private long _batchesFromDisk;

    /// <summary>
    /// Batches this log's readers got, by where each came from: the shared <see cref="BatchCache"/> (a hit), the
    /// writer's in-memory tail (a cache miss that still read no disk: the recent durable data tailing readers share), or
    /// the segment files. <see cref="BatchCache.Misses"/> counts the last two alike; this tells them apart, per log (a
    /// cache shared by logs cannot).
    /// </summary>
    internal (long Cache, long Writer, long Disk) BatchSources =>
        (Interlocked.Read(ref _batchesFromCache), Interlocked.Read(ref _batchesFromWriter), Interlocked.Read(ref _batchesFromDisk));

    /// <summary>Closed chunks the writer keeps readable for tailing readers now (tests; see <c>LogWriter._retained</c>).</summary>
    internal int RetainedWriterChunks => _writer.RetainedChunkCount;

    /// <summary>Counts one batch a reader got from <paramref name="source"/> (per log, and the tagged meter instrument).</summary>
    private void CountBatchRead(BatchSource source)
    {
        switch (source)
        {
            case BatchSource.Cache:
                Interlocked.Increment(ref _batchesFromCache);
                break;
            case BatchSource.Writer:
                Interlocked.Increment(ref _batchesFromWriter);
                break;
            default:
                Interlocked.Increment(ref _batchesFromDisk);
                break;
        }

        AppendLogMetrics.BatchRead(source);
    }

    /// <summary>Called when the log closes: its per-log series stop being reported.</summary>
    private void ReportClosed() => AppendLogMetrics.LogClosed(this);

    /// <summary>
    /// Called once the log is open: registers it with the metrics and says, through the options' logger, when
    /// the mode obtained is weaker than hoped (fallback from O_DIRECT) or the directory is on tmpfs.
    /// </summary>
    private void ReportOpened()
    {
        AppendLogMetrics.LogOpened(this);
        var support = _storage.GetDirectIoSupport(_options.Directory);
        if (!IsDirectIo && _options.DirectIo == DirectIoMode.Preferred)
        {
            _logger.DirectIoFallback(_options.Directory, support.Reason ?? "the probe found no reason");
        }

        if (support.IsTmpfs)
        {
            _logger.OnTmpfs(_options.Directory);
        }
    }
}
