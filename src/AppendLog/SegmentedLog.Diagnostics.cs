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
