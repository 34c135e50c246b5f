namespace AppendLog.Diagnostics;

/// <summary>Where a reader's batch came from (the read path tries them in this order: docs/internals.md, section 8).</summary>
internal enum BatchSource
{
    /// <summary>The shared batch cache: a hit.</summary>
    Cache,

    /// <summary>The writer's in-memory tail (durable, not yet evicted from its chunks): a cache miss that read no disk.</summary>
    Writer,

    /// <summary>The segment file.</summary>
    Disk,
}
