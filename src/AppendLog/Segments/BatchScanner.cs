using System.Runtime.InteropServices;
using AppendLog.Buffers;
using AppendLog.Diagnostics;
using AppendLog.Format;
using AppendLog.Io;

namespace AppendLog.Segments;

/// <summary>
/// Reads batches of one segment file front to back through an aligned window (O_DIRECT reads need aligned
/// buffers, positions and lengths). The window holds at least the largest batch plus one block, so any batch
/// starting inside it can be re-read whole from its block-aligned start. Used by recovery and by readers.
/// </summary>
internal sealed unsafe class BatchScanner : IDisposable
{
    private const int MinimumWindow = 1024 * 1024;

    private readonly int _capacity;
    private readonly int _maxBatchSize;
    private byte* _buffer;
    private IDirectFile? _file;
    private long _windowStart;
    private int _windowLength;

    public BatchScanner(int maxBatchSize)
    {
        _maxBatchSize = maxBatchSize;
        _capacity = (int)Alignment.AlignUp(Math.Max(maxBatchSize, MinimumWindow) + (2L * Alignment.BlockSize));
        _buffer = (byte*)NativeMemory.AlignedAlloc((nuint)_capacity, Alignment.BlockSize);
    }

    /// <summary>Bytes read from files so far (for metrics and tests).</summary>
    public long BytesRead { get; private set; }

    public void Reset(IDirectFile file)
    {
        _file = file;
        _windowStart = 0;
        _windowLength = 0;
    }

    /// <summary>
    /// Checks the batch at <paramref name="position"/>, reading no bytes at or past <paramref name="limit"/>.
    /// On <see cref="BatchCheck.Valid"/>, <paramref name="batch"/> spans the whole batch (valid until the next call).
    /// </summary>
    public BatchCheck TryRead(long position, long limit, out RecordBatchHeader header, out ReadOnlySpan<byte> batch)
    {
        batch = default;
        var check = CheckInWindow(position, limit, out header, out batch);
        if (check == BatchCheck.Incomplete && RefillCouldHelp(position, limit))
        {
            Fill(position);
            check = CheckInWindow(position, limit, out header, out batch);
        }

        return check;
    }

    public void Dispose()
    {
        if (_buffer is not null)
        {
            NativeMemory.AlignedFree(_buffer);
            _buffer = null;
        }
    }

    /// <summary>
    /// True when reading again could add bytes: the window is empty, starts elsewhere, or was short (end of file at
    /// the time) while the limit lies beyond it (a tailing reader whose file has grown since).
    /// </summary>
    private bool RefillCouldHelp(long position, long limit) =>
        _windowLength == 0
        || _windowStart != Alignment.AlignDown(position)
        || (_windowLength < _capacity && _windowStart + _windowLength < limit);

    private BatchCheck CheckInWindow(long position, long limit, out RecordBatchHeader header, out ReadOnlySpan<byte> batch)
    {
        batch = default;
        header = default;
        if (position < _windowStart || position >= _windowStart + _windowLength)
        {
            return BatchCheck.Incomplete;
        }

        long available = Math.Min(_windowStart + _windowLength, limit) - position;
        var span = new ReadOnlySpan<byte>(_buffer + (position - _windowStart), (int)Math.Max(0, available));
        var check = RecordBatchDecoder.Check(span, _maxBatchSize, out header);
        if (check == BatchCheck.Valid)
        {
            batch = span[..(int)header.TotalSize];
        }

        return check;
    }

    private void Fill(long position)
    {
        long start = Alignment.AlignDown(position);
        int n = _file!.Read(new Span<byte>(_buffer, _capacity), start);
        BytesRead += n;
        AppendLogMetrics.Read(n);
        _windowStart = start;
        _windowLength = n;
    }
}
