using System.Globalization;

namespace AppendLog.LoadGen;

/// <summary>Whether producers follow a fixed-rate schedule (open loop) or wait for each ack (closed loop).</summary>
internal enum LoopKind
{
    Open,
    Closed,
}

/// <summary>How open-loop producers are scheduled: the two modes are reported side by side, named in each title.</summary>
internal enum ProducerMode
{
    /// <summary>
    /// One dedicated thread per producer that sleeps until each intended send time with nanosleep(2) and a 1 µs
    /// timer slack, sending one record per wake-up: the harness's most punctual sender.
    /// </summary>
    Dedicated,

    /// <summary>
    /// One async loop per producer on the process's shared thread pool (the pool the engines' completions use),
    /// waiting with <c>Task.Delay</c> (the runtime's timer, millisecond resolution) and sending every record whose
    /// intended time has come when it wakes: producers share the CPU and the pool as an application's threads do.
    /// </summary>
    Pool,
}

/// <summary>The command line, parsed and validated. Sizes in bytes, rates in MB/s (10^6 bytes per second).</summary>
internal sealed record LoadGenOptions
{
    public string Engines { get; init; } = "filestream,fasterlog";
    public int Producers { get; init; } = 16;
    public int Logs { get; init; } = 1;
    public int RecordSizeBytes { get; init; } = 1024;
    public LoopKind Loop { get; init; } = LoopKind.Open;
    public IReadOnlyList<double> RatesMBps { get; init; } = [10, 50, 100, 200];
    public IReadOnlyList<ProducerMode> ProducerModes { get; init; } = [ProducerMode.Dedicated];

    /// <summary>The minimal loop's prepared file: the pre-zeroed ring, or the first fallocation.</summary>
    public int MinimalLoopFileMib { get; init; } = 1024;
    public IReadOnlyList<int> Concurrencies { get; init; } = [1, 16, 64];
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);
    public string Directory { get; init; } = Path.Combine(".", "loadgen-data");
    public int Rounds { get; init; } = 1;
    public string? OutPrefix { get; init; }
    public string Reference { get; init; } = "filestream";

    /// <summary>Open loop: sends one producer may have awaiting their ack; beyond it the producer blocks and
    /// its later sends go out late, which the intended-time latency then shows.</summary>
    public int InflightPerProducerMax { get; init; } = 10_000;

    /// <summary>How long a run may take after its measured window to collect outstanding acks.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public bool KeepData { get; init; }

    /// <summary>Run fio's reference jobs in --dir first and print them beside the tables.</summary>
    public bool RunFio { get; init; }
    public int Seed { get; init; } = 1;

    // Bounds that keep a typo from producing a run that never ends or fills the disk.
    private const int ProducersMax = 4096;
    private const int LogsMax = 1024;
    private const int RecordSizeBytesMax = 4 << 20;
    private const int ConcurrencyMax = 100_000;
    private const int RoundsMax = 100;
    private const int MinimalLoopFileMibMin = 8; // two 4 MiB staging buffers
    private const int MinimalLoopFileMibMax = 64 << 10;
    private static readonly TimeSpan s_phaseMax = TimeSpan.FromHours(1);

    public const string Usage = """
        AppendLog.LoadGen: open/closed-loop durable-append workloads, several engines side by side.

          --engines a,b,c        engines to run (see --list-engines; 'all' = every durable one)  [filestream,fasterlog]
          --producers N          open loop: producers sharing the rate                           [16]
          --logs N               logs (partitions); one engine instance per log; in open loop a
                                 producer serves logs p, p+P, p+2P, ... in turn when N > producers [1]
          --record-size BYTES    payload bytes per append                                         [1024]
          --rate R1,R2,...       open loop at these MB/s (10^6 B/s), one workload per rate        [10,50,100,200]
          --producer-mode M1,... open loop: 'dedicated' (a thread per producer, nanosleep, 1 µs slack) and/or
                                 'pool' (async producers on the shared thread pool, Task.Delay-paced,
                                 sending what is due on each wake-up); one workload per mode and rate  [dedicated]
          --closed               closed loop instead of open loop
          --concurrency C1,...   closed loop: appenders each awaiting its ack, one workload each  [1,16,64]
          --warmup SECONDS       unmeasured time before each measured window                     [2]
          --duration SECONDS     measured window                                                  [10]
          --rounds N             repeat every engine N times, round-robin; report the median round [1]
          --dir PATH             base data directory; each run gets a fresh subdirectory         [./loadgen-data]
          --out PREFIX           also write PREFIX.md and PREFIX.json
          --reference NAME       engine the ratios are computed against                          [filestream]
          --minimal-loop-file-mib N  minimal-loop engines: pre-zeroed ring / first fallocation, MiB  [1024]
          --inflight-max N       open loop: outstanding appends per producer before it blocks    [10000]
          --drain-timeout SEC    limit on collecting acks after the window                       [30]
          --seed N               seed of the payload bytes                                        [1]
          --keep-data            keep the data directories after each run
          --fio                  first run fio's reference jobs in --dir (writes 3 GiB) and report them
          --list-engines         print the engines and their settings
        """;

    public static LoadGenOptions Parse(IReadOnlyList<string> args)
    {
        var options = new LoadGenOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            string? inlineValue = null;
            int equals = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && equals > 0)
            {
                inlineValue = arg[(equals + 1)..];
                arg = arg[..equals];
            }
            string Value()
            {
                if (inlineValue is not null)
                {
                    return inlineValue;
                }
                if (i + 1 >= args.Count)
                {
                    throw new ArgumentException($"{arg} needs a value");
                }
                return args[++i];
            }
            options = arg switch
            {
                "--engines" => options with { Engines = Value() },
                "--producers" => options with { Producers = ParseInt(arg, Value(), 1, ProducersMax) },
                "--logs" => options with { Logs = ParseInt(arg, Value(), 1, LogsMax) },
                "--record-size" => options with { RecordSizeBytes = ParseInt(arg, Value(), 1, RecordSizeBytesMax) },
                "--rate" => options with { Loop = LoopKind.Open, RatesMBps = ParseList(arg, Value(), ParseRate) },
                "--closed" => options with { Loop = LoopKind.Closed },
                "--producer-mode" => options with { ProducerModes = ParseList(arg, Value(), ParseProducerMode) },
                "--minimal-loop-file-mib" => options with
                {
                    MinimalLoopFileMib = ParseInt(arg, Value(), MinimalLoopFileMibMin, MinimalLoopFileMibMax),
                },
                "--concurrency" => options with
                {
                    Concurrencies = ParseList(arg, Value(), v => ParseInt(arg, v, 1, ConcurrencyMax)),
                },
                "--warmup" => options with { Warmup = ParseSeconds(arg, Value(), allowZero: true) },
                "--duration" => options with { Duration = ParseSeconds(arg, Value(), allowZero: false) },
                "--rounds" => options with { Rounds = ParseInt(arg, Value(), 1, RoundsMax) },
                "--dir" => options with { Directory = Value() },
                "--out" => options with { OutPrefix = Value() },
                "--reference" => options with { Reference = Value() },
                "--inflight-max" => options with { InflightPerProducerMax = ParseInt(arg, Value(), 1, 10_000_000) },
                "--drain-timeout" => options with { DrainTimeout = ParseSeconds(arg, Value(), allowZero: false) },
                "--seed" => options with { Seed = ParseInt(arg, Value(), int.MinValue, int.MaxValue) },
                "--keep-data" => options with { KeepData = true },
                "--fio" => options with { RunFio = true },
                _ => throw new ArgumentException($"unknown option '{args[i]}'"),
            };
        }
        options.Validate();
        return options;
    }

    /// <summary>
    /// Cross-option checks: a log without a writer would be opened, measured and never written. In open loop a producer
    /// may serve several logs in turn (producer p sends to logs p, p + P, p + 2P, …), so fewer producers than logs is
    /// fine; in closed loop every log needs an appender of its own.
    /// </summary>
    private void Validate()
    {
        int writersMin = Loop == LoopKind.Open ? Logs : Concurrencies.Min();
        if (Logs > writersMin)
        {
            throw new ArgumentException(
                $"--logs {Logs} is more than the {(Loop == LoopKind.Open ? "producers" : "smallest concurrency")} " +
                $"({writersMin}): some logs would get no appends");
        }
    }

    private static ProducerMode ParseProducerMode(string mode) => mode.ToLowerInvariant() switch
    {
        "dedicated" => ProducerMode.Dedicated,
        "pool" => ProducerMode.Pool,
        _ => throw new ArgumentException($"--producer-mode: '{mode}' is neither 'dedicated' nor 'pool'"),
    };

    private static double ParseRate(string rate)
    {
        if (!double.TryParse(rate, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            || !(value > 0) || double.IsInfinity(value))
        {
            throw new ArgumentException($"--rate: '{rate}' is not a positive number of MB/s");
        }
        return value;
    }

    private static int ParseInt(string option, string text, int min, int max)
    {
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            || value < min || value > max)
        {
            throw new ArgumentException($"{option}: '{text}' is not an integer in [{min}, {max}]");
        }
        return value;
    }

    private static TimeSpan ParseSeconds(string option, string text, bool allowZero)
    {
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds)
            || seconds < 0 || (!allowZero && seconds == 0) || seconds > s_phaseMax.TotalSeconds)
        {
            throw new ArgumentException($"{option}: '{text}' is not a number of seconds in (0, {s_phaseMax.TotalSeconds}]");
        }
        return TimeSpan.FromSeconds(seconds);
    }

    private static List<T> ParseList<T>(string option, string text, Func<string, T> parse)
    {
        List<T> values = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(parse).ToList();
        return values.Count > 0 ? values : throw new ArgumentException($"{option}: empty list");
    }
}
