namespace AppendLog.LoadGen.Engines;

/// <summary>
/// Acknowledges every append at once and stores nothing. It is not a storage engine: it measures the load
/// generator's own floor (producer pacing, timer wake-up, histogram recording) so that a row of real
/// engines can be read against it. It is never durable and is refused as the reference engine.
/// </summary>
internal sealed class NullEngine : IEngine
{
    private long _appends;

    public long? SyncCalls => 0;

    public IReadOnlyDictionary<string, long> Counters =>
        new Dictionary<string, long> { ["appends"] = Interlocked.Read(ref _appends) };

    public ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
    {
        Interlocked.Increment(ref _appends);
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>Registers <see cref="NullEngine"/>.</summary>
internal sealed class NullEngineFactory : IEngineFactory
{
    public string Name => "null";

    public string Settings => "acknowledges immediately, writes nothing: the harness's own latency floor (NOT durable)";

    public bool IsDurable => false;

    public IEngine Open(string directory, EngineContext context) => new NullEngine();
}
