using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace DiskProbe;

/// <summary>Latency percentiles in microseconds.</summary>
internal sealed record Percentiles(int Count, double P50, double P90, double P99, double P999, double Max)
{
    public static Percentiles Of(List<double> micros)
    {
        micros.Sort();
        double At(double q) => micros.Count == 0 ? double.NaN : micros[Math.Min(micros.Count - 1, (int)Math.Ceiling(q * micros.Count) - 1)];
        return new Percentiles(micros.Count, At(0.50), At(0.90), At(0.99), At(0.999), micros.Count == 0 ? double.NaN : micros[^1]);
    }

    public override string ToString() => $"p50 {P50,8:F0} µs  p90 {P90,8:F0}  p99 {P99,8:F0}  p99.9 {P999,8:F0}  max {Max,8:F0}  (n={Count})";
}

/// <summary>A write + fdatasync loop's rate and cycle latency.</summary>
internal sealed record CycleResult(string Space, int WriteSize, double CyclesPerSecond, Percentiles Cycle);

/// <summary>Aggregate write throughput of one (block size, threads) cell.</summary>
internal sealed record ThroughputResult(int BlockSize, int Threads, double MiBPerSecond, double Iops);

/// <summary>
/// The measurements, all in files the probe creates in the target directory and deletes afterwards. Every write
/// is block-aligned from a 4 KiB-aligned buffer, as AppendLog's are, so O_DIRECT accepts it.
/// </summary>
internal sealed class Measurements(string directory, bool direct, TimeSpan cell, long fileBytes) : IDisposable
{
    private const int Alignment = 4096;
    private SafeFileHandle? _throughputFile;

    public bool Direct => direct;

    /// <summary>
    /// fdatasync latency after one small write, the cost every group commit pays at least once. Writes go over
    /// space that was written and synced first, so the sync carries no extent conversion (as in AppendLog's
    /// zero-filled preallocation).
    /// </summary>
    public (Percentiles Sync, Percentiles Cycle) SyncLatency(int writeSize, int operationsMax)
    {
        string path = Path.Combine(directory, "diskprobe-sync.dat");
        long length = (long)writeSize * operationsMax;
        using var buffer = new AlignedBuffer(Math.Max(writeSize, 1024 * 1024));
        try
        {
            using var file = Native.Create(path, direct);
            ZeroFill(file, buffer, length);
            var sync = new List<double>(operationsMax);
            var cycle = new List<double>(operationsMax);
            long deadline = Stopwatch.GetTimestamp() + (long)(cell.TotalSeconds * 2 * Stopwatch.Frequency);
            for (int i = 0; i < operationsMax && Stopwatch.GetTimestamp() < deadline; i++)
            {
                buffer.Span[..8].Fill((byte)i);
                long t0 = Stopwatch.GetTimestamp();
                RandomAccess.Write(file, buffer.Span[..writeSize], (long)i * writeSize);
                long t1 = Stopwatch.GetTimestamp();
                Native.DataSync(file);
                long t2 = Stopwatch.GetTimestamp();
                sync.Add(Micros(t1, t2));
                cycle.Add(Micros(t0, t2));
            }

            return (Percentiles.Of(sync), Percentiles.Of(cycle));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// Write throughput without syncs: <paramref name="threads"/> threads each write <paramref name="blockSize"/>
    /// blocks sequentially through their own slice of one file, for the cell's duration. Threads stand for queue
    /// depth: each has one pwrite in flight, as AppendLog's I/O workers do. The file is written with zeros once,
    /// before the first cell, because AppendLog writes records over zero-filled reserved space: writes into
    /// unwritten (only fallocated) extents would add an extent conversion to each one and measure something else.
    /// </summary>
    public ThroughputResult Throughput(int blockSize, int threads)
    {
        var file = ThroughputFile();
        long slice = fileBytes / threads / blockSize * blockSize;
        long[] written = new long[threads];
        long start = Stopwatch.GetTimestamp();
        long deadline = start + (long)(cell.TotalSeconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            using var buffer = new AlignedBuffer(blockSize);
            buffer.Span.Fill((byte)(t + 1));
            long position = 0;
            while (Stopwatch.GetTimestamp() < deadline)
            {
                RandomAccess.Write(file, buffer.Span, (t * slice) + position);
                written[t] += blockSize;
                position = (position + blockSize) % slice;
            }
        }) { IsBackground = true }).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        long total = written.Sum();
        return new ThroughputResult(blockSize, threads, total / seconds / (1024 * 1024), total / (double)blockSize / seconds);
    }

    /// <summary>Deletes the throughput file.</summary>
    public void Dispose()
    {
        if (_throughputFile is not null)
        {
            _throughputFile.Dispose();
            File.Delete(ThroughputPath);
        }
    }

    private string ThroughputPath => Path.Combine(directory, "diskprobe-throughput.dat");

    private SafeFileHandle ThroughputFile()
    {
        if (_throughputFile is null)
        {
            _throughputFile = Native.Create(ThroughputPath, direct);
            Native.Allocate(_throughputFile, 0, fileBytes);
            using var zeros = new AlignedBuffer(1024 * 1024);
            ZeroFill(_throughputFile, zeros, fileBytes / Alignment * Alignment);
        }

        return _throughputFile;
    }

    /// <summary>
    /// Sequential write + fdatasync cycles, into space that is only fallocated (each sync also commits the
    /// unwritten-to-written extent conversion in the file system's journal) or pre-zeroed (written and synced
    /// beforehand, so the sync flushes data only). The difference is what zero-filling preallocation buys.
    /// </summary>
    public CycleResult Cycles(bool preZeroed, int writeSize, int operationsMax)
    {
        string path = Path.Combine(directory, "diskprobe-cycles.dat");
        long length = (long)writeSize * operationsMax;
        using var buffer = new AlignedBuffer(Math.Max(writeSize, 1024 * 1024));
        try
        {
            using var file = Native.Create(path, direct);
            Native.Allocate(file, 0, length);
            if (preZeroed)
            {
                ZeroFill(file, buffer, length);
            }

            Native.DataSync(file);
            var cycles = new List<double>(operationsMax);
            long start = Stopwatch.GetTimestamp();
            long deadline = start + (long)(cell.TotalSeconds * 2 * Stopwatch.Frequency);
            for (int i = 0; i < operationsMax && Stopwatch.GetTimestamp() < deadline; i++)
            {
                buffer.Span[..8].Fill((byte)(i + 1));
                long t0 = Stopwatch.GetTimestamp();
                RandomAccess.Write(file, buffer.Span[..writeSize], (long)i * writeSize);
                Native.DataSync(file);
                cycles.Add(Micros(t0, Stopwatch.GetTimestamp()));
            }

            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            return new CycleResult(preZeroed ? "pre-zeroed" : "fallocated", writeSize, cycles.Count / seconds, Percentiles.Of(cycles));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>True when this directory's file system accepts an O_DIRECT open and one aligned write.</summary>
    public static bool SupportsDirect(string directory, out string? reason)
    {
        string path = Path.Combine(directory, "diskprobe-direct.dat");
        try
        {
            using var file = Native.Create(path, direct: true);
            using var buffer = new AlignedBuffer(Alignment);
            RandomAccess.Write(file, buffer.Span, 0);
            reason = null;
            return true;
        }
        catch (IOException e)
        {
            reason = e.Message;
            return false;
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static void ZeroFill(SafeFileHandle file, AlignedBuffer buffer, long length)
    {
        buffer.Span.Clear();
        for (long at = 0; at < length; at += buffer.Length)
        {
            RandomAccess.Write(file, buffer.Span[..(int)Math.Min(buffer.Length, length - at)], at);
        }

        Native.DataSync(file);
    }

    private static double Micros(long from, long to) => (to - from) * 1_000_000.0 / Stopwatch.Frequency;

    /// <summary>A 4 KiB-aligned native buffer (O_DIRECT needs the memory aligned, not only the file position).</summary>
    private sealed unsafe class AlignedBuffer : IDisposable
    {
        private void* _memory;

        public AlignedBuffer(int length)
        {
            Length = (length + Alignment - 1) / Alignment * Alignment;
            _memory = NativeMemory.AlignedAlloc((nuint)Length, Alignment);
            NativeMemory.Clear(_memory, (nuint)Length);
        }

        public int Length { get; }

        public Span<byte> Span => new(_memory, Length);

        public void Dispose()
        {
            NativeMemory.AlignedFree(_memory);
            _memory = null;
        }
    }
}
