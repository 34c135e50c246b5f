using KafkaBroker.Protocol;

namespace KafkaBroker.Storage;

/// <summary>
/// What one partition remembers of one idempotent producer: its epoch and its last few batches' sequence ranges
/// with their base offsets, so a retried batch is answered with the offset it already got instead of being stored
/// twice. The rules are Kafka's (<c>ProducerStateManager</c>, KIP-98):
/// <code>
/// case                                          answer
/// epoch below the known one                     INVALID_PRODUCER_EPOCH
/// new producer or new epoch, baseSequence ≠ 0   OUT_OF_ORDER_SEQUENCE_NUMBER
/// same sequence range as a remembered batch     NONE, with that batch's base offset (nothing stored)
/// baseSequence = last sequence + 1 (mod 2^31)   stored
/// baseSequence at or below the last sequence    DUPLICATE_SEQUENCE_NUMBER (older than what is remembered)
/// otherwise (a gap)                             OUT_OF_ORDER_SEQUENCE_NUMBER
/// </code>
/// </summary>
internal sealed class ProducerState(short epoch)
{
    /// <summary>
    /// Batches remembered per producer: librdkafka and the Java client keep at most 5 requests in flight.
    /// </summary>
    public const int RememberedBatchesMax = 5;

    private readonly Queue<(int FirstSequence, int LastSequence, Task<long> BaseOffset)> _recent = new();

    public short Epoch { get; } = epoch;

    /// <summary>Checks <paramref name="batch"/> against this state (see the table).</summary>
    /// <param name="batch">A batch of this producer id.</param>
    /// <param name="duplicateOf">The remembered append of the same range, when the batch is a retry.</param>
    public ErrorCode Check(RecordBatchView batch, out Task<long>? duplicateOf)
    {
        duplicateOf = null;
        foreach (var (first, last, baseOffset) in _recent)
        {
            if (first == batch.BaseSequence && last == batch.LastSequence)
            {
                duplicateOf = baseOffset;
                return ErrorCode.None;
            }
        }

        if (_recent.Count == 0)
        {
            return batch.BaseSequence == 0 ? ErrorCode.None : ErrorCode.OutOfOrderSequenceNumber;
        }

        int lastSequence = _recent.Last().LastSequence;
        int expected = lastSequence == int.MaxValue ? 0 : lastSequence + 1;
        if (batch.BaseSequence == expected)
        {
            return ErrorCode.None;
        }

        return batch.BaseSequence <= lastSequence
            ? ErrorCode.DuplicateSequenceNumber
            : ErrorCode.OutOfOrderSequenceNumber;
    }

    /// <summary>Remembers a batch accepted for storage, with the append that gives its base offset.</summary>
    public void Remember(RecordBatchView batch, Task<long> baseOffset)
    {
        _recent.Enqueue((batch.BaseSequence, batch.LastSequence, baseOffset));
        if (_recent.Count > RememberedBatchesMax)
        {
            _recent.Dequeue();
        }
    }
}
