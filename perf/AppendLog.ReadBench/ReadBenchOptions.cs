using System.Globalization;

namespace AppendLog.ReadBench;

/// <summary>Command-line options; every one has a default that keeps a mode under about two minutes.</summary>
internal sealed record ReadBenchOptions
{
    public const string Usage = """
        AppendLog.ReadBench MODE [options]        MODE: seq | lookup | tail | scan-tail | pagecache
          seq prints beside AppendLog the disk's sequential O_DIRECT rates (C#, and fio when installed);
          scan-tail runs tail readers alone, then beside a reader scanning a cold log, sharing one batch cache
          --dir PATH            data directory (a fresh subdirectory per run; required)
          --gib N               log size for seq, lookup, pagecache, and scan-tail's cold log (default 2; fractions allowed)
          --record-size N       bytes per record value (default 1024)
          --rounds N            seq: rounds, engines alternated, medians reported (default 3)
          --probes N            lookup: probes per kind and pass (default 10000)
          --rates LIST          tail: appended records/s, comma-separated (default 1000,10000,50000); scan-tail: the first
          --appenders N         tail: concurrent appenders sharing the rate (default 1)
          --readers LIST        tail: tail readers per run (default 1,4); scan-tail: the first
          --warmup S            tail: unmeasured seconds per run (default 1)
          --duration S          tail: measured seconds per run (default 4)
          --read-ahead-mib N    LogOptions.MaximumReadAhead for AppendLog's readers (default: the library's)
          --cache-mib N         batch-cache budget, applied through LogOptions.BatchCache when the library has it (scan-tail: default 64)
          --out PREFIX          also write PREFIX.md and PREFIX.json
          --keep-data           keep the data directory
        """;

    public string Mode { get; init; } = "";
    public string Directory { get; init; } = "";
    public double Gib { get; init; } = 2;
    public int RecordSize { get; init; } = 1024;
    public int Rounds { get; init; } = 3;
    public int Probes { get; init; } = 10_000;
    public int[] Rates { get; init; } = [1_000, 10_000, 50_000];
    public int Appenders { get; init; } = 1;
    public int[] Readers { get; init; } = [1, 4];
    public double Warmup { get; init; } = 1;
    public double Duration { get; init; } = 4;
    public long? CacheMib { get; init; }
    public long? ReadAheadMib { get; init; }
    public string? Out { get; init; }
    public bool KeepData { get; init; }

    public static ReadBenchOptions Parse(string[] args)
    {
        if (args.Length == 0 || args[0] is not ("seq" or "lookup" or "tail" or "scan-tail" or "pagecache"))
        {
            throw new ArgumentException("the first argument is the mode: seq, lookup, tail, scan-tail or pagecache");
        }

        var o = new ReadBenchOptions { Mode = args[0] };
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            static int[] Ints(string s) => s.Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
            o = args[i] switch
            {
                "--dir" => o with { Directory = Path.GetFullPath(Next()) },
                "--gib" => o with { Gib = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--record-size" => o with { RecordSize = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--rounds" => o with { Rounds = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--probes" => o with { Probes = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--rates" => o with { Rates = Ints(Next()) },
                "--appenders" => o with { Appenders = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--readers" => o with { Readers = Ints(Next()) },
                "--warmup" => o with { Warmup = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--duration" => o with { Duration = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--cache-mib" => o with { CacheMib = long.Parse(Next(), CultureInfo.InvariantCulture) },
                "--read-ahead-mib" => o with { ReadAheadMib = long.Parse(Next(), CultureInfo.InvariantCulture) },
                "--out" => o with { Out = Next() },
                "--keep-data" => o with { KeepData = true },
                _ => throw new ArgumentException($"unknown option {args[i]}"),
            };
        }

        if (string.IsNullOrEmpty(o.Directory))
        {
            throw new ArgumentException("--dir is required");
        }

        if (o.RecordSize < 16)
        {
            throw new ArgumentException("--record-size must be at least 16 (the payload carries a sequence number and a timestamp)");
        }

        return o;
    }
}
