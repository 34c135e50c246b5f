using AppendLog.Benchmarks;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

// Run the selected benchmarks (BenchmarkDotNet's usual arguments: --filter, --job short, …), then gate the
// allocations they measured against expectations.json. Exit code 1 when any expectation fails.
IEnumerable<Summary> summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args).ToList();

var format = new FormatBenchmarks();
format.Setup();
Console.WriteLine($"LZ4 input compresses {format.Lz4Ratio:F2}:1");

int failures = AllocationExpectations.Check(summaries, Console.Out);
Console.WriteLine(failures == 0 ? "Allocation expectations: PASS" : $"Allocation expectations: FAIL ({failures})");
return failures == 0 ? 0 : 1;
