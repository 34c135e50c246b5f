using System.Runtime.InteropServices;
using AppendLog.Buffers;
using AppendLog.Io;

namespace AppendLog.Segments;

/// <summary>
/// Writes a new segment file front to back through one aligned buffer, so the same code works with O_DIRECT
/// (aligned address, position and length) and buffered files. Full blocks go out once 1 MiB has gathered; the
/// partial last block is written zero-padded and the file is then trimmed to the logical size (as the seal does).
/// </summary>
internal sealed unsafe class SegmentOutput : IDisposable
{
    private const int FlushThreshold = 1024 * 1024;

    private readonly IDirectFile _file;
    private readonly int _capacity;
    private byte* _buffer;
    private int _buffered;
    private long _fileStart;

    public SegmentOutput(IDirectFile file, int maxBatchSize)
    {
        _file = file;
        _capacity = (int)Alignment.AlignUp(FlushThreshold + (long)maxBatchSize + Alignment.BlockSize);
        _buffer = (byte*)NativeMemory.AlignedAlloc((nuint)_capacity, Alignment.BlockSize);
    }

    /// <summary>Bytes appended so far: the position the next batch starts at.</summary>
    public long Position => _fileStart + _buffered;

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (_buffered + bytes.Length > _capacity)
        {
            throw new InvalidOperationException($"A batch of {bytes.Length} bytes exceeds the output window.");
        }

        bytes.CopyTo(new Span<byte>(_buffer + _buffered, bytes.Length));
        _buffered += bytes.Length;
        if (_buffered >= FlushThreshold)
        {
            WriteWholeBlocks();
        }
    }

    /// <summary>Writes what is left, trims the file to <see cref="Position"/> and syncs it.</summary>
    public void Complete()
    {
        long size = Position;
        int padded = (int)Alignment.AlignUp(_buffered);
        new Span<byte>(_buffer + _buffered, padded - _buffered).Clear();
        if (padded > 0)
        {
            _file.Write(new ReadOnlySpan<byte>(_buffer, padded), _fileStart);
        }

        _file.Truncate(size);
        _file.SyncData();
    }

    public void Dispose()
    {
        if (_buffer is not null)
        {
            NativeMemory.AlignedFree(_buffer);
            _buffer = null;
        }
    }

    private void WriteWholeBlocks()
    {
        int whole = (int)Alignment.AlignDown(_buffered);
        _file.Write(new ReadOnlySpan<byte>(_buffer, whole), _fileStart);
        int rest = _buffered - whole;
        new Span<byte>(_buffer + whole, rest).CopyTo(new Span<byte>(_buffer, rest));
        _fileStart += whole;
        _buffered = rest;
    }
}
