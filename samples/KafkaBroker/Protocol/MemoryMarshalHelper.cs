using System.Runtime.InteropServices;

namespace KafkaBroker.Protocol;

internal static class MemoryMarshalHelper
{
    /// <summary>
    /// The writable memory behind a buffer this code owns (an <c>ArrayBufferWriter</c>'s written part).
    /// </summary>
    public static Memory<byte> AsWritable(ReadOnlyMemory<byte> memory) => MemoryMarshal.AsMemory(memory);
}
