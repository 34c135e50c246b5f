using System.Globalization;

namespace AppendLog.Segments;

/// <summary>
/// Segment files are named by their base offset in 20 decimal digits (the width of <see cref="long.MaxValue"/>),
/// so that a lexical sort of the directory is the offset order, as in Kafka.
/// </summary>
internal static class SegmentNames
{
    public const string DataExtension = ".log";
    public const string IndexExtension = ".index";

    public static string DataFile(string directory, long baseOffset) =>
        Path.Combine(directory, baseOffset.ToString("D20", CultureInfo.InvariantCulture) + DataExtension);

    public static string IndexFile(string directory, long baseOffset) =>
        Path.Combine(directory, baseOffset.ToString("D20", CultureInfo.InvariantCulture) + IndexExtension);

    /// <summary>Parses "00000000000000001234.log" (exactly 20 digits) into 1234; false for anything else.</summary>
    public static bool TryParse(string fileName, string extension, out long baseOffset)
    {
        baseOffset = 0;
        if (fileName.Length != 20 + extension.Length || !fileName.EndsWith(extension, StringComparison.Ordinal))
        {
            return false;
        }

        var digits = fileName.AsSpan(0, 20);
        foreach (char c in digits)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out baseOffset) && baseOffset >= 0;
    }
}
