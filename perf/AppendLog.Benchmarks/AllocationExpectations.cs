using System.Text.Json;
using BenchmarkDotNet.Reports;

namespace AppendLog.Benchmarks;

/// <summary>
/// Checks BenchmarkDotNet summaries against expectations.json: every benchmark listed there must allocate at
/// most the listed bytes per operation. Time is never gated (the machines are shared and noisy); allocation
/// is deterministic enough to gate.
/// </summary>
internal static class AllocationExpectations
{
    public const string FileName = "expectations.json";

    /// <summary>Prints one PASS/FAIL/SKIP line per benchmark run.</summary>
    /// <returns>The number of failures.</returns>
    public static int Check(IEnumerable<Summary> summaries, TextWriter output)
    {
        Dictionary<string, long> expected = Load(Path.Combine(AppContext.BaseDirectory, FileName));
        int failures = 0;
        foreach (BenchmarkReport report in summaries.SelectMany(s => s.Reports))
        {
            string name = $"{report.BenchmarkCase.Descriptor.Type.Name}.{report.BenchmarkCase.Descriptor.WorkloadMethod.Name}";
            long? allocated = report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase);
            if (!expected.TryGetValue(name, out long limit))
            {
                output.WriteLine($"SKIP {name}: no expectation in {FileName} (allocated {allocated?.ToString() ?? "?"} B/op)");
            }
            else if (allocated is null || !report.Success)
            {
                failures++;
                output.WriteLine($"FAIL {name}: no allocation figure (did the benchmark run with [MemoryDiagnoser]?)");
            }
            else if (allocated > limit)
            {
                failures++;
                output.WriteLine($"FAIL {name}: allocated {allocated} B/op, expected at most {limit} B/op");
            }
            else
            {
                output.WriteLine($"PASS {name}: allocated {allocated} B/op (at most {limit})");
            }
        }

        return failures;
    }

    private static Dictionary<string, long> Load(string path)
    {
        using FileStream stream = File.OpenRead(path);
        using JsonDocument document = JsonDocument.Parse(stream);
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (JsonProperty entry in document.RootElement.GetProperty("allocatedBytesPerOperation").EnumerateObject())
        {
            result[entry.Name] = entry.Value.GetInt64();
        }

        return result;
    }
}
