using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace AppendLog.RaftBench;

/// <summary>An event a member printed: LEADER or FIRSTCOMMIT, with its CLOCK_MONOTONIC time.</summary>
internal sealed record NodeEvent(int Node, string Kind, long Ns, string Text);

/// <summary>Every member's CPU time (user + system, s; NaN for a member not running) at a window edge the leader marked.</summary>
internal sealed record CpuMark(long Ns, string Edge, double[] CpuSeconds);

/// <summary>One member's process, seen from the driver.</summary>
internal sealed class NodeProcess
{
    private readonly Channel<string> _replies = Channel.CreateUnbounded<string>();

    public NodeProcess(int index, Process process, Action<NodeEvent> onEvent, bool verbose)
    {
        Index = index;
        Process = process;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not { } line)
            {
                _replies.Writer.TryComplete();
                return;
            }

            if (!line.StartsWith('@'))
            {
                if (verbose)
                {
                    Console.Error.WriteLine($"  [node {index + 1}] {line}");
                }

                return;
            }

            var words = line[1..].Split(' ', 3);
            switch (words[0])
            {
                case "LEADER":
                case "FIRSTCOMMIT":
                case "MARK":
                    onEvent(new NodeEvent(index, words[0], long.Parse(words[1], CultureInfo.InvariantCulture), line));
                    break;
                case "INFO":
                    if (verbose)
                    {
                        Console.Error.WriteLine($"  [node {index + 1}] {line}");
                    }

                    break;
                default:
                    _replies.Writer.TryWrite(line[1..]);
                    break;
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                Console.Error.WriteLine($"  [node {index + 1} stderr] {line}");
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Index { get; }

    public Process Process { get; }

    public int Pid => Process.Id;

    public bool Alive => !Process.HasExited;

    public async Task SendAsync(string command)
    {
        await Process.StandardInput.WriteLineAsync(command).ConfigureAwait(false);
        await Process.StandardInput.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>The next reply that starts with <paramref name="prefix"/>; ERR replies throw.</summary>
    public async Task<string> ExpectAsync(string prefix, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var line = await _replies.Reader.ReadAsync(cts.Token).ConfigureAwait(false);
                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return line;
                }

                if (line.StartsWith("ERR", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"node {Index + 1}: {line}");
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"node {Index + 1}: no '{prefix}' within {timeout.TotalSeconds:F0} s");
        }
        catch (ChannelClosedException)
        {
            throw new InvalidOperationException($"node {Index + 1} exited (code {(Process.HasExited ? Process.ExitCode : -1)}) before '{prefix}'");
        }
    }
}

/// <summary>
/// The member processes of one engine on loopback (three; one for the single-node engine), started, killed and
/// restarted by the driver.
/// </summary>
internal sealed class Cluster : IAsyncDisposable
{
    private readonly List<NodeEvent> _events = [];
    private readonly List<CpuMark> _marks = [];
    private readonly bool _verbose;
    private readonly Dictionary<string, string> _environment;

    public Cluster(string engine, string root, int electionMinMs, int electionMaxMs, bool verbose, Dictionary<string, string>? environment = null)
    {
        Engine = engine;
        Root = root;
        ElectionMinMs = electionMinMs;
        ElectionMaxMs = electionMaxMs;
        _verbose = verbose;
        _environment = environment ?? [];
        var members = engine == "single" ? 1 : 3;
        Ports = FreePorts(members);
        Nodes = new NodeProcess?[members];
    }

    public string Engine { get; }

    public string Root { get; }

    public int ElectionMinMs { get; }

    public int ElectionMaxMs { get; }

    public int[] Ports { get; }

    public NodeProcess?[] Nodes { get; }

    public CpuMark[] Marks()
    {
        lock (_marks)
        {
            return [.. _marks];
        }
    }

    public NodeEvent[] Events()
    {
        lock (_events)
        {
            return [.. _events];
        }
    }

    public async Task StartAsync(int index)
    {
        var info = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (!Path.GetFileNameWithoutExtension(Environment.ProcessPath!).Equals("AppendLog.RaftBench", StringComparison.Ordinal))
        {
            info.ArgumentList.Add(typeof(Cluster).Assembly.Location); // "dotnet AppendLog.RaftBench.dll"
        }

        foreach (var arg in new[]
        {
            "node", "--engine", Engine, "--id", (index + 1).ToString(CultureInfo.InvariantCulture),
            "--ports", string.Join(',', Ports), "--dir", Path.Combine(Root, "node-" + (index + 1)),
            "--election-min", ElectionMinMs.ToString(CultureInfo.InvariantCulture),
            "--election-max", ElectionMaxMs.ToString(CultureInfo.InvariantCulture),
        })
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in _environment)
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start a node process");
        var node = new NodeProcess(index, process, e =>
        {
            if (e.Kind == "MARK")
            {
                // Sampled here, on the reader of the leader's output, as soon as the mark arrives (a pipe's delay).
                var cpu = Nodes.Select(n => n is { Alive: true } ? ProcStatus.CpuSeconds(n.Pid) : double.NaN).ToArray();
                lock (_marks)
                {
                    _marks.Add(new CpuMark(e.Ns, e.Text.Split(' ')[^1], cpu));
                }

                return;
            }

            lock (_events)
            {
                _events.Add(e);
            }
        }, _verbose);
        Nodes[index] = node;
        await node.ExpectAsync("READY", TimeSpan.FromSeconds(60)).ConfigureAwait(false);
    }

    /// <summary>The first FIRSTCOMMIT printed after <paramref name="afterNs"/> by a live member: the leader that commits.</summary>
    public async Task<NodeEvent> AwaitCommittingLeaderAsync(long afterNs, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            var found = Events().Where(e => e.Kind == "FIRSTCOMMIT" && e.Ns > afterNs && Nodes[e.Node] is { Alive: true })
                .OrderBy(e => e.Ns).FirstOrDefault();
            if (found is not null)
            {
                return found;
            }

            await Task.Delay(2).ConfigureAwait(false);
        }

        throw new TimeoutException($"{Engine}: no member committed as leader within {timeout.TotalSeconds:F0} s");
    }

    /// <summary>The member that most recently committed as leader and is still running.</summary>
    public NodeProcess CurrentLeader() =>
        Events().Where(e => e.Kind == "FIRSTCOMMIT" && Nodes[e.Node] is { Alive: true }).OrderByDescending(e => e.Ns)
            .Select(e => Nodes[e.Node]!).First();

    /// <summary>SIGKILLs one member; returns the CLOCK_MONOTONIC time taken just before the signal.</summary>
    public async Task<long> KillAsync(int index)
    {
        var node = Nodes[index]!;
        var at = NodeHost.NowNs();
        node.Process.Kill(); // SIGKILL on Linux
        await node.Process.WaitForExitAsync().ConfigureAwait(false);
        Nodes[index] = null;
        return at;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes)
        {
            if (node is { Alive: true })
            {
                try
                {
                    await node.SendAsync("quit").ConfigureAwait(false);
                }
                catch (IOException)
                {
                }
            }
        }

        foreach (var node in Nodes)
        {
            if (node is null)
            {
                continue;
            }

            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await node.Process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                node.Process.Kill();
            }

            node.Process.Dispose();
        }
    }

    private static int[] FreePorts(int count)
    {
        var sockets = Enumerable.Range(0, count).Select(_ =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            return socket;
        }).ToList();
        var ports = sockets.Select(s => ((IPEndPoint)s.LocalEndPoint!).Port).ToArray();
        sockets.ForEach(s => s.Dispose());
        return ports;
    }
}

/// <summary>Resident memory of a process from /proc/&lt;pid&gt;/status (proc(5)).</summary>
internal static class ProcStatus
{
    public static (double RssMiB, double HwmMiB) Read(int pid)
    {
        double rss = double.NaN, hwm = double.NaN;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = Kib(line) / 1024.0;
                }
                else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    hwm = Kib(line) / 1024.0;
                }
            }
        }
        catch (IOException)
        {
        }

        return (rss, hwm);
    }

    /// <summary>
    /// User + system CPU time of every thread of a process, from fields 14 and 15 of /proc/&lt;pid&gt;/stat (proc(5)), in
    /// clock ticks of 1/100 s (USER_HZ, 100 on every Linux architecture .NET runs on); NaN once the process is gone.
    /// </summary>
    public static double CpuSeconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // fields[0] is field 3 (state)
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    public static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Trim();
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    private static long Kib(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
}
