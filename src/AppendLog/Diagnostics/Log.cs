using Microsoft.Extensions.Logging;

namespace AppendLog.Diagnostics;

/// <summary>
/// Every log line the library writes, source-generated (no boxing, no formatting when the level is off). Lines go
/// to <see cref="LogOptions.LoggerFactory"/> under the category <c>AppendLog.SegmentedLog</c>; with no factory the
/// library is silent. Event ids are stable: dashboards and alerts may key on them, so a retired id is never reused.
/// </summary>
internal static partial class Log
{
    /// <summary>The category every line is written under (the type name of <see cref="SegmentedLog"/>).</summary>
    public const string Category = "AppendLog.SegmentedLog";

    [LoggerMessage(EventId = 1, EventName = "DirectIoFallback", Level = LogLevel.Warning,
        Message = "The log in {Directory} runs with buffered writes + fdatasync: the file system refused O_DIRECT ({Reason}). Durability is unchanged; writes go through the page cache.")]
    public static partial void DirectIoFallback(this ILogger logger, string directory, string reason);

    [LoggerMessage(EventId = 2, EventName = "Tmpfs", Level = LogLevel.Warning,
        Message = "The log in {Directory} is on tmpfs: its data lives in memory and is lost at reboot, whatever fdatasync says.")]
    public static partial void OnTmpfs(this ILogger logger, string directory);

    [LoggerMessage(EventId = 3, EventName = "RecoveryTruncated", Level = LogLevel.Information,
        Message = "Recovery truncated {File} at byte {Position} (offset {Offset}): {Reason}; {DroppedBytes} bytes beyond were not part of the log")]
    public static partial void RecoveryTruncated(this ILogger logger, string file, long position, long offset, string reason, long droppedBytes);

    [LoggerMessage(EventId = 4, EventName = "RecoveryDeletedSegment", Level = LogLevel.Information,
        Message = "Recovery deleted segment {BaseOffset}: it lies beyond the log's recovered end {EndOffset}")]
    public static partial void RecoveryDeletedSegment(this ILogger logger, long baseOffset, long endOffset);

    [LoggerMessage(EventId = 5, EventName = "ForeignFile", Level = LogLevel.Warning,
        Message = "Ignoring a file that is not part of the log: {File}")]
    public static partial void IgnoringForeignFile(this ILogger logger, string file);

    [LoggerMessage(EventId = 6, EventName = "CorruptionFound", Level = LogLevel.Error,
        Message = "Corruption in {File} at byte {Position}; the log in {Directory} cannot be opened until it is repaired or restored")]
    public static partial void CorruptionFound(this ILogger logger, string directory, string file, long position, Exception exception);

    [LoggerMessage(EventId = 7, EventName = "Faulted", Level = LogLevel.Critical,
        Message = "The log in {Directory} is faulted after a failed write or sync; every pending and later call fails until it is reopened (recovery runs then)")]
    public static partial void Faulted(this ILogger logger, string directory, Exception exception);

    [LoggerMessage(EventId = 8, EventName = "DiskFull", Level = LogLevel.Warning,
        Message = "No space to reserve the next step of {File}; appends fail with LogDiskFullException until space is freed (nothing written is at risk)")]
    public static partial void DiskFull(this ILogger logger, string file, Exception exception);

    [LoggerMessage(EventId = 9, EventName = "Compacted", Level = LogLevel.Information,
        Message = "Compaction of {Directory} rewrote {Segments} segments in {Passes} passes: {RecordsRemoved} records removed ({TombstonesRemoved} expired tombstones), {BytesBefore} → {BytesAfter} bytes")]
    public static partial void Compacted(this ILogger logger, string directory, int segments, int passes, long recordsRemoved, long tombstonesRemoved, long bytesBefore, long bytesAfter);

    [LoggerMessage(EventId = 10, EventName = "CompactionFailed", Level = LogLevel.Warning,
        Message = "Background compaction of {Directory} failed; the log is unchanged where the failure happened and the next roll retries")]
    public static partial void CompactionFailed(this ILogger logger, string directory, Exception exception);

    [LoggerMessage(EventId = 11, EventName = "CleanCloseRecordFailed", Level = LogLevel.Warning,
        Message = "Closing {Directory}: the clean-close record could not be written; the next open scans the active segment (the data is durable and unaffected)")]
    public static partial void CleanCloseRecordFailed(this ILogger logger, string directory, Exception exception);

    /// <summary>Logs a failed clean-close record through the options' factory.</summary>
    public static void CleanCloseRecordFailed(LogOptions options, Exception error) =>
        options.LoggerFactory?.CreateLogger(Category).CleanCloseRecordFailed(options.Directory, error);

    /// <summary>Logs a fault through the options' factory; called once per log, when it faults.</summary>
    public static void Faulted(LogOptions options, LogFaultedException fault) =>
        options.LoggerFactory?.CreateLogger(Category).Faulted(options.Directory, fault.InnerException ?? fault);

    /// <summary>Logs a reservation refused with ENOSPC through the options' factory.</summary>
    public static void DiskFull(LogOptions options, string file, Exception error) =>
        options.LoggerFactory?.CreateLogger(Category).DiskFull(file, error);

    /// <summary>
    /// Exception filter for opening: logs corruption found by recovery, then returns true so the catch block (which
    /// releases the directory lock and rethrows) runs exactly as an unfiltered catch would.
    /// </summary>
    public static bool OpenFailed(LogOptions options, Exception exception)
    {
        if (exception is LogCorruptedException corrupted)
        {
            options.LoggerFactory?.CreateLogger(Category).CorruptionFound(options.Directory, corrupted.FilePath, corrupted.Position, corrupted);
        }

        return true;
    }
}
