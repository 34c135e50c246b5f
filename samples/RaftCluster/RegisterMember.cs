using System.Globalization;
using System.Net;
using System.Text;
using AppendLog.Raft;

namespace RaftCluster;

/// <summary>
/// One member of a replicated set of registers, driven line by line over stdin/stdout by a parent process that plays
/// the clients (the multi-process linearizability test in tests/AppendLog.Raft.Tests runs three of these and SIGKILLs
/// them). Run as <c>RaftCluster register ID DIR PORT1 PORT2 PORT3</c>. Requests, each with the caller's request id:
/// <list type="bullet">
/// <item><c>open ID</c>: opens a client session; <c>ok ID SESSION</c>.</item>
/// <item><c>w ID SESSION SEQ KEY VALUE</c>: writes VALUE (a number) to register KEY within the session (exactly once);
/// <c>ok ID OFFSET DUPLICATE(0|1)</c>.</item>
/// <item><c>r ID KEY</c>: a linearizable read (a read barrier, then the applied state); <c>ok ID VALUE</c> (0 when never written).</item>
/// <item><c>h ID KEY</c>: after a read barrier, every value ever applied to KEY, in order; <c>ok ID V1,V2,...</c>.</item>
/// <item><c>role ID</c>: <c>ok ID leader|follower|candidate</c>.</item>
/// </list>
/// A failure answers <c>err ID EXCEPTION LEADER</c>, LEADER being the leader's node id or 0. The state machine keeps
/// each register's whole history of applied values (in its snapshots too), so the parent can check that every
/// acknowledged write was applied exactly once.
/// </summary>
internal sealed class RegisterMember : IReplicatedStateMachine
{
    private readonly Dictionary<string, List<long>> _applied = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    public static async Task<int> RunAsync(string[] args)
    {
        var id = new RaftNodeId(ulong.Parse(args[1], CultureInfo.InvariantCulture));
        var members = args[3..].Select((p, i) => (Id: new RaftNodeId((ulong)(i + 1)), EndPoint: new IPEndPoint(IPAddress.Loopback, int.Parse(p, CultureInfo.InvariantCulture))))
            .ToDictionary(m => m.Id, m => m.EndPoint);
        var machine = new RegisterMember();
        await using var log = new ReplicatedLog(new ReplicatedLogOptions
        {
            NodeId = id,
            Members = members,
            Directory = args[2],
            StateMachine = machine,
            SnapshotInterval = 500, // often, so restarted members install snapshots (and their session tables)
            ReplicateTimeout = TimeSpan.FromSeconds(3),
        });
        await log.StartAsync();
        var output = Console.Out;
        var outputGate = new Lock();
        void Reply(string line)
        {
            lock (outputGate)
            {
                output.WriteLine(line);
                output.Flush();
            }
        }

        Reply("ready");
        var running = new List<Task>();
        while (await Console.In.ReadLineAsync() is { } line)
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length < 2)
            {
                continue;
            }

            running.RemoveAll(t => t.IsCompleted);
            running.Add(Task.Run(async () =>
            {
                try
                {
                    Reply($"ok {words[1]} {await machine.ServeAsync(log, words)}");
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // NotLeaderException, ReplicationTimeoutException, SessionExpiredException, a stopped member: the client decides.
                    var leader = ex is NotLeaderException notLeader ? notLeader.LeaderId.Value : 0;
                    Reply($"err {words[1]} {ex.GetType().Name} {leader}");
                }
            }));
        }

        await Task.WhenAll(running);
        return 0;
    }

    private async Task<string> ServeAsync(ReplicatedLog log, string[] words)
    {
        switch (words[0])
        {
            case "open":
                return (await log.OpenSessionAsync()).ToString(CultureInfo.InvariantCulture);
            case "w":
                var result = await log.ReplicateAsync(
                    Encoding.UTF8.GetBytes($"{words[4]}={words[5]}"), long.Parse(words[2], CultureInfo.InvariantCulture), long.Parse(words[3], CultureInfo.InvariantCulture));
                return $"{result.Offset} {(result.IsDuplicate ? 1 : 0)}";
            case "r":
                await log.LinearizableBarrierAsync();
                lock (_gate)
                {
                    return (_applied.TryGetValue(words[2], out var values) ? values[^1] : 0).ToString(CultureInfo.InvariantCulture);
                }

            case "h":
                await log.LinearizableBarrierAsync();
                lock (_gate)
                {
                    return string.Join(',', _applied.TryGetValue(words[2], out var values) ? values : []);
                }

            case "role":
                return log.Status.Role.ToString().ToLowerInvariant();
            default:
                throw new InvalidOperationException($"unknown request {words[0]}");
        }
    }

    ValueTask IReplicatedStateMachine.ApplyAsync(CommittedRecord record, CancellationToken cancellationToken)
    {
        var text = Encoding.UTF8.GetString(record.Payload.Span);
        var split = text.IndexOf('=', StringComparison.Ordinal);
        var value = long.Parse(text[(split + 1)..], CultureInfo.InvariantCulture);
        lock (_gate)
        {
            if (!_applied.TryGetValue(text[..split], out var values))
            {
                _applied[text[..split]] = values = [];
            }

            values.Add(value);
        }

        return ValueTask.CompletedTask;
    }

    async ValueTask IReplicatedStateMachine.WriteSnapshotAsync(Stream destination, CancellationToken cancellationToken)
    {
        string[] lines;
        lock (_gate)
        {
            lines = [.. _applied.Select(kv => kv.Key + " " + string.Join(' ', kv.Value))];
        }

        await using var writer = new StreamWriter(destination, Encoding.UTF8, leaveOpen: true);
        foreach (var line in lines)
        {
            await writer.WriteLineAsync(line.AsMemory(), cancellationToken);
        }
    }

    async ValueTask IReplicatedStateMachine.RestoreSnapshotAsync(Stream source, CancellationToken cancellationToken)
    {
        var restored = new Dictionary<string, List<long>>(StringComparer.Ordinal);
        using var reader = new StreamReader(source, Encoding.UTF8, leaveOpen: true);
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            restored[words[0]] = [.. words.Skip(1).Select(w => long.Parse(w, CultureInfo.InvariantCulture))];
        }

        lock (_gate)
        {
            _applied.Clear();
            foreach (var (key, values) in restored)
            {
                _applied[key] = values;
            }
        }
    }
}
