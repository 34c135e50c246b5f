using System.Buffers.Binary;
using AppendLog.Format;

namespace AppendLog.Segments;

/// <summary>
/// What a log's checkpoint file (<c>.checkpoint</c>, docs/internals.md section 5) claims: the first <see cref="Size"/>
/// bytes of the segment that starts at <see cref="SegmentBase"/> were durable, valid batches ending at
/// <see cref="EndOffset"/>. Recovery never truncates below a claim (damage there is <see cref="LogCorruptedException"/>,
/// not a torn tail). A <see cref="Clean"/> record is written by a clean close: the segment held exactly
/// <see cref="Size"/> bytes and nothing else, and its sparse index follows the slots, so the next open trusts it
/// instead of scanning (as long as the file is still exactly that long).
/// A record with <see cref="Size"/> 0 claims nothing: written before a truncation or reset lowers the data.
/// </summary>
internal readonly record struct CheckpointRecord(long Sequence, bool Clean, long SegmentBase, long Size, long EndOffset, long MaxTimestampMs, int IndexLength)
{
    /// <summary>A record that claims nothing (its sequence number is given when it is written).</summary>
    public static CheckpointRecord None { get; } = new(0, false, 0, 0, 0, -1, 0);

    public bool ClaimsData => Size > 0;
}

/// <summary>
/// The checkpoint file's layout: two 4 KiB slots written alternately (a torn write can damage only the slot being
/// written; the other keeps the previous record), then, for a clean record, the active segment's sparse index
/// (<see cref="SparseIndex.Serialize"/>, checksummed on its own). Each slot is
/// <c>magic u32 | version u16 | flags u16 | sequence i64 | segment base i64 | size i64 | end offset i64 |
/// max timestamp i64 | index length i32 | crc32c u32</c>, little-endian, the CRC over everything before it.
/// </summary>
internal static class Checkpoint
{
    public const string FileName = ".checkpoint";
    public const int SlotSize = 4096;
    public const int IndexStart = 2 * SlotSize;

    private const uint Magic = 0x50434C41; // "ALCP"
    private const ushort Version = 1;
    private const ushort CleanFlag = 1;
    private const int RecordLength = 4 + 2 + 2 + (8 * 5) + 4 + 4;

    /// <summary>The slot a record of this sequence number is written to.</summary>
    public static int SlotOf(long sequence) => (int)(sequence & 1) * SlotSize;

    /// <summary>Encodes <paramref name="record"/> into a slot (<see cref="SlotSize"/> bytes, zero-padded).</summary>
    public static void Encode(in CheckpointRecord record, Span<byte> slot)
    {
        if (slot.Length < SlotSize)
        {
            throw new ArgumentException("A checkpoint slot is 4 KiB.", nameof(slot));
        }

        slot[..SlotSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(slot, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(slot[4..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(slot[6..], record.Clean ? CleanFlag : (ushort)0);
        BinaryPrimitives.WriteInt64LittleEndian(slot[8..], record.Sequence);
        BinaryPrimitives.WriteInt64LittleEndian(slot[16..], record.SegmentBase);
        BinaryPrimitives.WriteInt64LittleEndian(slot[24..], record.Size);
        BinaryPrimitives.WriteInt64LittleEndian(slot[32..], record.EndOffset);
        BinaryPrimitives.WriteInt64LittleEndian(slot[40..], record.MaxTimestampMs);
        BinaryPrimitives.WriteInt32LittleEndian(slot[48..], record.IndexLength);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[52..], Crc32C.Compute(slot[..52]));
    }

    /// <summary>Decodes one slot; false when it is empty, torn or damaged.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> slot, out CheckpointRecord record)
    {
        record = default;
        if (slot.Length < RecordLength
            || BinaryPrimitives.ReadUInt32LittleEndian(slot) != Magic
            || BinaryPrimitives.ReadUInt16LittleEndian(slot[4..]) != Version
            || BinaryPrimitives.ReadUInt32LittleEndian(slot[52..]) != Crc32C.Compute(slot[..52]))
        {
            return false;
        }

        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(slot[6..]);
        record = new CheckpointRecord(
            Sequence: BinaryPrimitives.ReadInt64LittleEndian(slot[8..]),
            Clean: (flags & CleanFlag) != 0,
            SegmentBase: BinaryPrimitives.ReadInt64LittleEndian(slot[16..]),
            Size: BinaryPrimitives.ReadInt64LittleEndian(slot[24..]),
            EndOffset: BinaryPrimitives.ReadInt64LittleEndian(slot[32..]),
            MaxTimestampMs: BinaryPrimitives.ReadInt64LittleEndian(slot[40..]),
            IndexLength: BinaryPrimitives.ReadInt32LittleEndian(slot[48..]));
        return record.Size >= 0 && record.SegmentBase >= 0 && record.EndOffset >= record.SegmentBase && record.IndexLength >= 0 && record.Sequence >= 0;
    }

    /// <summary>The newest valid record in the two slots (<paramref name="slots"/>: the file's first 8 KiB, or less when shorter); null when neither holds one.</summary>
    public static CheckpointRecord? ReadSlots(ReadOnlySpan<byte> slots)
    {
        CheckpointRecord? best = null;
        for (int start = 0; start < IndexStart; start += SlotSize)
        {
            if (slots.Length >= start + RecordLength && TryDecode(slots.Slice(start, Math.Min(SlotSize, slots.Length - start)), out var r)
                && SlotOf(r.Sequence) == start && (best is null || r.Sequence > best.Value.Sequence))
            {
                best = r;
            }
        }

        return best;
    }
}
