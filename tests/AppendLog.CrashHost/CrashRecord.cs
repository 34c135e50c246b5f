using System.Buffers.Binary;

namespace AppendLog.CrashHost;

/// <summary>
/// The values the crash host appends, derivable byte for byte from (writer, sequence):
/// [writer: 4 LE][sequence: 8 LE][length: 4 LE][xorshift64 filler seeded by both]. The test project compiles this
/// same file (a linked Compile item) to check what it reads back after the kill.
/// </summary>
internal static class CrashRecord
{
    public const int HeaderLength = 16;

    public static byte[] Value(int writer, long sequence, int length)
    {
        var value = new byte[length];
        BinaryPrimitives.WriteInt32LittleEndian(value, writer);
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(4), sequence);
        BinaryPrimitives.WriteInt32LittleEndian(value.AsSpan(12), length);
        ulong x = unchecked(((ulong)(uint)writer << 40) ^ (ulong)sequence ^ 0x9E3779B97F4A7C15UL) | 1;
        for (int i = HeaderLength; i < length; i++)
        {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            value[i] = (byte)x;
        }

        return value;
    }

    /// <summary>Reads (writer, sequence) from a value and checks every byte; false when anything differs.</summary>
    public static bool TryParse(byte[]? value, out int writer, out long sequence)
    {
        writer = -1;
        sequence = -1;
        if (value is null || value.Length < HeaderLength)
        {
            return false;
        }

        writer = BinaryPrimitives.ReadInt32LittleEndian(value);
        sequence = BinaryPrimitives.ReadInt64LittleEndian(value.AsSpan(4));
        int length = BinaryPrimitives.ReadInt32LittleEndian(value.AsSpan(12));
        return length == value.Length && value.AsSpan().SequenceEqual(Value(writer, sequence, length));
    }
}
