using AppendLog.Diagnostics;
using AppendLog.Io;

namespace AppendLog.Testing;

/// <summary>
/// The contents of one simulated file: a durable image (what survives a crash) and a volatile overlay (what
/// reads see), both sparse, keyed by 512-byte sector index. Not thread-safe: <see cref="SimulatedStorage"/>
/// calls it under its lock.
/// </summary>
/// <remarks>
/// Reads see, per sector, the first of: <c>_dirty</c> (written since the last sync), <c>_lost</c> (written,
/// then dropped by a failed sync: still in the page cache, never reaching the disk — the Fsyncgate case),
/// <c>_durable</c>, zeros. Invariant: no image holds non-zero bytes at or past its length, so growing a file
/// always exposes zeros, as on a real file system.
/// </remarks>
internal sealed class SimulatedInode
{
    private const int S = IoConstants.SectorSize;

    private readonly Dictionary<long, byte[]> _durable;
    private readonly Dictionary<long, byte[]> _dirty = [];
    private readonly Dictionary<long, byte[]> _lost = [];

    /// <summary>Creates an empty file.</summary>
    /// <param name="id">A number unique within the storage, for deterministic ordering.</param>
    public SimulatedInode(long id)
        : this(id, [], 0)
    {
    }

    private SimulatedInode(long id, Dictionary<long, byte[]> durable, long length)
    {
        Id = id;
        _durable = durable;
        DurableLength = length;
        VolatileLength = length;
    }

    /// <summary>A number unique within the storage.</summary>
    public long Id { get; }

    /// <summary>The size that survives a crash for sure.</summary>
    public long DurableLength { get; private set; }

    /// <summary>The size reads see.</summary>
    public long VolatileLength { get; private set; }

    /// <summary>Number of sectors written since the last sync.</summary>
    public int DirtySectorCount => _dirty.Count;

    /// <summary>Copies what a read at <paramref name="position"/> sees into <paramref name="buffer"/>.</summary>
    /// <returns>Bytes copied; fewer than requested only at the volatile end of file.</returns>
    public int Read(Span<byte> buffer, long position)
    {
        long available = Math.Max(0, VolatileLength - position);
        int count = (int)Math.Min(buffer.Length, available);
        for (int done = 0; done < count;)
        {
            long at = position + done;
            long sector = at / S;
            int offset = (int)(at % S);
            int take = Math.Min(S - offset, count - done);
            byte[]? data = Visible(sector);
            if (data is null)
            {
                buffer.Slice(done, take).Clear();
            }
            else
            {
                data.AsSpan(offset, take).CopyTo(buffer.Slice(done, take));
            }

            done += take;
        }

        return count;
    }

    /// <summary>Writes into the volatile overlay, growing the volatile length if needed.</summary>
    public void Write(ReadOnlySpan<byte> buffer, long position) => Write(buffer, position, keep: null);

    /// <summary>
    /// Writes only the sectors for which <paramref name="keep"/> returns true (a write that failed part-way), or
    /// all of them when it is null.
    /// </summary>
    public void Write(ReadOnlySpan<byte> buffer, long position, Func<bool>? keep)
    {
        for (int done = 0; done < buffer.Length;)
        {
            long at = position + done;
            long sector = at / S;
            int offset = (int)(at % S);
            int take = Math.Min(S - offset, buffer.Length - done);
            if (keep is null || keep())
            {
                byte[] data = DirtyCopy(sector);
                buffer.Slice(done, take).CopyTo(data.AsSpan(offset, take));
                VolatileLength = Math.Max(VolatileLength, at + take);
            }

            done += take;
        }
    }

    /// <summary>Grows the volatile length to at least <paramref name="length"/> (fallocate mode 0).</summary>
    public void Grow(long length) => VolatileLength = Math.Max(VolatileLength, length);

    /// <summary>fdatasync: the overlay becomes durable, sectors lost to an earlier failed sync stay lost.</summary>
    public void Sync()
    {
        foreach ((long sector, byte[] data) in _dirty)
        {
            _durable[sector] = data;
            _ = _lost.Remove(sector);
        }

        _dirty.Clear();
        DurableLength = VolatileLength;
    }

    /// <summary>
    /// A failed fdatasync: each dirty sector independently either reached the disk or is lost (reads still see
    /// it, no later sync writes it, a crash reverts it). The length is not made durable.
    /// </summary>
    public void FailSync(Random random)
    {
        foreach ((long sector, byte[] data) in _dirty.OrderBy(static p => p.Key))
        {
            if (random.Next(2) == 0)
            {
                _durable[sector] = data;
                _ = _lost.Remove(sector);
            }
            else
            {
                _lost[sector] = data;
            }
        }

        _dirty.Clear();
    }

    /// <summary>ftruncate + fsync: syncs everything, then sets both lengths, zeroing any bytes past the new end.</summary>
    public void TruncateDurably(long length)
    {
        Sync();
        _lost.Clear();
        TrimDurable(length);
        DurableLength = length;
        VolatileLength = length;
    }

    /// <summary>Flips one bit of the durable image (the volatile view shows it unless the sector is rewritten).</summary>
    public void FlipDurableBit(long position, int bit)
    {
        Invariant.Assert(position < DurableLength, "a bit flip lands inside the durable file");
        long sector = position / S;
        if (!_durable.TryGetValue(sector, out byte[]? data))
        {
            data = new byte[S];
            _durable[sector] = data;
        }

        data[position % S] ^= (byte)(1 << bit);
    }

    /// <summary>The durable image as one array of <see cref="DurableLength"/> bytes.</summary>
    public byte[] DurableImage() => Image(DurableLength, static (inode, sector) => inode._durable.GetValueOrDefault(sector));

    /// <summary>The volatile image (what reads see) as one array of <see cref="VolatileLength"/> bytes.</summary>
    public byte[] VolatileImage() => Image(VolatileLength, static (inode, sector) => inode.Visible(sector));

    /// <summary>
    /// What this file holds after a power cut. The length is the durable or the volatile one (a coin flip when
    /// they differ). The written-but-unsynced sectors are then, chosen once per file: all kept (the write-back
    /// finished), all dropped, or torn — each sector independently kept or dropped. A kept sector holds its
    /// newest content, a dropped one its durable content; nothing else can appear. Lost sectors are dropped.
    /// </summary>
    public SimulatedInode Crash(long newId, Random random)
    {
        long length = VolatileLength == DurableLength || random.Next(2) == 0 ? DurableLength : VolatileLength;
        int mode = random.Next(3); // 0 all kept, 1 all dropped, 2 torn
        var durable = new Dictionary<long, byte[]>();
        foreach ((long sector, byte[] data) in _durable)
        {
            durable[sector] = (byte[])data.Clone();
        }

        foreach ((long sector, byte[] data) in _dirty.OrderBy(static p => p.Key))
        {
            bool kept = mode switch
            {
                0 => true,
                1 => false,
                _ => random.Next(2) == 0,
            };
            if (kept)
            {
                durable[sector] = (byte[])data.Clone();
            }
        }

        var crashed = new SimulatedInode(newId, durable, length);
        crashed.TrimDurable(length);
        return crashed;
    }

    private byte[]? Visible(long sector) =>
        _dirty.GetValueOrDefault(sector) ?? _lost.GetValueOrDefault(sector) ?? _durable.GetValueOrDefault(sector);

    private byte[] DirtyCopy(long sector)
    {
        if (!_dirty.TryGetValue(sector, out byte[]? data))
        {
            byte[]? current = _lost.GetValueOrDefault(sector) ?? _durable.GetValueOrDefault(sector);
            data = current is null ? new byte[S] : (byte[])current.Clone();
            _dirty[sector] = data;
        }

        return data;
    }

    private void TrimDurable(long length)
    {
        // Sectors wholly past the end go; the one holding the end keeps only its first (length % S) bytes.
        // Example: length 1000 keeps sector 0 whole and bytes [0, 488) of sector 1 (1000 - 512 = 488).
        long firstGone = (length + S - 1) / S;
        foreach (long sector in _durable.Keys.Where(s => s >= firstGone).ToList())
        {
            _ = _durable.Remove(sector);
        }

        int tail = (int)(length % S);
        if (tail != 0 && _durable.TryGetValue(length / S, out byte[]? last))
        {
            last.AsSpan(tail).Clear();
        }
    }

    private byte[] Image(long length, Func<SimulatedInode, long, byte[]?> sectorOf)
    {
        byte[] image = new byte[length];
        for (long sector = 0; sector * S < length; sector++)
        {
            byte[]? data = sectorOf(this, sector);
            if (data is not null)
            {
                int take = (int)Math.Min(S, length - (sector * S));
                data.AsSpan(0, take).CopyTo(image.AsSpan((int)(sector * S), take));
            }
        }

        return image;
    }
}
