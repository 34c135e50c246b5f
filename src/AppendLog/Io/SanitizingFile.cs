using AppendLog.Diagnostics;

namespace AppendLog.Io;

/// <summary>
/// A checking decorator around any <see cref="IDirectFile"/> (redpanda's file_sanitizer, in miniature). It turns
/// misuse that the kernel would report late, vaguely or not at all into an immediate
/// <see cref="AppendLogInvariantException"/>:
/// <list type="bullet">
/// <item>a misaligned buffer address, position or length while <see cref="IsDirect"/> (the kernel says EINVAL,
/// or worse, a file system silently falls back to buffered I/O);</item>
/// <item>two writes in flight at once that touch the same 4 KiB block (their order on disk is undefined, so a
/// block rewritten while its previous write is still in flight can end up with the older content);</item>
/// <item>any call after <see cref="Dispose"/>, and closing with writes still in flight.</item>
/// </list>
/// The checks are cheap (a lock and a scan of at most <see cref="InflightWritesMax"/> ranges per write, next to a
/// system call), so both storages always return files wrapped in this decorator.
/// </summary>
internal sealed class SanitizingFile : IDirectFile
{
    /// <summary>The most writes this decorator tracks in flight at once; more is itself a bug upstream.</summary>
    public const int InflightWritesMax = 4096;

    private readonly IDirectFile _inner;
    private readonly Lock _lock = new();

    // Block ranges [first, end) of the writes in flight, in units of IoConstants.BlockSize.
    private readonly List<(long First, long End)> _inflight = [];
    private bool _disposed;

    /// <summary>Wraps <paramref name="inner"/>; disposing this disposes it.</summary>
    /// <param name="inner">The file to check.</param>
    public SanitizingFile(IDirectFile inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        Invariant.Assert(inner.Alignment % IoConstants.BlockSize == 0, "file alignment is a multiple of 4 KiB");
        _inner = inner;
    }

    /// <summary>The decorated file.</summary>
    public IDirectFile Inner => _inner;

    /// <inheritdoc/>
    public string Path => _inner.Path;

    /// <inheritdoc/>
    public bool IsDirect => _inner.IsDirect;

    /// <inheritdoc/>
    public int Alignment => _inner.Alignment;

    /// <inheritdoc/>
    public long Length
    {
        get
        {
            AssertOpen();
            return _inner.Length;
        }
    }

    /// <inheritdoc/>
    public void Write(ReadOnlySpan<byte> buffer, long position)
    {
        AssertOpen();
        AssertAligned(buffer, position);
        if (buffer.IsEmpty)
        {
            _inner.Write(buffer, position);
            return;
        }

        // Blocks touched, [first, end): a 100-byte write at position 4000 touches 4000 / 4096 = 0 up to
        // (4100 + 4095) / 4096 = 2, i.e. blocks 0 and 1.
        long first = position / IoConstants.BlockSize;
        long end = (position + buffer.Length + IoConstants.BlockSize - 1) / IoConstants.BlockSize;
        Enter(first, end);
        try
        {
            _inner.Write(buffer, position);
        }
        finally
        {
            Exit(first, end);
        }
    }

    /// <summary>
    /// The Linux descriptor file behind this one when it was opened with O_DIRECT, for an I/O loop that hands writes to
    /// the kernel itself (<c>RingIoLoop</c>); such a write is bracketed by <see cref="BeginExternalWrite"/> and
    /// <see cref="EndExternalWrite"/>, so the same checks hold as for <see cref="Write"/>.
    /// </summary>
    internal DirectFile? DirectInner => OperatingSystem.IsLinux() && _inner is DirectFile { IsDirect: true } direct ? direct : null;

    /// <summary>The checks of <see cref="Write"/> for a write another party performs: open, aligned, no overlap in flight.</summary>
    internal void BeginExternalWrite(ReadOnlySpan<byte> buffer, long position)
    {
        AssertOpen();
        AssertAligned(buffer, position);
        Enter(position / IoConstants.BlockSize, (position + buffer.Length + IoConstants.BlockSize - 1) / IoConstants.BlockSize);
    }

    /// <summary>Ends a write begun with <see cref="BeginExternalWrite"/>.</summary>
    internal void EndExternalWrite(long position, int length) =>
        Exit(position / IoConstants.BlockSize, (position + length + IoConstants.BlockSize - 1) / IoConstants.BlockSize);

    /// <inheritdoc/>
    public int Read(Span<byte> buffer, long position)
    {
        AssertOpen();
        AssertAligned(buffer, position);
        return _inner.Read(buffer, position);
    }

    /// <inheritdoc/>
    public int ReadScatter(IReadOnlyList<Memory<byte>> buffers, long position)
    {
        AssertOpen();
        long at = position;
        foreach (var b in buffers)
        {
            AssertAligned(b.Span, at);
            at += b.Length;
        }

        return _inner.ReadScatter(buffers, position);
    }

    /// <inheritdoc/>
    public void Allocate(long position, long length)
    {
        AssertOpen();
        _inner.Allocate(position, length);
    }

    /// <inheritdoc/>
    public void SyncData()
    {
        AssertOpen();
        _inner.SyncData();
    }

    /// <inheritdoc/>
    public void Truncate(long length)
    {
        AssertOpen();
        _inner.Truncate(length);
    }

    /// <summary>Closes the inner file. Idempotent; closing with writes in flight is reported as a bug.</summary>
    public void Dispose()
    {
        int inflightCount;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            inflightCount = _inflight.Count;
        }

        _inner.Dispose();
        Invariant.Assert(inflightCount == 0, "a file is not closed while writes to it are in flight");
    }

    private void AssertOpen()
    {
        // Read without the lock: a racing Dispose is caught by the in-flight check in Dispose instead.
        Invariant.Assert(!Volatile.Read(ref _disposed), "no I/O on a file after it is disposed");
    }

    private unsafe void AssertAligned(ReadOnlySpan<byte> buffer, long position)
    {
        if (!_inner.IsDirect)
        {
            return;
        }

        int alignment = _inner.Alignment;
        Invariant.Assert(position % alignment == 0, "O_DIRECT position is a multiple of the alignment");
        Invariant.Assert(buffer.Length % alignment == 0, "O_DIRECT length is a multiple of the alignment");
        fixed (byte* address = buffer)
        {
            Invariant.Assert((nuint)address % (nuint)alignment == 0, "O_DIRECT buffer address is aligned");
        }
    }

    private void Enter(long first, long end)
    {
        lock (_lock)
        {
            foreach ((long otherFirst, long otherEnd) in _inflight)
            {
                // Half-open ranges [first, end) and [otherFirst, otherEnd) overlap iff each starts before the other ends.
                bool overlaps = first < otherEnd && otherFirst < end;
                Invariant.Assert(!overlaps, "no 4 KiB block is in two writes at once");
            }

            Invariant.Assert(_inflight.Count < InflightWritesMax, "writes in flight stay under InflightWritesMax");
            _inflight.Add((first, end));
        }
    }

    private void Exit(long first, long end)
    {
        lock (_lock)
        {
            bool removed = _inflight.Remove((first, end));
            Invariant.Assert(removed, "a completed write was registered as in flight");
        }
    }
}
