using System.Runtime.CompilerServices;

namespace AppendLog.LoadGen.Engines;

/// <summary>
/// AppendLog with its defaults: O_DIRECT, the shared buffer pool, group-committed fdatasync; every append
/// completes only when durable.
/// </summary>
internal sealed class AppendLogEngine : IEngine
{
    private readonly SegmentedLog _log;

    public AppendLogEngine(SegmentedLog log) => _log = log;

    public long? SyncCalls => _log.SyncCount;

    public IReadOnlyDictionary<string, long> Counters => new Dictionary<string, long>
    {
        ["records"] = _log.DurableEndOffset,
        ["segments"] = _log.SegmentCount,
        ["direct_io"] = _log.IsDirectIo ? 1 : 0,
    };

    // Pooled builder: the adapter from ValueTask<long> to the harness's ValueTask must not add an allocation per
    // pending append that the other engines do not pay (the measured CPU per ack would carry it).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask AppendAsync(ReadOnlyMemory<byte> payload) => await _log.AppendAsync(payload).ConfigureAwait(false);

    public ValueTask DisposeAsync() => _log.DisposeAsync();
}

/// <summary>
/// AppendLog engines. Besides the defaults, variants flip one internal setting each so their effect is measured
/// side by side: preallocation by fallocate only (no zero-fill), and one sync in flight instead of overlapping syncs.
/// </summary>
internal sealed class AppendLogFactory(string name, FlushPolicy policy, bool zeroFill = true, int syncsInFlight = 2, bool inlineContinuations = true) : IEngineFactory
{
    public string Name => name;

    public string Settings =>
        $"SegmentedLog defaults: O_DIRECT, {LogBufferPool.DefaultChunkSize / 1024} KiB chunks from a {LogBufferPool.DefaultBudgetBytes >> 20} MiB pool, " +
        $"segments {LogOptions.DefaultSegmentSize >> 20} MiB, {(zeroFill ? "zero-filled" : "fallocate-only")} preallocation, " +
        $"{syncsInFlight} sync(s) in flight, {(inlineContinuations ? "grouped inline" : "per-waiter queued")} completions, flush policy {policy}; ack after fdatasync";

    public bool IsDurable => true;

    public IEngine Open(string directory, EngineContext context)
    {
        var tuning = new Appender.PipelineTuning
        {
            ZeroFillPreallocation = zeroFill,
            SyncsInFlightMax = syncsInFlight,
            InlineContinuations = inlineContinuations,
        };
        var options = new LogOptions { Directory = directory, FlushPolicy = policy, Tuning = tuning };
        var log = SegmentedLog.OpenAsync(options).AsTask().GetAwaiter().GetResult();
        return new AppendLogEngine(log);
    }
}
