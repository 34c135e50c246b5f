using System.Numerics;
using AppendLog.Diagnostics;

namespace AppendLog.Buffers;

/// <summary>Alignment arithmetic for O_DIRECT: every buffer address, file position and length is a multiple of 4096.</summary>
internal static class Alignment
{
    /// <summary>
    /// The I/O block size (bytes). 4096 covers both 512-byte and 4 KiB logical-sector disks, and equals the
    /// page size, so an aligned chunk never straddles pages.
    /// </summary>
    public const int BlockSize = 4096;

    static Alignment()
    {
        Invariant.Assert(BitOperations.IsPow2(BlockSize), "block size is a power of two");
    }

    /// <summary>Rounds down to a block boundary. Example: 10_000 → 8_192; 8_192 → 8_192.</summary>
    public static long AlignDown(long value) => value & ~(long)(BlockSize - 1);

    /// <summary>Rounds up to a block boundary. Example: 10_000 → 12_288; 8_192 → 8_192; 0 → 0.</summary>
    public static long AlignUp(long value) => (value + BlockSize - 1) & ~(long)(BlockSize - 1);

    /// <summary>True when <paramref name="value"/> is a multiple of the block size.</summary>
    public static bool IsAligned(long value) => (value & (BlockSize - 1)) == 0;
}
