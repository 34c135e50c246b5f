using System.Buffers.Binary;
using System.Net;
using AppendLog.Raft;
using DotNext.Buffers;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.Membership;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace AppendLog.RaftBench;

/// <summary>The settings both engines share: three members on loopback and equal election timeouts.</summary>
internal sealed record NodeSettings(int Id, int[] Ports, string Directory, int ElectionMinMs, int ElectionMaxMs)
{
    public IPEndPoint EndPoint(int index) => new(IPAddress.Loopback, Ports[index]);
}

/// <summary>One member of a three-member Raft group, whichever engine runs it. The load and the fail-over probe only use this.</summary>
internal interface IBenchNode : IAsyncDisposable
{
    /// <summary>The settings line printed beside the results.</summary>
    string Describe { get; }

    /// <summary>Whether this member believes it leads now.</summary>
    bool IsLeader { get; }

    /// <summary>Raised (on any thread) each time this member becomes the leader.</summary>
    event Action? BecameLeader;

    /// <summary>Committed entries applied to this member's state machine.</summary>
    long Applied { get; }

    /// <summary>One line of the engine's own view (role, term, indexes) for the verbose trace.</summary>
    string StatusLine { get; }

    /// <summary>Why the engine stopped on its own (a storage failure or a broken invariant), or null while it runs.</summary>
    Exception? Fault { get; }

    Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Replicates one entry; completes when it is committed (on a quorum, durable as the engine is configured).</summary>
    ValueTask ReplicateAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken);
}

internal static class BenchNodes
{
    public static IBenchNode Create(string engine, NodeSettings settings) => engine switch
    {
        "appendlog" => new AppendLogBenchNode(settings),
        "dotnext" => new DotNextBenchNode(settings),
        "single" => new SingleBenchNode(settings),
        _ => throw new ArgumentException($"unknown engine '{engine}' (appendlog, dotnext, single)", nameof(engine)),
    };

    public static string Describe(string engine, int electionMinMs, int electionMaxMs) => engine switch
    {
        "appendlog" => AppendLogBenchNode.Settings(electionMinMs, electionMaxMs),
        "dotnext" => DotNextBenchNode.Settings(electionMinMs, electionMaxMs),
        "single" => SingleBenchNode.Settings,
        _ => engine,
    };
}

/// <summary>
/// The single-node baseline of replication efficiency: the <see cref="SegmentedLog"/> the Raft package stores its log
/// in, with the options the package gives it by default (O_DIRECT, group-committed fdatasync), one process, no
/// replication. An entry is acknowledged when durable on this one disk. It leads from the start, so the driver's
/// steps and the fail-over probe treat it like a one-member cluster.
/// </summary>
internal sealed class SingleBenchNode(NodeSettings settings) : IBenchNode
{
    private SegmentedLog? _log;
    private long _applied;

    public static string Settings =>
        "AppendLog SegmentedLog alone (no Raft), LogOptions defaults: O_DIRECT, group-committed fdatasync (FlushPolicy.Default); " +
        "an entry is acknowledged when AppendAsync returns, i.e. durable on this one disk";

    public string Describe => Settings;

    public bool IsLeader => _log is not null;

    public long Applied => Interlocked.Read(ref _applied);

    public string StatusLine => $"single durable {_log?.DurableEndOffset} applied {Applied}";

    public Exception? Fault => null; // a storage failure surfaces through AppendAsync

    public event Action? BecameLeader;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _log = await SegmentedLog.OpenAsync(new LogOptions { Directory = settings.Directory }, cancellationToken).ConfigureAwait(false);
        BecameLeader?.Invoke();
    }

    public async ValueTask ReplicateAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        await _log!.AppendAsync(payload, cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref _applied);
    }

    public ValueTask DisposeAsync() => _log?.DisposeAsync() ?? ValueTask.CompletedTask;
}

/// <summary>AppendLog.Raft's <see cref="ReplicatedLog"/> over TCP, through its public API only.</summary>
internal sealed class AppendLogBenchNode : IBenchNode
{
    private readonly ReplicatedLog _log;
    private long _applied;
    private volatile bool _leader;

    public AppendLogBenchNode(NodeSettings settings)
    {
        var members = new Dictionary<RaftNodeId, IPEndPoint>();
        for (var i = 0; i < settings.Ports.Length; i++)
        {
            members[new RaftNodeId((ulong)(i + 1))] = settings.EndPoint(i);
        }

        _log = new ReplicatedLog(new ReplicatedLogOptions
        {
            NodeId = new RaftNodeId((ulong)settings.Id),
            Members = members,
            Directory = settings.Directory,
            MaximumCachedLogBytes = int.TryParse(Environment.GetEnvironmentVariable("RAFTBENCH_CACHE_MIB"), out var cacheMib)
                ? cacheMib * 1024L * 1024 : ReplicatedLogOptions.DefaultMaximumCachedLogBytes,
            Raft = new RaftOptions
            {
                ElectionTimeoutMinimum = TimeSpan.FromMilliseconds(settings.ElectionMinMs),
                ElectionTimeoutMaximum = TimeSpan.FromMilliseconds(settings.ElectionMaxMs),
            },
            Apply = (_, _) =>
            {
                Interlocked.Increment(ref _applied);
                return ValueTask.CompletedTask;
            },
        });
        _log.LeadershipChanged += (_, e) =>
        {
            _leader = e.IsThisNode;
            if (e.IsThisNode)
            {
                BecameLeader?.Invoke();
            }
        };
    }

    public static string Settings(int electionMinMs, int electionMaxMs) =>
        $"AppendLog.Raft ReplicatedLog, TCP transport, default RaftOptions except election timeout {electionMinMs}-{electionMaxMs} ms " +
        "(tick 10 ms, heartbeat 30 ms, pre-vote, check-quorum, 64 appends in flight, 1 MiB batches), SegmentedLog with the core's default flush policy " +
        "(group-committed fdatasync, O_DIRECT); an entry is acknowledged when durable on a quorum";

    public string Describe => Settings(0, 0);

    public bool IsLeader => _leader;

    public long Applied => Interlocked.Read(ref _applied);

    public string StatusLine
    {
        get
        {
            var s = _log.Status;
            var followers = string.Join(' ', s.Followers.Select(f => $"{f.NodeId}:{f.MatchIndex}"));
            return $"{s.Role} term {s.Term} leader {s.LeaderId} commit {s.CommitIndex} last {s.LastIndex} applied {Applied} [{followers}]";
        }
    }

    public Exception? Fault => _log.Status.Fault;

    public event Action? BecameLeader;

    public Task StartAsync(CancellationToken cancellationToken) => _log.StartAsync(cancellationToken);

    public async ValueTask ReplicateAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken) =>
        await _log.ReplicateAsync(payload, cancellationToken).ConfigureAwait(false);

    public ValueTask DisposeAsync() => _log.DisposeAsync();
}

/// <summary>
/// DotNext.Net.Cluster's Raft (perf-only peer) configured as PEERS.md describes: TCP transport, the persistent
/// <see cref="WriteAheadLog"/> with 16 MiB chunks and a flush on every commit.
/// </summary>
internal sealed class DotNextBenchNode : IBenchNode
{
    private const int ChunkSize = 16 << 20;
    private readonly RaftCluster _cluster;
    private readonly WriteAheadLog _wal;
    private readonly CountingStateMachine _stateMachine = new();
    private readonly CancellationTokenSource _stop = new();
    private Task _leadershipWatcher = Task.CompletedTask;
    private volatile bool _leader;

    public DotNextBenchNode(NodeSettings settings)
    {
        var configuration = new RaftCluster.TcpConfiguration(settings.EndPoint(settings.Id - 1))
        {
            LowerElectionTimeout = settings.ElectionMinMs,
            UpperElectionTimeout = settings.ElectionMaxMs,
            ColdStart = false,
            ConfigurationStorage = Membership(settings),
        };
        _wal = new WriteAheadLog(
            new WriteAheadLog.Options
            {
                Location = settings.Directory,
                ChunkSize = ChunkSize, // FlushOnCommit is always true in 6.12 (the setter is obsolete)
            },
            _stateMachine);
        _cluster = new RaftCluster(configuration) { AuditTrail = _wal };
    }

    public static string Settings(int electionMinMs, int electionMaxMs) =>
        $"DotNext.Net.Cluster {typeof(RaftCluster).Assembly.GetName().Version} RaftCluster, TcpConfiguration (defaults) with election timeout {electionMinMs}-{electionMaxMs} ms, " +
        $"in-memory membership of the three endpoints, WriteAheadLog (ChunkSize {ChunkSize >> 20} MiB; flushes on every commit, FlushOnCommit being always true in 6.12; other options default), " +
        "a counting state machine; ReplicateAsync(ReadOnlyMemory<byte>) per entry";

    public string Describe => Settings(0, 0);

    public bool IsLeader => _leader;

    public long Applied => _stateMachine.Applied;

    public string StatusLine => $"{(_leader ? "Leader" : "Follower")} term {_cluster.Term} leader {_cluster.Leader?.EndPoint} applied {Applied}";

    public Exception? Fault => null; // DotNext reports failures through its calls only

    public event Action? BecameLeader;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _cluster.StartAsync(cancellationToken).ConfigureAwait(false);
        _leadershipWatcher = Task.Run(WatchLeadershipAsync, CancellationToken.None);
    }

    public ValueTask ReplicateAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken) =>
        _cluster.ReplicateAsync(payload, context: null, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _leadershipWatcher.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await _cluster.StopAsync(CancellationToken.None).ConfigureAwait(false);
        _cluster.Dispose();
        await _wal.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task WatchLeadershipAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            CancellationToken leadership;
            try
            {
                leadership = await _cluster.WaitForLeadershipAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            _leader = true;
            BecameLeader?.Invoke();
            var lost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using (leadership.Register(() => lost.TrySetResult()))
            using (_stop.Token.Register(() => lost.TrySetResult()))
            {
                await lost.Task.ConfigureAwait(false);
            }

            _leader = false;
        }
    }

    /// <summary>The three members, fixed: DotNext 6.12 has no public in-memory storage for endpoints, so this one encodes IPv4 endpoints.</summary>
    private static LoopbackMembership Membership(NodeSettings settings)
    {
        var storage = new LoopbackMembership();
        var builder = storage.CreateInitialConfigurationBuilder();
        for (var i = 0; i < settings.Ports.Length; i++)
        {
            builder.Add(settings.EndPoint(i));
        }

        builder.Build();
        return storage;
    }

    /// <summary>In-memory membership of IPv4 endpoints: four address bytes and a little-endian port.</summary>
    private sealed class LoopbackMembership : InMemoryClusterConfigurationStorage<EndPoint>
    {
        protected override void Encode(EndPoint address, ref BufferWriterSlim<byte> output)
        {
            var endPoint = (IPEndPoint)address;
            Span<byte> bytes = stackalloc byte[6];
            endPoint.Address.TryWriteBytes(bytes, out _);
            BinaryPrimitives.WriteUInt16LittleEndian(bytes[4..], (ushort)endPoint.Port);
            output.Write(bytes);
        }

        protected override EndPoint Decode(ref SequenceReader input)
        {
            Span<byte> bytes = stackalloc byte[6];
            input.Read(bytes);
            return new IPEndPoint(new IPAddress(bytes[..4]), BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]));
        }
    }

    /// <summary>Counts applied entries; keeps no snapshot (as the AppendLog side keeps none).</summary>
    private sealed class CountingStateMachine : IStateMachine
    {
        private long _applied;

        public long Applied => Interlocked.Read(ref _applied);

        public int Version => 0;

        public ISnapshot? Snapshot => null;

        public ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token)
        {
            Interlocked.Increment(ref _applied);
            return ValueTask.FromResult(entry.Index);
        }

        public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token) => ValueTask.CompletedTask;
    }
}
