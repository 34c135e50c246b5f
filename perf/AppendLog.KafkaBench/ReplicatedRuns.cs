using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Confluent.Kafka;

namespace AppendLog.KafkaBench;

/// <summary>
/// The replicated mode of the broker: three broker processes (<c>KafkaBroker.dll</c>, beside this program), each
/// partition a Raft group with a member on each. Produce runs as in <see cref="ProduceRuns.KafkaAsync"/> against the
/// cluster; then the leader of a one-partition topic is killed with SIGKILL under a steady producer, and the time
/// from the kill to the first acknowledgement of a record sent after it is measured.
/// </summary>
internal static partial class ReplicatedRuns
{
    public const string FailoverTopic = "failover";

    /// <summary>The most partitions in all (each takes one Raft port per broker, from a block of free ports).</summary>
    private const int RaftPortsPerNode = 2000;

    public static async Task<(List<ProduceResult> Produce, FailoverResult Failover)> RunAsync(
        string root, KafkaBenchOptions options)
    {
        var topics = options.Partitions.Select(p => ($"replicated-{p}", p)).Append((FailoverTopic, 1)).ToArray();
        if (topics.Sum(t => t.Item2) > RaftPortsPerNode)
        {
            throw new ArgumentException($"at most {RaftPortsPerNode} partitions in all in replicated mode");
        }

        var brokers = await StartClusterAsync(root, topics).ConfigureAwait(false);
        try
        {
            string bootstrap = string.Join(',', brokers.Values.Select(b => b.BootstrapServers));
            var produce = new List<ProduceResult>();
            foreach (int partitions in options.Partitions)
            {
                Console.Error.WriteLine($"replicated produce: {partitions} partition(s)...");
                var result = await ProduceRuns.KafkaAsync(bootstrap, $"replicated-{partitions}", partitions, options)
                    .ConfigureAwait(false);
                produce.Add(result with { Engine = "Confluent.Kafka → 3 brokers (Raft)" });
            }

            Console.Error.WriteLine("replicated failover: SIGKILL of a leader under a steady producer...");
            var failover = await FailoverAsync(bootstrap, brokers).ConfigureAwait(false);
            return (produce, failover);
        }
        finally
        {
            foreach (var broker in brokers.Values)
            {
                broker.Dispose();
            }
        }
    }

    private static async Task<FailoverResult> FailoverAsync(string bootstrap, Dictionary<int, ChildBroker> brokers)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrap,
            Acks = Acks.All,
            EnableIdempotence = true,
            LingerMs = 0,
            SocketNagleDisable = true,
            RetryBackoffMs = 20,
            MessageTimeoutMs = 60_000,
        };
        using var producer = new ProducerBuilder<Null, byte[]>(config).Build();
        var payload = ProduceRuns.Payload(1024);
        long killedAt = 0;
        long firstAckAfterKill = 0;
        long errors = 0;
        long acknowledged = 0;
        void OnDelivered(DeliveryReport<Null, byte[]> report, long sentAt)
        {
            if (report.Error.IsError)
            {
                Interlocked.Increment(ref errors);
                return;
            }

            Interlocked.Increment(ref acknowledged);
            long killed = Interlocked.Read(ref killedAt);
            if (killed != 0 && sentAt > killed)
            {
                Interlocked.CompareExchange(ref firstAckAfterKill, Stopwatch.GetTimestamp(), 0);
            }
        }

        // A steady 1,000 records/s: warm for 2 s, kill, keep sending until a record sent after the kill is acknowledged.
        var clock = Stopwatch.StartNew();
        int leader = 0;
        for (int i = 0; Interlocked.Read(ref firstAckAfterKill) == 0; i++)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(62))
            {
                throw new TimeoutException("no record sent after the kill was acknowledged within 60 s");
            }

            long sentAt = Stopwatch.GetTimestamp();
            producer.Produce(FailoverTopic, new Message<Null, byte[]> { Value = payload }, r => OnDelivered(r, sentAt));
            await Task.Delay(1).ConfigureAwait(false);
            if (killedAt == 0 && clock.Elapsed > TimeSpan.FromSeconds(2))
            {
                leader = LeaderOf(producer);
                brokers[leader].Kill();
                Interlocked.Exchange(ref killedAt, Stopwatch.GetTimestamp());
            }
        }

        producer.Flush(TimeSpan.FromSeconds(60));
        return new FailoverResult(
            leader,
            Stopwatch.GetElapsedTime(killedAt, firstAckAfterKill).TotalMilliseconds,
            Interlocked.Read(ref acknowledged),
            Interlocked.Read(ref errors));
    }

    private static int LeaderOf(IProducer<Null, byte[]> producer)
    {
        using var admin = new DependentAdminClientBuilder(producer.Handle).Build();
        for (int attempt = 0; attempt < 50; attempt++)
        {
            int leader = admin.GetMetadata(FailoverTopic, TimeSpan.FromSeconds(5)).Topics[0].Partitions[0].Leader;
            if (leader > 0)
            {
                return leader;
            }
        }

        throw new InvalidOperationException("the failover topic has no leader");
    }

    /// <summary>
    /// Starts the three brokers, retrying with other ports (and fresh data directories) when one exits before it
    /// listens: a port checked free can still be taken before the child binds it (by another program, or by an
    /// outgoing connection of an earlier child).
    /// </summary>
    private static async Task<Dictionary<int, ChildBroker>> StartClusterAsync(string root, (string Name, int Partitions)[] topics)
    {
        const int attemptsMax = 5;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await TryStartClusterAsync(Path.Combine(root, $"attempt-{attempt}"), topics).ConfigureAwait(false);
            }
            catch (InvalidOperationException e) when (attempt < attemptsMax)
            {
                Console.Error.WriteLine($"replicated: cluster start {attempt} of {attemptsMax} failed ({e.Message}); other ports...");
            }
        }
    }

    private static async Task<Dictionary<int, ChildBroker>> TryStartClusterAsync(string root, (string Name, int Partitions)[] topics)
    {
        int raftPorts = topics.Sum(t => t.Partitions);

        // Per node: its Kafka port, then its Raft ports (one per partition of the cluster), all in one free block.
        var bases = Ports.FreeBlocks(count: 3, length: 1 + raftPorts);
        string cluster = string.Join(',', Enumerable.Range(1, 3).Select(n => string.Create(
            CultureInfo.InvariantCulture, $"{n}=127.0.0.1:{bases[n - 1]}:{bases[n - 1] + 1}")));
        var brokers = new Dictionary<int, ChildBroker>();
        try
        {
            for (int n = 1; n <= 3; n++)
            {
                var arguments = new List<string> { "--data", Path.Combine(root, $"node-{n}"), "--node-id", n.ToString(CultureInfo.InvariantCulture), "--cluster", cluster };
                foreach (var (name, partitions) in topics)
                {
                    arguments.Add("--topic");
                    arguments.Add(string.Create(CultureInfo.InvariantCulture, $"{name}:{partitions}"));
                }

                brokers[n] = await ChildBroker.StartAsync(arguments).ConfigureAwait(false);
            }
        }
        catch
        {
            foreach (var broker in brokers.Values)
            {
                broker.Dispose();
            }

            throw;
        }

        return brokers;
    }

    /// <summary>One broker process; its Kafka port is read from its first line.</summary>
    private sealed partial class ChildBroker : IDisposable
    {
        private readonly Process _process;

        private ChildBroker(Process process, string bootstrapServers)
        {
            _process = process;
            BootstrapServers = bootstrapServers;
        }

        public string BootstrapServers { get; }

        public static async Task<ChildBroker> StartAsync(IEnumerable<string> arguments)
        {
            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "KafkaBroker.dll"));
            foreach (string argument in arguments)
            {
                info.ArgumentList.Add(argument);
            }

            var process = Process.Start(info) ?? throw new InvalidOperationException("could not start a broker");
            var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { } line && errors.Count < 20)
                {
                    errors.Enqueue(line);
                    Console.Error.WriteLine($"broker: {line}");
                }
            };
            process.BeginErrorReadLine();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (await process.StandardOutput.ReadLineAsync(timeout.Token).ConfigureAwait(false) is { } line)
            {
                if (ListeningLine().Match(line) is { Success: true } match)
                {
                    _ = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
                    return new ChildBroker(process, $"127.0.0.1:{match.Groups[1].Value}");
                }
            }

            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            process.Dispose();
            string reason = errors.FirstOrDefault(l => l.Contains("in use", StringComparison.OrdinalIgnoreCase)) ?? errors.FirstOrDefault() ?? "no output";
            throw new InvalidOperationException($"a broker exited before listening: {reason}");
        }

        /// <summary>SIGKILL.</summary>
        public void Kill() => _process.Kill(entireProcessTree: false);

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(10_000);
            }

            _process.Dispose();
        }

        [GeneratedRegex(@"^Kafka broker on [^:]+:(\d+),")]
        private static partial Regex ListeningLine();
    }
}

/// <summary>A leader killed under a steady producer: how long until a record sent after the kill was acknowledged.</summary>
internal sealed record FailoverResult(int KilledNode, double KillToFirstAckMilliseconds, long Acknowledged, long Errors);
