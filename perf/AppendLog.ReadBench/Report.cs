using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AppendLog.ReadBench;

/// <summary>
/// The printed Markdown and the JSON document of one invocation (ReadBench; KafkaBench links this file).
/// </summary>
internal sealed class Report
{
    private readonly StringBuilder _markdown = new();

    public Dictionary<string, object?> Json { get; } = [];

    public void Line(string text = "")
    {
        Console.WriteLine(text);
        _markdown.AppendLine(text);
    }

    public void Table(string[] header, IEnumerable<string[]> rows)
    {
        Line("| " + string.Join(" | ", header) + " |");
        Line("|" + string.Join("|", header.Select((_, i) => i == 0 ? "---" : "---:")) + "|");
        foreach (var row in rows)
        {
            Line("| " + string.Join(" | ", row) + " |");
        }

        Line();
    }

    public void Save(string? prefix)
    {
        if (prefix is null)
        {
            return;
        }

        File.WriteAllText(prefix + ".md", _markdown.ToString());
        File.WriteAllText(prefix + ".json", JsonSerializer.Serialize(Json, new JsonSerializerOptions { WriteIndented = true }));
    }

    public static string F(double v, int digits = 1) =>
        v.ToString("N" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    /// <summary>A latency in µs, printed in the unit that keeps three figures.</summary>
    public static string Micros(long micros) => micros switch
    {
        < 1_000 => $"{micros} µs",
        < 1_000_000 => $"{micros / 1000.0:F2} ms",
        _ => $"{micros / 1e6:F2} s",
    };
}
