using System.Buffers;
using System.Runtime.InteropServices;
using AppendLog.Diagnostics;

namespace AppendLog.Buffers;

/// <summary>
/// One block-aligned native buffer owned by a <see cref="LogBufferPool"/>. Its memory lives as long as the
/// pool keeps it (chunks are reused, never freed while the pool is in use), so spans over it stay valid
/// while the chunk is rented. Renters see spans only; the pointer never leaves the Buffers folder.
/// </summary>
internal sealed unsafe class AlignedChunk
{
    private readonly byte* _pointer;

    public AlignedChunk(LogBufferPool owner, int size)
    {
        Invariant.Assert(Alignment.IsAligned(size), "chunk size is a multiple of the block size");
        Owner = owner;
        Size = size;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)size, Alignment.BlockSize);
    }

    /// <summary>The pool the chunk returns to.</summary>
    public LogBufferPool Owner { get; }

    /// <summary>The chunk's size in bytes (a multiple of <see cref="Alignment.BlockSize"/>).</summary>
    public int Size { get; }

    /// <summary>True for a reader's chunk allocated beyond the pool's budget (freed on return, never pooled).</summary>
    public bool OutsideBudget { get; init; }

    /// <summary>True while rented (set and cleared by the pool; asserts against double return).</summary>
    public bool IsRented { get; set; }

    /// <summary>The whole chunk.</summary>
    public Span<byte> Span
    {
        get
        {
            Invariant.Assert(IsRented, "a chunk is used only while rented");
            return new Span<byte>(_pointer, Size);
        }
    }

    /// <summary>
    /// The whole chunk as <see cref="Memory{T}"/>, for APIs that take a list of buffers (a scatter read). Valid only while
    /// rented, like <see cref="Span"/>: callers use it for the duration of one call and keep no copy. The manager behind it
    /// is made once per chunk (chunks live as long as their pool).
    /// </summary>
    public Memory<byte> Memory
    {
        get
        {
            Invariant.Assert(IsRented, "a chunk is used only while rented");
            return (_memory ??= new ChunkMemory(this)).Memory;
        }
    }

    private ChunkMemory? _memory;

    /// <summary>Zeroes the whole chunk, so bytes the renter does not fill reach the disk as zeros (no buffer bleed).</summary>
    public void Clear() => NativeMemory.Clear(_pointer, (nuint)Size);

    /// <summary>Frees the native memory; only the pool calls this, for chunks it holds.</summary>
    public void Free() => NativeMemory.AlignedFree(_pointer);

    /// <summary>Native memory needs no pinning: <see cref="Pin"/> hands out the pointer itself.</summary>
    private sealed class ChunkMemory(AlignedChunk chunk) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => chunk.Span;

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            Invariant.Assert((uint)elementIndex <= (uint)chunk.Size, "a pin stays inside the chunk");
            return new MemoryHandle(chunk._pointer + elementIndex);
        }

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
