using AppendLog.Appender;
using AppendLog.Testing;

namespace AppendLog.Tests.Durability;

/// <summary>
/// The small log the simulator-backed tests open: 1 MiB segments and small reservation steps, so that rolls, seals and
/// recovery scans happen within a few hundred records.
/// </summary>
internal static class SmallSimulatedLog
{
    /// <summary>How long an open may take before the test fails instead of hanging.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    public static LogOptions Options(string directory) => new()
    {
        Directory = directory,
        SegmentSize = 1024 * 1024,
        MaximumBatchSize = 64 * 1024,
        PreallocationMinimumStep = 128 * 1024,
        PreallocationMaximumStep = 256 * 1024,
    };

    /// <summary>Opens (and recovers) the log in <paramref name="storage"/>, bounded by <see cref="Bound"/>.</summary>
    public static Task<SegmentedLog> OpenAsync(LogOptions options, SimulatedStorage storage, IoWorkers io) =>
        SegmentedLog.OpenAsync(options, storage, io, CancellationToken.None).AsTask().WaitAsync(Bound);
}
