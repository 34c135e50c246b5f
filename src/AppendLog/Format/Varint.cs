namespace AppendLog.Format;

/// <summary>
/// Zigzag varints as Kafka writes them inside records (protobuf's <c>sint32</c>/<c>sint64</c> encoding).
/// </summary>
/// <remarks>
/// <para>
/// Zigzag maps signed to unsigned so that small magnitudes of either sign stay short:
/// 0 → 0, -1 → 1, 1 → 2, -2 → 3, 2 → 4 … (<c>(n &lt;&lt; 1) ^ (n &gt;&gt; 31)</c>). The unsigned value is then
/// written 7 bits per byte, least significant group first, with the top bit of each byte set when another
/// byte follows. Worked example: -1 (a null key length) zigzags to 1 and is the single byte 0x01;
/// 300 zigzags to 600 = 0b100_1011000, written as 0xD8 0x04.
/// </para>
/// <para>
/// Readers are strict: a 32-bit varint has at most 5 bytes and its fifth byte may carry only the 4 bits that
/// remain (≤ 0x0F); a 64-bit varint has at most 10 bytes and its tenth byte may only be 0 or 1. Anything
/// longer or wider is malformed, never silently truncated (Kafka's <c>ByteUtils</c> rejects the first case
/// and truncates the second; we write only canonical encodings, so rejecting both costs nothing).
/// </para>
/// </remarks>
internal static class Varint
{
    /// <summary>The longest 32-bit varint in bytes (ceil(32 / 7)).</summary>
    public const int Int32LengthMax = 5;

    /// <summary>The longest 64-bit varint in bytes (ceil(64 / 7)).</summary>
    public const int Int64LengthMax = 10;

    /// <summary>Zigzag-encodes a 32-bit value.</summary>
    public static uint ZigZag(int value) => (uint)((value << 1) ^ (value >> 31));

    /// <summary>Zigzag-encodes a 64-bit value.</summary>
    public static ulong ZigZag(long value) => (ulong)((value << 1) ^ (value >> 63));

    /// <summary>Decodes a zigzag-encoded 32-bit value.</summary>
    public static int UnZigZag(uint value) => (int)(value >> 1) ^ -(int)(value & 1);

    /// <summary>Decodes a zigzag-encoded 64-bit value.</summary>
    public static long UnZigZag(ulong value) => (long)(value >> 1) ^ -(long)(value & 1);

    /// <summary>The encoded size in bytes of <paramref name="value"/> as a zigzag varint (1 to 5).</summary>
    public static int SizeOf(int value) => SizeOfUnsigned(ZigZag(value));

    /// <summary>The encoded size in bytes of <paramref name="value"/> as a zigzag varlong (1 to 10).</summary>
    public static int SizeOf(long value) => SizeOfUnsigned(ZigZag(value));

    private static int SizeOfUnsigned(ulong value)
    {
        // Each byte carries 7 bits; 0 still takes one byte. Significant bits = 64 - lzcnt, so the size is
        // ceil(bits / 7): e.g. 600 has 10 significant bits → 2 bytes; 0 → (0 + 6) / 7 = 0 → clamped to 1.
        int bits = 64 - System.Numerics.BitOperations.LeadingZeroCount(value | 1);
        return (bits + 6) / 7;
    }

    /// <summary>Writes <paramref name="value"/> as a zigzag varint.</summary>
    /// <returns>The number of bytes written.</returns>
    /// <exception cref="ArgumentException">The destination is shorter than <see cref="SizeOf(int)"/>.</exception>
    public static int Write(Span<byte> destination, int value) => WriteUnsigned(destination, ZigZag(value));

    /// <summary>Writes <paramref name="value"/> as a zigzag varlong.</summary>
    /// <returns>The number of bytes written.</returns>
    /// <exception cref="ArgumentException">The destination is shorter than <see cref="SizeOf(long)"/>.</exception>
    public static int Write(Span<byte> destination, long value) => WriteUnsigned(destination, ZigZag(value));

    private static int WriteUnsigned(Span<byte> destination, ulong value)
    {
        int size = SizeOfUnsigned(value);
        if (destination.Length < size)
        {
            throw new ArgumentException($"A varint of {size} bytes does not fit in {destination.Length} bytes.", nameof(destination));
        }

        int i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    /// <summary>Reads a zigzag varint.</summary>
    /// <param name="source">The bytes, starting at the varint.</param>
    /// <param name="value">The decoded value.</param>
    /// <param name="length">The number of bytes the varint took.</param>
    /// <returns>False when <paramref name="source"/> ends inside the varint or the varint is malformed
    /// (longer than 5 bytes, or wider than 32 bits).</returns>
    public static bool TryRead(ReadOnlySpan<byte> source, out int value, out int length)
    {
        uint result = 0;
        for (int i = 0; i < Int32LengthMax && i < source.Length; i++)
        {
            uint b = source[i];
            if (i == Int32LengthMax - 1 && b > 0x0F)
            {
                break; // a fifth byte can only hold the top 4 of 32 bits (4 × 7 = 28 already read)
            }

            result |= (b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                value = UnZigZag(result);
                length = i + 1;
                return true;
            }
        }

        value = 0;
        length = 0;
        return false;
    }

    /// <summary>Reads a zigzag varlong.</summary>
    /// <param name="source">The bytes, starting at the varlong.</param>
    /// <param name="value">The decoded value.</param>
    /// <param name="length">The number of bytes the varlong took.</param>
    /// <returns>False when <paramref name="source"/> ends inside the varlong or it is malformed
    /// (longer than 10 bytes, or wider than 64 bits).</returns>
    public static bool TryRead(ReadOnlySpan<byte> source, out long value, out int length)
    {
        ulong result = 0;
        for (int i = 0; i < Int64LengthMax && i < source.Length; i++)
        {
            ulong b = source[i];
            if (i == Int64LengthMax - 1 && b > 0x01)
            {
                break; // a tenth byte can only hold the top bit of 64 (9 × 7 = 63 already read)
            }

            result |= (b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                value = UnZigZag(result);
                length = i + 1;
                return true;
            }
        }

        value = 0;
        length = 0;
        return false;
    }
}
