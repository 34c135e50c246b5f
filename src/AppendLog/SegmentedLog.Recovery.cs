using AppendLog.Appender;
using AppendLog.Diagnostics;
using AppendLog.Format;
using AppendLog.Io;
using AppendLog.Segments;
using Microsoft.Extensions.Logging;

namespace AppendLog;

/// <summary>
/// Opening and crash recovery.
/// <para>
/// Decision table. A segment is <em>sealed</em> when its index file is present and valid (the seal writes the index
/// last, after the trim and its sync, so a valid index means the segment was whole and durable).
/// </para>
/// <list type="table">
/// <listheader><term>Case</term><description>Action</description></listheader>
/// <item><term>A. Sealed, file length equals the indexed size</term><description>Keep; batches are checked by CRC when read.</description></item>
/// <item><term>B. Sealed, file shorter or longer than the indexed size</term><description>Throw <see cref="LogCorruptedException"/>: sealed files never change (truncated or extended by hand).</description></item>
/// <item><term>C. Unsealed (no or damaged index): the active segment, or a rolled one whose seal did not finish</term><description>Scan from the start: a batch is valid when its length is in range, its CRC matches and its base offset is the one expected next. The first invalid batch is the tail: truncate the file there (ftruncate + sync) so stale or torn bytes can never be read back later.</description></item>
/// <item><term>D. An unsealed segment's tail is followed by later segments</term><description>Those later segments hold only unacknowledged data (durability is contiguous): delete them when they are unsealed; if a sealed one follows, the gap is damage in the middle of the log: throw <see cref="LogCorruptedException"/>.</description></item>
/// <item><term>E. A segment does not start where the previous one ends</term><description>Same as D.</description></item>
/// <item><term>F. No segment, or the last is sealed</term><description>Create a new active segment at the end offset.</description></item>
/// <item><term>G. Files that are not segments or indexes</term><description>Ignored (logged).</description></item>
/// <item><term>H. The prepared next segment (<c>.next-segment.log</c>)</term><description>Deleted: it holds no data (renamed into place only at a roll).</description></item>
/// <item><term>I. A compaction's temporary output</term><description>Deleted: the swap renames it into place atomically, so a leftover was never part of the log.</description></item>
/// </list>
/// <para>The same table, with the pipeline that produces these states: docs/internals.md, section 5.</para>
/// <para>Unsealed files are synced before they are read ("fsync before reading"), so recovery never builds on bytes
/// that are visible but not yet durable.</para>
/// </summary>
public sealed partial class SegmentedLog
{
    /// <summary>Opens the log in <see cref="LogOptions.Directory"/>, creating it when missing, and recovers it after a crash.</summary>
    /// <param name="options">The options; validated here.</param>
    /// <param name="cancellationToken">Cancels the wait for buffer space while opening.</param>
    /// <returns>The open log.</returns>
    /// <exception cref="ArgumentException">An option is invalid (message names it).</exception>
    /// <exception cref="LogLockedException">The directory is open in another process or log instance.</exception>
    /// <exception cref="LogCorruptedException">Data before the tail is damaged.</exception>
    /// <exception cref="IOException">The directory or a file could not be opened or read.</exception>
    public static ValueTask<SegmentedLog> OpenAsync(LogOptions options, CancellationToken cancellationToken = default) =>
        OpenAsync(options, DefaultStorage.Instance, options.IoExecutor ?? IoWorkers.Shared, cancellationToken);

    internal static async ValueTask<SegmentedLog> OpenAsync(LogOptions options, IStorage storage, IIoExecutor io, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var pool = options.BufferPool ?? LogBufferPool.Shared;
        if (pool.BudgetBytes < options.MaximumBatchSize + (2L * pool.ChunkSize))
        {
            throw new ArgumentException(
                $"The buffer pool's budget ({pool.BudgetBytes} bytes) must hold LogOptions.MaximumBatchSize plus two chunks.",
                nameof(options));
        }

        storage.CreateDirectory(options.Directory);
        var directoryLock = LockLogDirectory(storage, options);
        try
        {
            var logger = options.LoggerFactory?.CreateLogger<SegmentedLog>();
            var checkpoint = CheckpointFile.Read(storage, options.Directory);
            var (segments, tail) = Recover(storage, options, checkpoint, logger);
            var active = segments[^1];
            bool isDirect = active.File!.IsDirect;
            if (active.Size > 0)
            {
                // A reopened log holds no handle on its active segment until it is written (one descriptor per idle
                // log: its lock). An empty log is about to be written and keeps it.
                active.File.Dispose();
                active.File = null;
            }

            var writer = new LogWriter(storage, options, io, segments, active, new CheckpointFile(storage, options.Directory, checkpoint?.Record.Sequence ?? 0));
            writer.InitializeTail(tail);
            if (segments.Count == 1 && active.Size == 0)
            {
                // An empty log is about to be written: the first appends (TryAppend too) need not wait for space.
                await writer.ReserveFirstStep().WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            return new SegmentedLog(storage, options, directoryLock, segments, writer, isDirect);
        }
        catch (Exception e) when (Log.OpenFailed(options, e))
        {
            directoryLock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Makes this instance the log's only one. A standalone log locks its own directory (<see cref="LinuxStorage.LockFileName"/>),
    /// then checks that no <see cref="LogManager"/> holds the parent directory (<see cref="LinuxStorage.ManagerLockFileName"/>).
    /// A manager's log takes no lock (the manager locked its root first and opens each log once), and checks that no
    /// standalone instance holds the log's own lock. Each side takes its own lock before it checks the other's, so
    /// whichever order two processes race in, at least one of them sees the other: a standalone log that checked before
    /// the manager locked the root is seen by the manager's check, and one that locks after the manager's check finds
    /// the root locked.
    /// </summary>
    /// <exception cref="LogLockedException">Another instance (this process or another) has the log open.</exception>
    private static IDisposable LockLogDirectory(IStorage storage, LogOptions options)
    {
        string directory = options.Directory;
        if (options.Descriptors is not null)
        {
            if (storage.IsLockHeld(directory, LinuxStorage.LockFileName))
            {
                throw new LogLockedException(directory);
            }

            return NoLock.Instance;
        }

        var own = storage.LockDirectory(directory, LinuxStorage.LockFileName);
        try
        {
            string? parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)));
            if (parent is not null && storage.IsLockHeld(parent, LinuxStorage.ManagerLockFileName))
            {
                throw new LogLockedException(directory);
            }
        }
        catch
        {
            own.Dispose();
            throw;
        }

        return own;
    }

    /// <summary>The lock of a manager's log: the manager's root lock covers it, so there is nothing to release.</summary>
    private sealed class NoLock : IDisposable
    {
        public static readonly NoLock Instance = new();

        public void Dispose()
        {
        }
    }

    private static (List<Segment> Segments, byte[] Tail) Recover(IStorage storage, LogOptions options, (CheckpointRecord Record, byte[]? Index)? checkpoint, ILogger? logger)
    {
        var claim = checkpoint?.Record ?? CheckpointRecord.None;
        string dir = options.Directory;
        var bases = new List<long>();
        bool preparedLeftOver = false;
        foreach (string name in storage.ListFiles(dir))
        {
            preparedLeftOver |= name == LogWriter.NextSegmentFileName;
            if (SegmentNames.TryParse(name, SegmentNames.DataExtension, out long baseOffset))
            {
                bases.Add(baseOffset);
            }
            else if (SegmentCompactor.IsTemporaryFile(name))
            {
                // A compaction's replacement that was never swapped in (or its index, swapped in but not renamed).
                storage.DeleteFile(Path.Combine(dir, name));
            }
            else if (!SegmentNames.TryParse(name, SegmentNames.IndexExtension, out _) && !name.StartsWith('.'))
            {
                logger?.IgnoringForeignFile(name);
            }
        }

        bases.Sort();

        // A next segment prepared ahead of a roll that never happened is not part of the log.
        if (preparedLeftOver)
        {
            storage.DeleteFile(Path.Combine(dir, LogWriter.NextSegmentFileName));
        }
        var segments = new List<Segment>();
        using var scanner = new BatchScanner(options.MaximumBatchSize);
        long global = 0;
        for (int i = 0; i < bases.Count; i++)
        {
            long baseOffset = bases[i];
            string path = SegmentNames.DataFile(dir, baseOffset);
            bool sealedIndex = TryLoadIndex(storage, dir, baseOffset, out var index, out long endOffset, out long size, out long maxTs);
            if (segments.Count > 0 && baseOffset != segments[^1].EndOffset)
            {
                EnsureNotBelowClaim(claim, segments[^1].EndOffset, path, 0);
                DropUnacknowledgedSuffix(storage, dir, bases, i, segments[^1].EndOffset, logger);
                break;
            }

            var segment = new Segment(path, baseOffset, global) { DirectoryEntryDurable = true };
            if (sealedIndex)
            {
                using var file = storage.Open(path, FileCreation.OpenExisting, options.DirectIo);
                if (file.Length != size)
                {
                    throw new LogCorruptedException(path, Math.Min(file.Length, size), $"the sealed segment holds {file.Length} bytes but its index says {size}");
                }

                segment.Size = size;
                segment.EndOffset = endOffset;
                segment.MaxTimestampMs = maxTs;
                segment.MoveTo(SegmentState.Sealed);
                segment.Index.CopyFrom(index);
                segments.Add(segment);
                global += size;
                continue;
            }

            var writable = storage.Open(path, FileCreation.OpenExisting, options.DirectIo);
            if (i == bases.Count - 1 && TrustCleanClose(checkpoint, segment, writable))
            {
                // Closed cleanly and untouched since: no scan, no sync, no trim (docs/internals.md, section 5, case J).
                segments.Add(segment);
                global += segment.Size;
                segment.File = writable;
                segment.AllocatedEnd = writable.Length;
                break;
            }

            bool truncated;
            try
            {
                truncated = ScanUnsealed(writable, segment, scanner, options, logger, claim.SegmentBase == baseOffset ? claim.Size : 0);
                if (i < bases.Count - 1 && (truncated || segment.Size == 0))
                {
                    EnsureNotBelowClaim(claim, segment.EndOffset, path, segment.Size);
                }
            }
            catch
            {
                writable.Dispose();
                throw;
            }

            segments.Add(segment);
            global += segment.Size;
            if (i < bases.Count - 1 && (truncated || segment.Size == 0))
            {
                // Case D: everything after this tail is unacknowledged.
                DropUnacknowledgedSuffix(storage, dir, bases, i + 1, segment.EndOffset, logger);
                segment.File = writable;
                segment.AllocatedEnd = writable.Length;
                break;
            }

            if (i < bases.Count - 1)
            {
                // A rolled segment whose seal did not finish: trim it now, it is whole.
                writable.Truncate(segment.Size);
                writable.Dispose();
                storage.WriteFileAtomic(SegmentNames.IndexFile(dir, baseOffset), segment.Index.Serialize(baseOffset, segment.EndOffset, segment.Size, segment.MaxTimestampMs));
                segment.MoveTo(SegmentState.Sealed);
                continue;
            }

            segment.File = writable;
            segment.AllocatedEnd = writable.Length;
        }

        EnsureNotBelowClaim(claim, segments.Count == 0 ? 0 : segments[^1].EndOffset, segments.Count == 0 ? dir : segments[^1].Path, segments.Count == 0 ? 0 : segments[^1].Size);
        if (segments.Count == 0 || segments[^1].IsSealed)
        {
            long next = segments.Count == 0 ? 0 : segments[^1].EndOffset;
            string path = SegmentNames.DataFile(dir, next);
            var segment = new Segment(path, next, global) { File = storage.Open(path, FileCreation.CreateNew, options.DirectIo) };
            storage.SyncDirectory(dir);
            segment.DirectoryEntryDurable = true;
            segments.Add(segment);
        }

        var active = segments[^1];
        active.CreatedTimestamp = (options.TimeProvider ?? TimeProvider.System).GetTimestamp();
        return (segments, LogWriter.ReadPartialBlock(active.File!, active.Size));
    }

    private const string Preallocated = "preallocated";

    /// <summary>
    /// Case J: the checkpoint's clean-close record describes this (last) segment and the file is exactly as long as
    /// the record says: take size, end, timestamps and index from the record. Anything else (a crash after the
    /// reopen wrote, a damaged record or index) takes the scanning path.
    /// </summary>
    private static bool TrustCleanClose((CheckpointRecord Record, byte[]? Index)? checkpoint, Segment segment, IDirectFile file)
    {
        if (checkpoint is not { Record: { Clean: true } record, Index: { } bytes } || record.SegmentBase != segment.BaseOffset
            || file.Length != record.Size
            || !SparseIndex.TryLoad(bytes, segment.BaseOffset, out var index, out long endOffset, out long size, out long maxTs)
            || size != record.Size || endOffset != record.EndOffset)
        {
            return false;
        }

        segment.Size = size;
        segment.EndOffset = endOffset;
        segment.MaxTimestampMs = maxTs;
        segment.Index.CopyFrom(index);
        return true;
    }

    /// <summary>
    /// The checkpoint's claim is a floor: recovery may drop unacknowledged data, never what a completed sync made
    /// durable. Called before anything is deleted or cut.
    /// </summary>
    private static void EnsureNotBelowClaim(CheckpointRecord claim, long recoveredEnd, string path, long position)
    {
        if (claim.ClaimsData && recoveredEnd < claim.EndOffset)
        {
            throw new LogCorruptedException(
                path, position,
                $"recovery found valid data up to offset {recoveredEnd}, but offsets up to {claim.EndOffset} were durable (checkpoint): acknowledged data is damaged or missing");
        }
    }

    /// <summary>
    /// Case C: scans an unsealed segment; truncates a torn or stale tail. True when it truncated. The scan must reach
    /// the bytes of this segment the checkpoint says were durable (durableFloor); stopping before them is damage.
    /// </summary>
    private static bool ScanUnsealed(IDirectFile file, Segment segment, BatchScanner scanner, LogOptions options, ILogger? logger, long durableFloor)
    {
        file.SyncData();
        long fileLength = file.Length;
        scanner.Reset(file);
        long position = 0;
        long expected = segment.BaseOffset;
        string stop = "end of file";
        while (position < fileLength)
        {
            var check = scanner.TryRead(position, fileLength, out var header, out _);
            if (check != BatchCheck.Valid)
            {
                // A zero header is reserved space that was never written (the zero-filled preallocation a clean
                // close leaves, or an unwritten block): the normal end of the data, not damage.
                stop = check == BatchCheck.BadLength && header.BatchLength == 0 && header.BaseOffset == 0 ? Preallocated : check.ToString();
                break;
            }

            if (header.BaseOffset != expected || !OffsetRange.IsValid(header))
            {
                stop = $"base offset {header.BaseOffset} where {expected} was expected";
                break;
            }

            segment.Index.MaybeAdd(header.BaseOffset, position, header.MaxTimestamp, options.IndexIntervalBytes);
            segment.Index.ObserveEpoch(header.BaseOffset, header.PartitionLeaderEpoch);
            segment.MaxTimestampMs = Math.Max(segment.MaxTimestampMs, header.MaxTimestamp);
            expected = header.LastOffset + 1;
            position += header.TotalSize;
        }

        segment.Size = position;
        segment.EndOffset = expected;
        if (position < durableFloor)
        {
            throw new LogCorruptedException(
                segment.Path, position,
                $"the batch at byte {position} is invalid ({stop}), but the checkpoint says the first {durableFloor} bytes were durable: this is damage, not a torn tail");
        }

        if (fileLength == position)
        {
            return false;
        }

        // Stale or torn bytes beyond the last valid batch: cut them off for good (reserved zeros too: the writer
        // reserves afresh, and one code path for both keeps stale bytes from ever lingering past the end).
        file.Truncate(position);
        if (stop == Preallocated)
        {
            return false;
        }

        logger?.RecoveryTruncated(segment.Path, position, expected, stop, fileLength - position);
        AppendLogMetrics.RecoveryTruncated(options.Directory, "truncate", stop);
        return true;
    }

    private static void DropUnacknowledgedSuffix(IStorage storage, string dir, List<long> bases, int from, long endOffset, ILogger? logger)
    {
        for (int j = from; j < bases.Count; j++)
        {
            if (TryLoadIndex(storage, dir, bases[j], out _, out _, out _, out _))
            {
                throw new LogCorruptedException(
                    SegmentNames.DataFile(dir, bases[j]), 0,
                    $"the log ends at offset {endOffset} before this sealed segment: data in the middle of the log is missing or damaged");
            }
        }

        for (int j = bases.Count - 1; j >= from; j--)
        {
            storage.DeleteFile(SegmentNames.DataFile(dir, bases[j]));
            storage.DeleteFile(SegmentNames.IndexFile(dir, bases[j]));
            logger?.RecoveryDeletedSegment(bases[j], endOffset);
            AppendLogMetrics.RecoveryTruncated(dir, "delete", "beyond_end");
        }

        storage.SyncDirectory(dir);
    }

    private static bool TryLoadIndex(IStorage storage, string dir, long baseOffset, out SparseIndex index, out long endOffset, out long size, out long maxTs)
    {
        byte[]? bytes = storage.ReadSmallFile(SegmentNames.IndexFile(dir, baseOffset));
        if (bytes is null)
        {
            index = new SparseIndex();
            endOffset = size = maxTs = 0;
            return false;
        }

        return SparseIndex.TryLoad(bytes, baseOffset, out index, out endOffset, out size, out maxTs);
    }
}
