using AppendLog.Segments;

namespace AppendLog.Appender;

/// <summary>What readers ask the writer: how far a segment is readable, and the durable tail still in its chunks.</summary>
internal sealed partial class LogWriter
{
    /// <summary>
    /// The end of the readable (durable) bytes of <paramref name="segment"/>: its size once sealed or behind the durable
    /// watermark, else the durable position inside it. Under <see cref="SyncRoot"/>.
    /// </summary>
    public long ReadableLimitUnsynchronized(Segment segment) =>
        Math.Clamp(DurableGlobal - segment.GlobalStart, 0, segment.Size);

    /// <summary>
    /// Copies the durable bytes [position, position + destination.Length) of the active segment from the chunks the
    /// writer still holds (the tail a tailing reader asks for was usually synced a moment ago and is still in memory),
    /// when every byte is there and the segment's content is still <paramref name="contentKey"/>. False otherwise (the
    /// reader then goes to the disk). The copy happens under the writer's lock: it is a memcpy of one batch.
    /// </summary>
    public bool TryCopyFromMemory(Segment segment, long contentKey, long position, Span<byte> destination)
    {
        lock (_lock)
        {
            if (!ReferenceEquals(segment, _active) || segment.ContentKey != contentKey
                || position + destination.Length > ReadableLimitUnsynchronized(segment))
            {
                return false;
            }

            while (!destination.IsEmpty)
            {
                if (!TryCopyPieceUnsynchronized(segment, position, destination, out int copied))
                {
                    return false;
                }

                destination = destination[copied..];
                position += copied;
            }

            return true;
        }
    }

    private bool TryCopyPieceUnsynchronized(Segment segment, long position, Span<byte> destination, out int copied)
    {
        if (_idleTail is not null && position >= _idleTailFileStart && position < _idleTailFileStart + _idleTail.Length)
        {
            int from = (int)(position - _idleTailFileStart);
            copied = Math.Min(_idleTail.Length - from, destination.Length);
            _idleTail.AsSpan(from, copied).CopyTo(destination);
            return true;
        }

        // The tail a reader asks for is nearly always in the chunk being filled; the chunks still being written are
        // searched only when it is not (there are few unless writes are backed up behind the disk).
        if (_current is { } current && Holds(current, segment, position))
        {
            return CopyFrom(current, position, destination, out copied);
        }

        foreach (var slot in _liveSlots)
        {
            if (Holds(slot, segment, position))
            {
                return CopyFrom(slot, position, destination, out copied);
            }
        }

        copied = 0;
        return false;

        static bool Holds(ChunkSlot slot, Segment segment, long position) =>
            ReferenceEquals(slot.Segment, segment) && position >= slot.FileStart && position < slot.FileStart + slot.Fill;

        static bool CopyFrom(ChunkSlot slot, long position, Span<byte> destination, out int copied)
        {
            int from = (int)(position - slot.FileStart);
            copied = Math.Min(slot.Fill - from, destination.Length);
            slot.Chunk.Span.Slice(from, copied).CopyTo(destination);
            return true;
        }
    }

    /// <summary>Called (outside the lock) for each segment that left the log, so readers' caches close its handle.</summary>
    public Action<Segment>? SegmentRemoved { get; set; }

    /// <summary>The segment appends go to now.</summary>
    public Segment ActiveUnsynchronized => _active;
}
