using System.Runtime.InteropServices;

namespace AppendLog.Testing;

/// <summary>
/// Native memory aligned for O_DIRECT, for tests that write through <c>IDirectFile</c> directly (the log itself
/// uses its chunk pool). Zeroed on allocation.
/// </summary>
internal sealed unsafe class AlignedBuffer : IDisposable
{
    private byte* _pointer;

    /// <summary>Allocates <paramref name="length"/> bytes aligned to <paramref name="alignment"/>.</summary>
    /// <param name="length">The size in bytes.</param>
    /// <param name="alignment">The alignment in bytes, a power of two.</param>
    public AlignedBuffer(int length, int alignment = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), (nuint)alignment);
        NativeMemory.Clear(_pointer, (nuint)length);
        Length = length;
    }

    /// <summary>The size in bytes.</summary>
    public int Length { get; }

    /// <summary>The whole buffer.</summary>
    public Span<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer is null, this);
            return new Span<byte>(_pointer, Length);
        }
    }

    /// <summary>Frees the memory. Idempotent.</summary>
    public void Dispose()
    {
        if (_pointer is not null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }
}
