using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AppendLog.Segments;

/// <summary>
/// The newest offset of each key, keyed by the key's 128-bit XxHash (two keys collide with probability about
/// n²/2¹²⁹: for a billion keys, 10⁻²¹, far below the disk's own undetected error rate). Compaction keeps a keyed
/// record only when its offset is the one stored here.
/// </summary>
internal sealed class KeyMap
{
    /// <summary>
    /// Bytes one entry costs in a <see cref="Dictionary{TKey, TValue}"/>: 16 (hash) + 8 (offset) + 4 (hash code)
    /// + 4 (next) per entry, plus a 4-byte bucket, rounded up to 40 for the spare capacity a resize leaves.
    /// </summary>
    public const int EntryBytes = 40;

    private readonly Dictionary<UInt128, long> _newest = new();

    public int Count => _newest.Count;

    /// <summary>The memory the entries take, estimated with <see cref="EntryBytes"/>.</summary>
    public long EstimatedBytes => (long)_newest.Count * EntryBytes;

    public static UInt128 Hash(ReadOnlySpan<byte> key) => XxHash128.HashToUInt128(key);

    /// <summary>Records <paramref name="offset"/> as the newest of <paramref name="key"/> (records come in offset order).</summary>
    public void Put(UInt128 key, long offset) => _newest[key] = offset;

    /// <summary>Moves an existing key's newest offset to <paramref name="offset"/>; ignores keys not in the map.</summary>
    public void UpdateIfPresent(UInt128 key, long offset)
    {
        ref long newest = ref CollectionsMarshal.GetValueRefOrNullRef(_newest, key);
        if (!Unsafe.IsNullRef(ref newest))
        {
            newest = offset;
        }
    }

    public bool TryGetNewest(UInt128 key, out long offset) => _newest.TryGetValue(key, out offset);
}
