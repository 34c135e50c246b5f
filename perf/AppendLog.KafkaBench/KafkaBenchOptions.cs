using System.Globalization;

namespace AppendLog.KafkaBench;

/// <summary>Command-line options; the defaults are the targets (1 KiB records, 1/16/64 partitions, 2 GiB).</summary>
internal sealed record KafkaBenchOptions
{
    public const string Usage = """
        AppendLog.KafkaBench [options]
          --dir PATH            data directory (a fresh subdirectory per run; required)
          --partitions LIST     partitions (= logs on the library's side), comma-separated (default 1,16,64)
          --inflight N          records in flight at once, on both sides (default 64)
          --record-size N       bytes per record value (default 1024)
          --warmup S            unmeasured seconds per produce run (default 5)
          --duration S          measured seconds per produce run (default 30)
          --linger-ms N         the producer's linger.ms (default 0: a record waits for no batch-mate)
          --no-idempotence      produce without the idempotent producer (librdkafka then allows more than 5
                                requests in flight per connection; it sends one partition per request)
          --broker-inflight N   the broker's MaximumInflightRequestsPerConnection (default: the broker's, 16;
                                1 serves one request at a time per connection)
          --catchup-mib N       consumer catch-up data size in MiB (default 2048)
          --fetch-max-mib N     the consumer's max.partition.fetch.bytes in MiB, also the raw fetch's (default 1)
          --alloc-trace N       after the raw fetch loop, N more passes over the partition with the runtime's
                                AllocationTick event sampled: the broker's allocations by type (default 0)
          --replicated          also run the replicated mode: produce against three broker processes (each
                                partition a Raft group) and a leader SIGKILL under a steady producer
          --skip-produce        run only the catch-up part
          --skip-catchup        run only the produce part
          --out PREFIX          also write PREFIX.md and PREFIX.json
          --keep-data           keep the data directory
        """;

    public string Directory { get; init; } = "";
    public int[] Partitions { get; init; } = [1, 16, 64];
    public int Inflight { get; init; } = 64;
    public int RecordSize { get; init; } = 1024;
    public double Warmup { get; init; } = 5;
    public double Duration { get; init; } = 30;
    public int LingerMs { get; init; }
    public bool Idempotence { get; init; } = true;
    public long CatchupMib { get; init; } = 2048;
    public int? BrokerInflight { get; init; }
    public int FetchMaxMib { get; init; } = 1;
    public int AllocTracePasses { get; init; }
    public bool Replicated { get; init; }
    public bool SkipProduce { get; init; }
    public bool SkipCatchup { get; init; }
    public string? Out { get; init; }
    public bool KeepData { get; init; }

    public static KafkaBenchOptions Parse(string[] args)
    {
        var o = new KafkaBenchOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);
            static double Seconds(string s) => double.Parse(s, CultureInfo.InvariantCulture);
            o = args[i] switch
            {
                "--dir" => o with { Directory = Path.GetFullPath(Next()) },
                "--partitions" => o with { Partitions = Next().Split(',').Select(Int).ToArray() },
                "--inflight" => o with { Inflight = Int(Next()) },
                "--record-size" => o with { RecordSize = Int(Next()) },
                "--warmup" => o with { Warmup = Seconds(Next()) },
                "--duration" => o with { Duration = Seconds(Next()) },
                "--linger-ms" => o with { LingerMs = Int(Next()) },
                "--no-idempotence" => o with { Idempotence = false },
                "--broker-inflight" => o with { BrokerInflight = Int(Next()) },
                "--catchup-mib" => o with { CatchupMib = long.Parse(Next(), CultureInfo.InvariantCulture) },
                "--fetch-max-mib" => o with { FetchMaxMib = Int(Next()) },
                "--alloc-trace" => o with { AllocTracePasses = Int(Next()) },
                "--replicated" => o with { Replicated = true },
                "--skip-produce" => o with { SkipProduce = true },
                "--skip-catchup" => o with { SkipCatchup = true },
                "--out" => o with { Out = Next() },
                "--keep-data" => o with { KeepData = true },
                _ => throw new ArgumentException($"unknown option {args[i]}"),
            };
        }

        if (string.IsNullOrEmpty(o.Directory))
        {
            throw new ArgumentException("--dir is required");
        }

        if (o.Partitions.Length == 0 || o.Partitions.Any(p => p is < 1 or > 1024))
        {
            throw new ArgumentException("--partitions: each between 1 and 1024 (the broker's limit per topic)");
        }

        if (o.Inflight < 1 || o.RecordSize < 1 || o.Duration <= 0 || o.Warmup < 0 || o.LingerMs < 0)
        {
            throw new ArgumentException("--inflight, --record-size and --duration must be positive; --warmup, --linger-ms not negative");
        }

        if (o.CatchupMib < 1 || o.FetchMaxMib is < 1 or > 64 || o.AllocTracePasses < 0)
        {
            throw new ArgumentException("--catchup-mib at least 1; --fetch-max-mib between 1 and 64; --alloc-trace not negative");
        }

        return o;
    }
}
