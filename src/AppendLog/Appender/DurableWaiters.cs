using AppendLog.Diagnostics;

namespace AppendLog.Appender;

/// <summary>
/// One log's waits for durability, and the map from byte positions to offsets that completes them. Appends queue
/// their waiter in offset order (one queue, completed from the front); a wait for an offset below the last queued
/// target (a reader's, an explicit wait) goes to a small unordered list. When the durable byte position moves,
/// <see cref="MakeDurable"/> turns it into the durable end offset through the batch ends and collects every waiter it
/// covers. Not thread-safe: the writer's lock guards it.
/// </summary>
internal sealed class DurableWaiters
{
    private readonly Queue<DurableWaiter> _ordered = new();
    private readonly List<DurableWaiter> _unordered = new();
    private readonly Queue<(long GlobalEnd, long NextOffset)> _batchEnds = new();
    private long _lastQueuedTarget;

    public DurableWaiters(long durableOffset, long durableGlobalEnd) => Restart(durableOffset, durableGlobalEnd);

    /// <summary>End (exclusive) of the offsets whose bytes are durable.</summary>
    public long DurableOffset { get; private set; }

    /// <summary>The byte position (<see cref="Segments.Segment.GlobalStart"/> scale) where the batch ending at <see cref="DurableOffset"/> ends.</summary>
    public long DurableGlobalEnd { get; private set; }

    /// <summary>A batch ending at byte <paramref name="globalEnd"/> was accepted; offsets below <paramref name="nextOffset"/> are assigned.</summary>
    public void BatchAccepted(long globalEnd, long nextOffset) => _batchEnds.Enqueue((globalEnd, nextOffset));

    /// <summary>Adds a waiter; it completes once <see cref="DurableOffset"/> reaches its target.</summary>
    public void Add(DurableWaiter waiter)
    {
        if (_ordered.Count == 0 || waiter.Target >= _lastQueuedTarget)
        {
            _ordered.Enqueue(waiter);
            _lastQueuedTarget = waiter.Target;
        }
        else
        {
            _unordered.Add(waiter);
        }
    }

    /// <summary>
    /// Bytes below <paramref name="durableGlobal"/> are durable: moves <see cref="DurableOffset"/> over the batches they
    /// hold and adds every waiter it now covers to <paramref name="toComplete"/>.
    /// </summary>
    public void MakeDurable(long durableGlobal, long nextOffset, List<DurableWaiter> toComplete)
    {
        while (_batchEnds.Count > 0 && _batchEnds.Peek().GlobalEnd <= durableGlobal)
        {
            var (globalEnd, next) = _batchEnds.Dequeue();
            Invariant.Assert(next > DurableOffset, "durable offset only grows");
            DurableOffset = next;
            DurableGlobalEnd = globalEnd;
        }

        Invariant.Assert(DurableOffset <= nextOffset, "durable offset ≤ appended offset");
        while (_ordered.Count > 0 && _ordered.Peek().Target <= DurableOffset)
        {
            toComplete.Add(_ordered.Dequeue());
        }

        for (int i = _unordered.Count - 1; i >= 0; i--)
        {
            if (_unordered[i].Target <= DurableOffset)
            {
                toComplete.Add(_unordered[i]);
                _unordered.RemoveAt(i);
            }
        }
    }

    /// <summary>Moves every waiter to <paramref name="into"/> (a fault fails them, a close ends them).</summary>
    public void TakeAll(List<DurableWaiter> into)
    {
        into.AddRange(_ordered);
        _ordered.Clear();
        into.AddRange(_unordered);
        _unordered.Clear();
    }

    /// <summary>
    /// The log restarts at <paramref name="offset"/> after a suffix truncation or a reset (everything accepted was made
    /// durable first). Waits still queued are for offsets past the old end (tail readers, explicit waits): new appends'
    /// targets start again below theirs, so they leave the ordered queue, or they would hold every new waiter behind
    /// them; those that asked to be woken by a cut go to <paramref name="woken"/>.
    /// </summary>
    public void Restart(long offset, long globalEnd, List<DurableWaiter>? woken = null)
    {
        DurableOffset = _lastQueuedTarget = offset;
        DurableGlobalEnd = globalEnd;
        _batchEnds.Clear();
        _unordered.AddRange(_ordered);
        _ordered.Clear();
        for (int i = _unordered.Count - 1; i >= 0; i--)
        {
            if (_unordered[i].WakeOnCut && woken is not null)
            {
                woken.Add(_unordered[i]);
                _unordered.RemoveAt(i);
            }
        }
    }
}
