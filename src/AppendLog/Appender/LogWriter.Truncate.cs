using AppendLog.Buffers;
using AppendLog.Diagnostics;
using AppendLog.Format;
using AppendLog.Io;
using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>
/// Suffix truncation (what Raft needs to discard conflicting entries). The writer is frozen (new appends wait),
/// everything accepted is made durable, all I/O drains, then the files are cut: later segments deleted, the
/// target segment reopened for writing (unsealed if it was sealed) and trimmed at the batch boundary, all
/// synced before the call returns; then the pipeline restarts from the cut as after recovery.
/// </summary>
internal sealed partial class LogWriter
{
    private TaskCompletionSource? _frozen;
    private TaskCompletionSource? _drained;

    /// <summary>Completes when no truncation is in progress.</summary>
    public Task Unfrozen
    {
        get
        {
            lock (_lock)
            {
                return _frozen?.Task ?? Task.CompletedTask;
            }
        }
    }

    public async Task TruncateSuffixAsync(long fromOffset, int maxBatchSize, CancellationToken cancellationToken)
    {
        var (frozen, end) = Freeze();

        try
        {
            await WaitForDurableAsync(end, requestFlush: true, cancellationToken).ConfigureAwait(false);
            await WaitForIdleAsync().ConfigureAwait(false);
            if (fromOffset == end)
            {
                return;
            }

            lock (_fileGate)
            {
                var (target, position) = LocateBatchStart(fromOffset, maxBatchSize);
                Cut(target, fromOffset, position);
            }
        }
        finally
        {
            lock (_lock)
            {
                _frozen = null;
                _drained = null;
                if (_fault is null && !_closing)
                {
                    MaybePreallocateUnsynchronized();
                }
            }

            frozen.SetResult();
        }
    }

    private Task WaitForIdleAsync()
    {
        lock (_lock)
        {
            _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            TrySignalIdleUnsynchronized();
            return _drained.Task;
        }
    }

    /// <summary>
    /// Stops appends (they wait on the returned task) for a truncation or a reset, and tells a running compaction not to
    /// swap a file in afterwards. Returns the offset appends had reached.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another truncation or reset is in progress.</exception>
    private (TaskCompletionSource Frozen, long End) Freeze()
    {
        lock (_fileGate)
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            if (_frozen is not null)
            {
                throw new InvalidOperationException("Another truncation or reset of this log is in progress.");
            }

            _frozen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            NoteTruncationUnsynchronized();
            return (_frozen, _nextOffset);
        }
    }

    /// <summary>Finds the segment and byte position of the batch starting at <paramref name="fromOffset"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="fromOffset"/> is inside a batch, not at its start.</exception>
    private (Segment Segment, long Position) LocateBatchStart(long fromOffset, int maxBatchSize)
    {
        Segment target;
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            target = _segments.FindLast(s => s.BaseOffset <= fromOffset) ?? _segments[0];
        }

        using var file = target.File is null ? _storage.Open(target.Path, FileCreation.OpenExisting, _options.DirectIo) : null;
        var reader = file ?? target.File!;
        using var scanner = new BatchScanner(maxBatchSize);
        scanner.Reset(reader);
        long position = target.Index.FindPositionForOffset(fromOffset);
        while (position < target.Size)
        {
            var check = scanner.TryRead(position, target.Size, out var header, out _);
            if (check != BatchCheck.Valid)
            {
                throw new LogCorruptedException(target.Path, position, $"batch check failed while truncating: {check}");
            }

            if (header.BaseOffset == fromOffset)
            {
                return (target, position);
            }

            if (header.BaseOffset > fromOffset || header.LastOffset >= fromOffset)
            {
                break;
            }

            position += header.TotalSize;
        }

        if (position == target.Size && target.EndOffset == fromOffset)
        {
            return (target, position);
        }

        throw new ArgumentException($"Offset {fromOffset} is not the first offset of a batch; a log is truncated at batch boundaries.", nameof(fromOffset));
    }

    private void Cut(Segment target, long fromOffset, long position)
    {
        List<Segment> later;
        lock (_lock)
        {
            later = _segments.FindAll(s => s.BaseOffset > target.BaseOffset);

            // Before any byte changes: readers learn here that content from the cut on is no longer what they read.
            target.RecordCut(fromOffset);
            foreach (var s in later)
            {
                s.RecordCut(fromOffset);
            }
        }

        // The checkpoint's claim may lie beyond the cut: void it before any byte goes (a crash after the cut must not
        // read the missing bytes as damage).
        VoidCheckpointClaims();

        // Delete from the end so that a crash in between leaves a log that recovery reads as a prefix.
        for (int i = later.Count - 1; i >= 0; i--)
        {
            later[i].File?.Dispose();
            _storage.DeleteFile(SegmentNames.IndexFile(_directory, later[i].BaseOffset));
            _storage.DeleteFile(later[i].Path);
        }

        // A sealed target becomes active again: drop its index first (an index describes a whole, sealed segment).
        _storage.DeleteFile(SegmentNames.IndexFile(_directory, target.BaseOffset));
        _storage.SyncDirectory(_directory);
        var file = target.File ?? _storage.Open(target.Path, FileCreation.OpenExisting, _options.DirectIo);
        file.Truncate(position);
        byte[] tail = ReadPartialBlock(file, position);
        var woken = new List<DurableWaiter>();
        lock (_lock)
        {
            _segments.RemoveAll(s => s.BaseOffset > target.BaseOffset);
            foreach (var s in later)
            {
                s.MoveTo(SegmentState.Removed);
            }

            if (_current is not null)
            {
                _current.Closed = true;
                MaybeReleaseSlotUnsynchronized(_current);
                _current = null;
            }

            ReleaseRetainedUnsynchronized(); // they hold the content the cut or reset replaces
            Invariant.Assert(_liveSlots.Count == 0, "no chunk is in flight after the drain");
            target.File = file;
            if (target.State != SegmentState.Open)
            {
                target.MoveTo(SegmentState.Open); // a sealed target becomes active again (nothing is sealing: I/O drained)
            }

            target.DirectoryEntryDurable = true;
            target.Size = position;
            target.EndOffset = fromOffset;
            target.AllocatedEnd = position;
            target.Index.TruncateFrom(position);
            target.Index.TruncateEpochsFrom(fromOffset);
            _active = target;
            _nextOffset = fromOffset;
            _waiters.Restart(fromOffset, target.GlobalEnd, woken);
            _sync.Restart(target.GlobalEnd);
            _idleTail = tail.Length > 0 ? tail : null;
            _idleTailFileStart = Alignment.AlignDown(position);
        }

        foreach (var s in later)
        {
            SegmentRemoved?.Invoke(s);
        }

        CompleteWaiters(woken, failWith: null);
    }

    /// <summary>
    /// Reads [AlignDown(position), position): the data the next write of that block must keep (recovery and truncation).
    /// </summary>
    /// <exception cref="LogCorruptedException">The block cannot be read back whole.</exception>
    internal static unsafe byte[] ReadPartialBlock(IDirectFile file, long position)
    {
        long start = Alignment.AlignDown(position);
        int length = (int)(position - start);
        if (length == 0)
        {
            return [];
        }

        void* buffer = System.Runtime.InteropServices.NativeMemory.AlignedAlloc(Alignment.BlockSize, Alignment.BlockSize);
        try
        {
            var span = new Span<byte>(buffer, Alignment.BlockSize);
            int n = file.Read(span, start);
            if (n < length)
            {
                throw new LogCorruptedException(file.Path, start + n, "the segment's last block could not be read back");
            }

            return span[..length].ToArray();
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(buffer);
        }
    }
}
