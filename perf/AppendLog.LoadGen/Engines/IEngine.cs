namespace AppendLog.LoadGen.Engines;

/// <summary>
/// One open log of one engine, as the load generator drives it. An instance owns a fresh directory
/// and is used by many producers at once, so <see cref="AppendAsync"/> must be thread-safe.
/// </summary>
internal interface IEngine : IAsyncDisposable
{
    /// <summary>
    /// Appends <paramref name="payload"/> as one record. The returned task completes only when the
    /// record, and every record acknowledged before it on this instance, is durable on disk (the
    /// engine's own definition of durable is stated in its factory's settings line). The caller does
    /// not modify <paramref name="payload"/> while the task is pending.
    /// </summary>
    ValueTask AppendAsync(ReadOnlyMemory<byte> payload);

    /// <summary>
    /// Number of fsync/fdatasync calls this instance made since it was opened, or null when the engine
    /// cannot be instrumented from inside the process (see the strace recipe in perf/README.md).
    /// </summary>
    long? SyncCalls { get; }

    /// <summary>
    /// Wake-ups of the threads that run this instance's syncs, when they serve several instances at once (a shared
    /// sync loop; counted by one instance of the group, the others report 0), or null when not counted.
    /// </summary>
    long? WakeUps => null;

    /// <summary>Engine-specific counters reported in results.json (for example commit calls).</summary>
    IReadOnlyDictionary<string, long> Counters { get; }
}
