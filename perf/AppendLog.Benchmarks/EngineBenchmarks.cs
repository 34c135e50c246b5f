using System.IO.Hashing;
using BenchmarkDotNet.Attributes;

namespace AppendLog.Benchmarks;

/// <summary>
/// The in-memory part of an append (encode, assign the offset, copy into a pooled chunk; full chunks are handed to
/// the I/O threads), buffer pool rent/return, and System.IO.Hashing's CRC-32C beside the format's own.
/// Steady-state append must allocate 0 B per operation (expectations.json).
/// </summary>
[MemoryDiagnoser]
public class EngineBenchmarks
{
    private readonly byte[] _value = new byte[1024];
    private readonly byte[] _data16KiB = new byte[16 * 1024];
    private LogBufferPool _pool = null!;
    private SegmentedLog _log = null!;
    private string _dir = "";
    private long _appends;

    [GlobalSetup]
    public void Setup()
    {
        new Random(42).NextBytes(_value);
        new Random(43).NextBytes(_data16KiB);
        _pool = new LogBufferPool(64L * 1024 * 1024);
        _dir = Path.Combine(Path.GetTempPath(), "appendlog-bench-" + Guid.NewGuid().ToString("N"));
        _log = SegmentedLog.OpenAsync(new LogOptions
        {
            Directory = _dir,
            BufferPool = _pool,
            FlushPolicy = FlushPolicy.Manual,
            SegmentSize = 1L << 32,
        }).AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _log.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _pool.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>
    /// TryAppend of a 1 KiB record with the manual flush policy: no sync on the measured path (full chunks are still
    /// written by the I/O threads, and counted: MemoryDiagnoser counts every thread). Every 8,192 appends the
    /// benchmark flushes, so the pool's budget is never spent; when the segment waits for its next reservation the
    /// benchmark yields and retries, as an appender would wait.
    /// </summary>
    [Benchmark]
    public long TryAppend1KiB()
    {
        if (++_appends % 8192 == 0)
        {
            _log.FlushAsync().AsTask().GetAwaiter().GetResult();
        }

        long offset;
        while (!_log.TryAppend(_value, out offset))
        {
            Thread.Yield();
        }

        return offset;
    }

    [Benchmark]
    public int PoolRentReturn()
    {
        _pool.TryRent(out var chunk);
        int size = chunk.Size;
        _pool.Return(chunk);
        return size;
    }

    [Benchmark]
    public uint Crc32CSystemIoHashing16KiB() => Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, _data16KiB);
}
