using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace AppendLog.KafkaBench;

/// <summary>
/// Samples the process's allocations by type with the runtime's own GC AllocationTick event (one event about every
/// 100 KB allocated on a heap, naming the type of the allocation that crossed the mark and the bytes allocated since
/// the previous event: summed by type, an estimate of each type's bytes; a large object is its own event). It answers "where do the bytes per fetched batch go" without a profiler or
/// dotnet-counters; <c>--alloc-trace</c> prints the table after the raw fetch loop.
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    /// <summary>The runtime's event source and the GC keyword (0x1); AllocationTick is event 10 at Verbose.</summary>
    private const string RuntimeSource = "Microsoft-Windows-DotNETRuntime";
    private const EventKeywords GcKeyword = (EventKeywords)0x1;
    private const int AllocationTickEventId = 10;

    private readonly ConcurrentDictionary<string, long> _bytesByType = new();
    private volatile bool _recording;

    /// <summary>Starts counting (events before this, from warmup, are ignored).</summary>
    public void Start() => _recording = true;

    /// <summary>Stops counting; returns the types by their estimated bytes, most first.</summary>
    public IReadOnlyList<AllocationSample> Stop()
    {
        _recording = false;
        return _bytesByType.OrderByDescending(p => p.Value).Select(p => new AllocationSample(p.Key, p.Value)).ToList();
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == RuntimeSource)
        {
            EnableEvents(eventSource, EventLevel.Verbose, GcKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (!_recording || eventData.EventId != AllocationTickEventId || eventData.PayloadNames is not { } names)
        {
            return;
        }

        var payload = eventData.Payload;
        int typeIndex = names.IndexOf("TypeName");
        int amountIndex = names.IndexOf("AllocationAmount64");
        string type = typeIndex >= 0 && payload?[typeIndex] is string name ? name : "?";
        long amount = amountIndex >= 0 && payload?[amountIndex] is ulong bytes ? (long)bytes : 0;
        _bytesByType.AddOrUpdate(type, amount, (_, n) => n + amount);
    }
}

/// <summary>One type's estimated bytes: the AllocationAmount64 of its AllocationTick events.</summary>
internal sealed record AllocationSample(string Type, long Bytes);
