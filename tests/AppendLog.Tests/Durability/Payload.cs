using System.Buffers.Binary;

namespace AppendLog.Tests.Durability;

/// <summary>
/// Record values whose every byte is derivable from a 64-bit identity, so a record read back after a crash can be
/// checked byte for byte without keeping the appended bytes around: [id: 8 bytes LE][length: 4 bytes LE][filler].
/// The filler is an xorshift64 stream seeded by the id, so two identities never share their bytes by accident and a
/// record cut or shifted by one byte fails the check.
/// </summary>
internal static class Payload
{
    /// <summary>The smallest value: identity and length.</summary>
    public const int MinimumLength = 12;

    /// <summary>Builds the value of identity <paramref name="id"/> with <paramref name="length"/> bytes.</summary>
    public static byte[] Create(long id, int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, MinimumLength);
        var value = new byte[length];
        BinaryPrimitives.WriteInt64LittleEndian(value, id);
        BinaryPrimitives.WriteInt32LittleEndian(value.AsSpan(8), length);
        Fill(id, value.AsSpan(MinimumLength));
        return value;
    }

    /// <summary>
    /// Reads the identity of <paramref name="value"/> and checks every byte against what <see cref="Create"/> makes.
    /// </summary>
    /// <returns>Null when the value is intact; otherwise what is wrong.</returns>
    public static string? Check(byte[]? value, out long id)
    {
        id = -1;
        if (value is null || value.Length < MinimumLength)
        {
            return $"value of {value?.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "null"} bytes is too short to carry an identity";
        }

        id = BinaryPrimitives.ReadInt64LittleEndian(value);
        int length = BinaryPrimitives.ReadInt32LittleEndian(value.AsSpan(8));
        if (length != value.Length)
        {
            return $"identity {id}: length field {length} but the value has {value.Length} bytes";
        }

        var expected = new byte[length - MinimumLength];
        Fill(id, expected);
        int mismatch = value.AsSpan(MinimumLength).CommonPrefixLength(expected);
        return mismatch == expected.Length ? null : $"identity {id}: byte {MinimumLength + mismatch} differs from the appended value";
    }

    private static void Fill(long id, Span<byte> into)
    {
        ulong x = unchecked((ulong)id * 0x9E3779B97F4A7C15UL) | 1;
        for (int i = 0; i < into.Length; i++)
        {
            if ((i & 7) == 0)
            {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }

            into[i] = (byte)(x >> ((i & 7) * 8));
        }
    }
}
