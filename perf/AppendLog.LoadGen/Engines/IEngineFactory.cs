namespace AppendLog.LoadGen.Engines;

/// <summary>
/// A named engine configuration. Adding an engine to the load generator means writing one class that
/// implements this interface (and its <see cref="IEngine"/>) and listing it in <see cref="EngineRegistry"/>.
/// </summary>
internal interface IEngineFactory
{
    /// <summary>The name used on the command line (<c>--engines</c>) and in the result tables.</summary>
    string Name { get; }

    /// <summary>The settings that matter for fairness, printed beside the results.</summary>
    string Settings { get; }

    /// <summary>True when an acknowledgement means the record is on stable storage.</summary>
    bool IsDurable { get; }

    /// <summary>Opens one log in <paramref name="directory"/>, which exists and is empty.</summary>
    IEngine Open(string directory, EngineContext context);
}

/// <summary>What an engine may want to know about the workload when it opens.</summary>
/// <param name="RecordSizeBytes">Payload bytes per append.</param>
/// <param name="ProducerCount">Producers (open loop) or appenders (closed loop) of the workload.</param>
/// <param name="MinimalLoopFileBytes">Size of the minimal loop's prepared file (pre-zeroed ring or first fallocation).</param>
internal sealed record EngineContext(int RecordSizeBytes, int ProducerCount, long MinimalLoopFileBytes);
