using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using AppendLog.Raft.Tests.Simulation;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Cluster;

/// <summary>
/// Three members as three real processes (samples/RaftCluster in its "register" mode: a set of registers whose state
/// machine keeps every value applied), this test process playing the clients: writers replicate unique values within
/// client sessions (exactly once, retried with the same sequence on whichever member leads after an error or a killed
/// member), readers read through <see cref="ReplicatedLog.LinearizableBarrierAsync"/> on a random member first (a
/// follower must refuse), then on the leader it names. Meanwhile any member, leader or follower, is SIGKILLed and
/// restarted, or paused (SIGSTOP, then SIGCONT) for up to 1.5 s, again and again; at the end all three are SIGKILLed
/// together and restarted. The history (invocation and return on this process's one clock) must be linearizable per
/// register (<see cref="LinearizabilityChecker.CheckUniqueWrites"/>), every acknowledged write must be in the applied
/// history of its register, and no value may have been applied twice. Broken on purpose, it fails: reads served
/// without the barrier give anomalies; writes without a session give values applied twice. About 30 s by default;
/// APPENDLOG_SOAK=1 runs APPENDLOG_SOAK_SECONDS (default 300) of faults.
/// </summary>
[NonParallelizable]
public sealed partial class MultiProcessLinearizabilityTests
{
    private const int SigCont = 18; // signal(7), x86_64 and arm64
    private const int SigStop = 19;
    private const int Writers = 6;
    private const int Readers = 3;
    private static readonly string[] Keys = ["a", "b", "c"];

    [Test]
    [CancelAfter(15 * 60 * 1000)]
    public async Task AnyMemberKilledOrPaused_HistoryIsLinearizable_NoAcknowledgedWriteLost_NoneAppliedTwice(CancellationToken cancellationToken)
    {
        var soak = Environment.GetEnvironmentVariable("APPENDLOG_SOAK") == "1";
        var seconds = soak ? int.Parse(Environment.GetEnvironmentVariable("APPENDLOG_SOAK_SECONDS") ?? "300", CultureInfo.InvariantCulture) : 18;
        var seed = Environment.TickCount;
        TestContext.Out.WriteLine($"seed {seed}, {seconds} s of faults");
        var random = new Random(seed);
        var root = Path.Combine(Path.GetTempPath(), "appendlog-linearizability-" + Guid.NewGuid().ToString("N"));
        await using var cluster = new RegisterCluster(MultiProcessTests.SampleAssembly(), root);
        try
        {
            await cluster.StartAllAsync(cancellationToken);
            var history = new ConcurrentBag<(string Key, RegisterOp Op)>();
            var acknowledged = new ConcurrentBag<(string Key, long Value)>();
            var counts = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var clients = Enumerable.Range(0, Writers).Select(w => WriterAsync(cluster, w, history, acknowledged, counts, stop.Token))
                .Concat(Enumerable.Range(0, Readers).Select(r => ReaderAsync(cluster, r, history, counts, stop.Token))).ToList();

            var deadline = Stopwatch.GetTimestamp() + (seconds * Stopwatch.Frequency);
            int[] kills = [0, 0], pauses = [0, 0]; // [the leader, a follower]
            while (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(random.Next(800, 2000), cancellationToken);
                var victim = random.Next(3);
                var role = await cluster.RoleAsync(victim) == "leader" ? 0 : 1;
                if (random.Next(3) == 0)
                {
                    // A process pause (SIGSTOP ... SIGCONT), often longer than an election timeout: a paused leader is
                    // deposed and wakes up still believing it leads, the case a read served without a quorum round gets wrong.
                    cluster.Signal(victim, SigStop);
                    await Task.Delay(random.Next(200, 1500), cancellationToken);
                    cluster.Signal(victim, SigCont);
                    pauses[role]++;
                    continue;
                }

                await cluster.KillAsync(victim);
                kills[role]++;
                await Task.Delay(random.Next(100, 1200), cancellationToken);
                await cluster.StartAsync(victim, cancellationToken);
            }

            await Task.Delay(1000, cancellationToken);
            await stop.CancelAsync();
            await Task.WhenAll(clients);

            // Everyone down at once (only what was durable survives), then back: the final state comes from the disks.
            for (var i = 0; i < 3; i++)
            {
                await cluster.KillAsync(i);
            }

            await cluster.StartAllAsync(cancellationToken);
            var applied = new Dictionary<string, long[]>(StringComparer.Ordinal);
            foreach (var key in Keys)
            {
                var invoked = Stopwatch.GetTimestamp();
                var words = await cluster.CallUntilDoneAsync($"h {key}", TimeSpan.FromSeconds(60), cancellationToken);
                var returned = Stopwatch.GetTimestamp();
                applied[key] = words[2].Length == 0 ? [] : [.. words[2].Split(',').Select(v => long.Parse(v, CultureInfo.InvariantCulture))];

                // The register's value after the restart is a read of the history too.
                history.Add((key, new RegisterOp(false, applied[key].Length == 0 ? 0 : applied[key][^1], invoked, returned)));
            }

            var lost = acknowledged.Where(a => !applied[a.Key].Contains(a.Value)).ToList();
            var appliedTwice = applied.Sum(kv => kv.Value.Length - kv.Value.Distinct().Count());
            var anomalies = Keys.Select(k => (Key: k, Why: LinearizabilityChecker.CheckUniqueWrites([.. history.Where(h => h.Key == k).Select(h => h.Op)], 0)))
                .Where(x => x.Why is not null).ToList();
            var ops = history.Select(h => h.Op).ToList();
            TestContext.Out.WriteLine(
                $"kills: {kills[0]} of the leader, {kills[1]} of a follower, then all three at once; pauses: {pauses[0]} of the leader, {pauses[1]} of a follower; " +
                $"writes acknowledged {acknowledged.Count}, pending (outcome unknown) {ops.Count(o => o.IsWrite && o.IsPending)}, " +
                $"duplicates answered {counts.GetValueOrDefault("duplicate")}, retries {counts.GetValueOrDefault("retry")}; " +
                $"reads {ops.Count(o => !o.IsWrite)} (failed on a random member and then on the leader, not recorded: {counts.GetValueOrDefault("read-failed")}); " +
                $"values applied {applied.Sum(kv => kv.Value.Length)}; acknowledged writes lost {lost.Count}; applied twice {appliedTwice}; " +
                $"linearizability anomalies {anomalies.Count}");
            Assert.Multiple(() =>
            {
                Assert.That(acknowledged, Is.Not.Empty, "the clients made progress");
                Assert.That(ops.Count(o => !o.IsWrite), Is.GreaterThan(Keys.Length), "the readers made progress");
                Assert.That(lost.Select(l => $"{l.Key}={l.Value}").Take(10), Is.Empty, "acknowledged writes missing from the applied history");
                Assert.That(appliedTwice, Is.Zero, "values applied more than once (a session retry applied again)");
                Assert.That(anomalies.Select(a => $"{a.Key}: {a.Why}"), Is.Empty, "registers whose history is not linearizable");
            });
        }
        finally
        {
            await cluster.DisposeAsync();
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>
    /// One client: a session, then writes of unique values one at a time, each retried with the same sequence on
    /// another member until acknowledged; a write still unknown when the run stops (or whose session expired) is pending.
    /// </summary>
    private static async Task WriterAsync(
        RegisterCluster cluster, int writer, ConcurrentBag<(string, RegisterOp)> history, ConcurrentBag<(string, long)> acknowledged,
        ConcurrentDictionary<string, long> counts, CancellationToken stop)
    {
        var random = new Random(writer);
        long session = 0, sequence = 0, written = 0;
        while (!stop.IsCancellationRequested)
        {
            if (session == 0)
            {
                var opened = await cluster.CallAsync("open", stop);
                if (opened[0] != "ok")
                {
                    continue;
                }

                session = long.Parse(opened[2], CultureInfo.InvariantCulture);
                sequence = 0;
            }

            var key = Keys[random.Next(Keys.Length)];
            var value = ((writer + 1) * 100_000_000L) + ++written;
            sequence++;
            var invoked = Stopwatch.GetTimestamp();
            var returned = long.MaxValue;
            while (true)
            {
                // After the stop, a write already begun gets a few more seconds to learn its outcome, then stays pending.
                var words = await cluster.CallAsync($"w {session} {sequence} {key} {value}", CancellationToken.None);
                if (words[0] == "ok")
                {
                    returned = Stopwatch.GetTimestamp();
                    acknowledged.Add((key, value));
                    if (words[3] == "1")
                    {
                        counts.AddOrUpdate("duplicate", 1, (_, n) => n + 1);
                    }

                    break;
                }

                if (words.Length > 2 && words[2] == nameof(SessionExpiredException))
                {
                    session = 0;
                    break;
                }

                if (stop.IsCancellationRequested && Stopwatch.GetElapsedTime(invoked) > TimeSpan.FromSeconds(10))
                {
                    break;
                }

                counts.AddOrUpdate("retry", 1, (_, n) => n + 1);
            }

            history.Add((key, new RegisterOp(true, value, invoked, returned)));
        }
    }

    /// <summary>One client reading a random register through the read barrier; a failed read has no effect and is not recorded.</summary>
    private static async Task ReaderAsync(
        RegisterCluster cluster, int reader, ConcurrentBag<(string, RegisterOp)> history, ConcurrentDictionary<string, long> counts, CancellationToken stop)
    {
        var random = new Random(1000 + reader);
        while (!stop.IsCancellationRequested)
        {
            var key = Keys[random.Next(Keys.Length)];
            var invoked = Stopwatch.GetTimestamp();
            // First to a random member, so that a member serving reads it has not confirmed (a follower, a deposed
            // leader) would be caught; then to the leader it names.
            var words = await cluster.CallAsync($"r {key}", stop, random.Next(3));
            if (words[0] != "ok")
            {
                words = await cluster.CallAsync($"r {key}", stop);
            }

            var returned = Stopwatch.GetTimestamp();
            if (words[0] == "ok")
            {
                history.Add((key, new RegisterOp(false, long.Parse(words[2], CultureInfo.InvariantCulture), invoked, returned)));
            }
            else
            {
                counts.AddOrUpdate("read-failed", 1, (_, n) => n + 1);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);

    /// <summary>The three member processes, the request routing (to the last leader named, else round-robin) and replies.</summary>
    private sealed class RegisterCluster(string assembly, string root) : IAsyncDisposable
    {
        private static long _requestIds;
        private readonly int[] _ports = FreePorts();
        private readonly Member?[] _members = new Member?[3];
        private int _target;

        public async Task StartAllAsync(CancellationToken cancellationToken)
        {
            await Task.WhenAll(Enumerable.Range(0, 3).Select(i => StartAsync(i, cancellationToken)));
        }

        public async Task StartAsync(int index, CancellationToken cancellationToken)
        {
            var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var arg in new[] { assembly, "register", (index + 1).ToString(CultureInfo.InvariantCulture), Path.Combine(root, "node-" + (index + 1)) }
                .Concat(_ports.Select(p => p.ToString(CultureInfo.InvariantCulture))))
            {
                info.ArgumentList.Add(arg);
            }

            var member = new Member(Process.Start(info)!);
            await member.Ready.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
            _members[index] = member;
        }

        public async Task KillAsync(int index)
        {
            if (_members[index] is { } member)
            {
                _members[index] = null;
                member.Process.Kill(); // SIGKILL
                await member.Process.WaitForExitAsync();
                member.Process.Dispose();
            }
        }

        /// <summary>Sends a signal to a running member (none when it is down).</summary>
        public void Signal(int index, int signal)
        {
            if (_members[index] is { } member)
            {
                Assert.That(SendSignal(member.Process.Id, signal), Is.Zero, $"kill({member.Process.Id}, {signal})");
            }
        }

        public async Task<string> RoleAsync(int index)
        {
            var member = _members[index];
            var words = member is null ? ["lost"] : await member.CallAsync("role", TimeSpan.FromSeconds(2));
            return words[0] == "ok" ? words[2] : "unknown";
        }

        /// <summary>
        /// One attempt on member <paramref name="member"/>, else on the member believed to lead; ["err", id, kind, leader]
        /// or ["lost"] when it failed.
        /// </summary>
        public async Task<string[]> CallAsync(string request, CancellationToken cancellationToken, int? member = null)
        {
            var index = member ?? Volatile.Read(ref _target);
            var words = _members[index] is { } target ? await target.CallAsync(request, TimeSpan.FromSeconds(5)) : ["lost"];
            if (words[0] != "ok")
            {
                // Follow the leader a member named, else try the next member; back off a little while there is none.
                var leader = words.Length > 3 ? int.Parse(words[3], CultureInfo.InvariantCulture) : 0;
                Interlocked.CompareExchange(ref _target, leader is >= 1 and <= 3 ? leader - 1 : (index + 1) % 3, index);
                if (leader == 0)
                {
                    try
                    {
                        await Task.Delay(20, cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }
            }

            return words;
        }

        public async Task<string[]> CallUntilDoneAsync(string request, TimeSpan timeout, CancellationToken cancellationToken)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
            while (true)
            {
                var words = await CallAsync(request, cancellationToken);
                if (words[0] == "ok")
                {
                    return words;
                }

                Assert.That(Stopwatch.GetTimestamp(), Is.LessThan(deadline), $"'{request}' did not succeed within {timeout.TotalSeconds} s: {string.Join(' ', words)}");
                await Task.Delay(50, cancellationToken);
            }
        }

        public async ValueTask DisposeAsync()
        {
            for (var i = 0; i < 3; i++)
            {
                await KillAsync(i);
            }
        }

        private static int[] FreePorts()
        {
            var sockets = Enumerable.Range(0, 3).Select(_ =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                return socket;
            }).ToList();
            var ports = sockets.Select(s => ((IPEndPoint)s.LocalEndPoint!).Port).ToArray();
            sockets.ForEach(s => s.Dispose());
            return ports;
        }

        private sealed class Member
        {
            private readonly ConcurrentDictionary<long, TaskCompletionSource<string[]>> _pending = new();
            private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
            private readonly Lock _inputGate = new();
            private volatile bool _gone;

            public Member(Process process)
            {
                Process = process;
                process.OutputDataReceived += (_, e) =>
                {
                    if (e.Data is not { } line)
                    {
                        // The process is gone: every request still waiting on it has an unknown outcome.
                        _gone = true;
                        _ready.TrySetException(new InvalidOperationException("the member exited before it was ready"));
                        foreach (var waiting in _pending.Values)
                        {
                            waiting.TrySetResult(["lost"]);
                        }

                        return;
                    }

                    var words = line.Split(' ');
                    if (words[0] == "ready")
                    {
                        _ready.TrySetResult();
                    }
                    else if (words.Length > 1 && long.TryParse(words[1], CultureInfo.InvariantCulture, out var id) && _pending.TryRemove(id, out var waiter))
                    {
                        waiter.TrySetResult(words);
                    }
                };
                process.ErrorDataReceived += (_, e) =>
                {
                    if (e.Data is { } line)
                    {
                        TestContext.Progress.WriteLine($"  [member stderr] {line}");
                    }
                };
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
            }

            public Process Process { get; }

            public Task Ready => _ready.Task;

            public async Task<string[]> CallAsync(string request, TimeSpan timeout)
            {
                var id = Interlocked.Increment(ref _requestIds);
                var reply = new TaskCompletionSource<string[]>(TaskCreationOptions.RunContinuationsAsynchronously);
                _pending[id] = reply;
                var space = request.IndexOf(' ', StringComparison.Ordinal);
                var line = space < 0 ? $"{request} {id}" : $"{request[..space]} {id}{request[space..]}";
                try
                {
                    lock (_inputGate)
                    {
                        if (_gone)
                        {
                            return ["lost"];
                        }

                        Process.StandardInput.WriteLine(line);
                        Process.StandardInput.Flush();
                    }
                }
                catch (Exception ex) when (ex is IOException or InvalidOperationException)
                {
                    _pending.TryRemove(id, out _);
                    return ["lost"];
                }

                try
                {
                    return await reply.Task.WaitAsync(timeout);
                }
                catch (TimeoutException)
                {
                    _pending.TryRemove(id, out _);
                    return ["lost"];
                }
            }
        }
    }
}
