using System.Collections.Concurrent;
using System.Net;
using System.Text;
using AppendLog.Raft;

namespace RaftCluster;

/// <summary>
/// One member of the replicated key-value store: a <see cref="ReplicatedLog"/> whose state machine is a dictionary.
/// A write is the payload "key=value"; every member applies committed writes in offset order, so all dictionaries agree.
/// </summary>
internal sealed class KeyValueNode : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, string> _state = new();

    public KeyValueNode(RaftNodeId id, IReadOnlyDictionary<RaftNodeId, IPEndPoint> members, string directory, Action<string>? log = null)
    {
        Id = id;
        Log = new ReplicatedLog(new ReplicatedLogOptions
        {
            NodeId = id,
            Members = members,
            Directory = directory,
            Apply = (record, _) =>
            {
                var text = Encoding.UTF8.GetString(record.Payload.Span);
                var split = text.IndexOf('=');
                _state[text[..split]] = text[(split + 1)..];
                Interlocked.Increment(ref _applied);
                return ValueTask.CompletedTask;
            },
        });
        if (log is not null)
        {
            Log.LeadershipChanged += (_, e) => log(e.LeaderId.IsNone
                ? $"node {id}: term {e.Term}, no leader yet"
                : $"node {id}: term {e.Term}, leader is node {e.LeaderId}{(e.IsThisNode ? " (me)" : "")}");
        }
    }

    private long _applied;

    public RaftNodeId Id { get; }

    public ReplicatedLog Log { get; }

    public long Applied => Interlocked.Read(ref _applied);

    public IReadOnlyDictionary<string, string> State => _state;

    public Task StartAsync() => Log.StartAsync();

    public ValueTask<long> SetAsync(string key, string value, CancellationToken cancellationToken = default) =>
        Log.ReplicateAsync(Encoding.UTF8.GetBytes($"{key}={value}"), cancellationToken);

    public ValueTask DisposeAsync() => Log.DisposeAsync();
}
