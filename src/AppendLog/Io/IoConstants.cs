namespace AppendLog.Io;

/// <summary>Sizes the I/O layer and its simulator agree on.</summary>
internal static class IoConstants
{
    /// <summary>
    /// The O_DIRECT alignment we require of buffers, positions and lengths, in bytes: 4 KiB, the page size and
    /// the physical sector of current disks. The kernel may accept 512 (the logical block size of most devices);
    /// we ask for the stricter value so a file never straddles a physical sector with two writes.
    /// </summary>
    public const int BlockSize = 4096;

    /// <summary>
    /// The unit of a torn write, in bytes: drives guarantee that a 512-byte sector is written entirely or not
    /// at all, nothing larger (ARCHITECTURE §1 allows tears at 512 B or 4 KiB, so the simulator uses 512).
    /// </summary>
    public const int SectorSize = 512;
}
