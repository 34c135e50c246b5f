using AppendLog.Buffers;
using AppendLog.Diagnostics;
using AppendLog.Io;
using AppendLog.Io.Uring;
using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>The life of a write: created Queued, Dispatched to an I/O worker, Done when pwrite returned.</summary>
internal enum WriteState
{
    Queued,
    Dispatched,
    Done,
}

/// <summary>
/// One chunk's filled part [<see cref="ChunkOffset"/>, <see cref="ChunkOffset"/> + <see cref="Length"/>) in flight
/// to <see cref="FilePosition"/>. Offsets and lengths are block-aligned; <see cref="GlobalEnd"/> is the logical end
/// of the data it carries (the written watermark moves to it once every earlier write is Done too).
/// </summary>
internal sealed class WriteOp : IRingWork
{
    private WriteState _state;

    public LogWriter Owner { get; set; } = null!;

    public ChunkSlot Slot { get; set; } = null!;

    public IDirectFile File { get; set; } = null!;

    public long FilePosition { get; set; }

    public int ChunkOffset { get; set; }

    public int Length { get; set; }

    public long GlobalEnd { get; set; }

    public Exception? Error { get; set; }

    public WriteState State => _state;

    /// <summary>The only way the state changes: Queued → Dispatched → Done, asserted.</summary>
    public void MoveTo(WriteState next)
    {
        Invariant.Assert((int)next == (int)_state + 1, "a write moves Queued → Dispatched → Done, one step at a time");
        _state = next;
    }

    public void Reset()
    {
        _state = WriteState.Queued;
        Error = null;
        Slot = null!;
        File = null!;
    }

    public void Execute()
    {
        try
        {
            File.Write(AlignedData(), FilePosition);
        }
        catch (Exception e)
        {
            Error = e;
        }

        Owner.OnWriteCompleted(this);
    }

    /// <summary>The bytes this write carries, checked block-aligned in position and length (O_DIRECT's rule).</summary>
    private Span<byte> AlignedData()
    {
        Invariant.Assert(Alignment.IsAligned(FilePosition), "write position is block-aligned");
        Invariant.Assert(Alignment.IsAligned(Length), "write length is block-aligned");
        return Slot.Chunk.Span.Slice(ChunkOffset, Length);
    }

    /// <inheritdoc/>
    public unsafe RingOperation BeginRing()
    {
        if (!OperatingSystem.IsLinux() || File is not SanitizingFile { DirectInner: { } direct } sanitized)
        {
            return RingOperation.None;
        }

        var data = AlignedData(); // native memory: the address is stable
        sanitized.BeginExternalWrite(data, FilePosition);
        fixed (byte* address = data)
        {
            return new RingOperation(RingOperationKind.Write, direct.Handle, (nint)address, Length, FilePosition);
        }
    }

    /// <inheritdoc/>
    public bool CompleteRing(int result)
    {
        ((SanitizingFile)File).EndExternalWrite(FilePosition, Length);
        if (result >= 0 && result < Length)
        {
            return false; // short: Execute writes the whole range again, on a thread
        }

        Error = result < 0 ? new IoUringCompletion(0, result).ToException("io_uring write", File.Path) : null;
        Owner.OnWriteCompleted(this);
        return true;
    }
}

/// <summary>
/// A chunk of the pool bound to a block-aligned range of a segment file: [<see cref="FileStart"/>, FileStart + size).
/// Appends fill it front to back; writes carry its filled part to disk. Two writes of one slot would touch the
/// block that holds the partial tail, so a slot has at most one write dispatched; a later write waits as
/// <see cref="Deferred"/> (and absorbs further data) until the first is Done.
/// </summary>
internal sealed class ChunkSlot
{
    public AlignedChunk Chunk { get; set; } = null!;

    public Segment Segment { get; set; } = null!;

    public long FileStart { get; set; }

    /// <summary>Bytes of the chunk holding data.</summary>
    public int Fill { get; set; }

    /// <summary>Bytes of the chunk already handed to writes; the next write starts at AlignDown(DispatchedTo).</summary>
    public int DispatchedTo { get; set; }

    public bool WriteBusy { get; set; }

    public WriteOp? Deferred { get; set; }

    /// <summary>No more data will come: the chunk returns to the pool when its last write is Done.</summary>
    public bool Closed { get; set; }
}
