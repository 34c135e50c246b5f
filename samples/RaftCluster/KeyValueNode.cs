using System.Collections.Concurrent;
using System.Net;
using System.Text;
using AppendLog.Raft;

namespace RaftCluster;

/// <summary>
/// One member of the replicated key-value store: a <see cref="ReplicatedLog"/> whose state machine is a dictionary.
/// A write is the payload "key=value"; every member applies committed writes in offset order, so all dictionaries agree.
/// Every <c>snapshotInterval</c> offsets the dictionary is written to a snapshot and the log before it is dropped; a
/// member too far behind gets the leader's snapshot instead of the writes it covers.
/// </summary>
internal sealed class KeyValueNode : IAsyncDisposable, IReplicatedStateMachine
{
    private readonly ConcurrentDictionary<string, string> _state = new();

    public KeyValueNode(
        RaftNodeId id, IReadOnlyDictionary<RaftNodeId, IPEndPoint> members, string directory, Action<string>? log = null,
        long snapshotInterval = ReplicatedLogOptions.DefaultSnapshotInterval, long cachedLogBytes = ReplicatedLogOptions.DefaultMaximumCachedLogBytes)
    {
        Id = id;
        Log = new ReplicatedLog(new ReplicatedLogOptions
        {
            NodeId = id,
            Members = members,
            Directory = directory,
            StateMachine = this,
            SnapshotInterval = snapshotInterval,
            MaximumCachedLogBytes = cachedLogBytes,
        });
        if (log is not null)
        {
            Log.LeadershipChanged += (_, e) => log(e.LeaderId.IsNone
                ? $"node {id}: term {e.Term}, no leader yet"
                : $"node {id}: term {e.Term}, leader is node {e.LeaderId}{(e.IsThisNode ? " (me)" : "")}");
        }
    }

    private long _applied;
    private long _restores;

    /// <summary>How often this member replaced its dictionary from a snapshot (its own at start, or its leader's).</summary>
    public long SnapshotRestores => Interlocked.Read(ref _restores);

    ValueTask IReplicatedStateMachine.ApplyAsync(CommittedRecord record, CancellationToken cancellationToken)
    {
        var text = Encoding.UTF8.GetString(record.Payload.Span);
        var split = text.IndexOf('=');
        _state[text[..split]] = text[(split + 1)..];
        Interlocked.Increment(ref _applied);
        return ValueTask.CompletedTask;
    }

    async ValueTask IReplicatedStateMachine.WriteSnapshotAsync(Stream destination, CancellationToken cancellationToken)
    {
        await using var writer = new StreamWriter(destination, Encoding.UTF8, leaveOpen: true);
        foreach (var (key, value) in _state)
        {
            await writer.WriteLineAsync($"{key}={value}".AsMemory(), cancellationToken);
        }
    }

    async ValueTask IReplicatedStateMachine.RestoreSnapshotAsync(Stream source, CancellationToken cancellationToken)
    {
        _state.Clear();
        using var reader = new StreamReader(source, Encoding.UTF8, leaveOpen: true);
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            var split = line.IndexOf('=');
            _state[line[..split]] = line[(split + 1)..];
        }

        Interlocked.Increment(ref _restores);
    }

    public RaftNodeId Id { get; }

    public ReplicatedLog Log { get; }

    public long Applied => Interlocked.Read(ref _applied);

    public IReadOnlyDictionary<string, string> State => _state;

    public Task StartAsync() => Log.StartAsync();

    public ValueTask<long> SetAsync(string key, string value, CancellationToken cancellationToken = default) =>
        Log.ReplicateAsync(Encoding.UTF8.GetBytes($"{key}={value}"), cancellationToken);

    public ValueTask DisposeAsync() => Log.DisposeAsync();
}
