using System.Diagnostics;
using AppendLog.LoadGen.Engines;
using AppendLog.LoadGen.Measurement;
using HdrHistogram;

namespace AppendLog.LoadGen.Workloads;

/// <summary>
/// Closed loop: N appenders, each appends, awaits the durable ack, and repeats, from the start of the warm-up
/// to the end of the measured window. Latency is ack − send of appends sent inside the window; throughput
/// counts acks inside the window. The synchronous part of each measured call (until AppendAsync returns its
/// task) is recorded apart. Appender i uses log i mod logs.
/// </summary>
internal sealed class ClosedLoopLoad : ILoad
{
    private readonly ReadOnlyMemory<byte> _payload;
    private readonly RunWindow _window;
    private readonly Appender[] _appenders;
    private Task[] _tasks = [];
    private long _failed;
    private string? _firstError;

    public ClosedLoopLoad(IReadOnlyList<IEngine> engines, ReadOnlyMemory<byte> payload, int concurrency, RunWindow window)
    {
        _payload = payload;
        _window = window;
        _appenders = Enumerable.Range(0, concurrency).Select(i => new Appender(engines[i % engines.Count])).ToArray();
    }

    public void Start() =>
        _tasks = _appenders.Select(a => Task.Run(() => RunAsync(a))).ToArray();

    private async Task RunAsync(Appender appender)
    {
        await RunWindow.SleepUntilAsync(_window.Start);
        while (true)
        {
            long sent = Stopwatch.GetTimestamp();
            if (sent >= _window.MeasureEnd)
            {
                return;
            }
            try
            {
                ValueTask pending = appender.Engine.AppendAsync(_payload);
                if (sent >= _window.MeasureStart)
                {
                    // The synchronous part of the call: how long it held this appender before handing back a task.
                    appender.AppendCall.RecordValue(
                        LatencyHistograms.ToMicros(sent, Stopwatch.GetTimestamp(), out bool _));
                }
                await pending;
            }
            catch (Exception e) // an engine failure is a result to report, not a reason to stop the whole run
            {
                // The engine is failing: stop this appender rather than spin on errors.
                Interlocked.Increment(ref _failed);
                Interlocked.CompareExchange(ref _firstError, e.GetType().Name + ": " + e.Message, null);
                return;
            }
            long ack = Stopwatch.GetTimestamp();
            if (sent >= _window.MeasureStart)
            {
                appender.Latency.RecordValue(LatencyHistograms.ToMicros(sent, ack, out bool clamped));
                appender.Clamped += clamped ? 1 : 0;
            }
            if (_window.IsMeasured(ack))
            {
                appender.AckedInWindow++;
            }
        }
    }

    public async Task<bool> WaitForDrainAsync()
    {
        TimeSpan untilDeadline = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _window.DrainDeadline);
        try
        {
            await Task.WhenAll(_tasks).WaitAsync(untilDeadline > TimeSpan.Zero ? untilDeadline : TimeSpan.Zero);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    public LoadOutcome Collect()
    {
        LongHistogram merged = LatencyHistograms.Create();
        LongHistogram appendCall = LatencyHistograms.Create();
        long acked = 0;
        long clamped = 0;
        long notAcked = 0;
        for (int i = 0; i < _appenders.Length; i++)
        {
            if (!_tasks[i].IsCompleted)
            {
                // Still awaiting an append after the deadline: its histogram may still change, leave it out.
                notAcked++;
                continue;
            }
            merged.Add(_appenders[i].Latency);
            appendCall.Add(_appenders[i].AppendCall);
            acked += _appenders[i].AckedInWindow;
            clamped += _appenders[i].Clamped;
        }
        return new LoadOutcome(
            merged, acked, NotSent: 0, notAcked, clamped, Interlocked.Read(ref _failed), Volatile.Read(ref _firstError),
            AppendCall: appendCall);
    }

    /// <summary>State of one appender; only its own task touches it until the task ends.</summary>
    private sealed class Appender(IEngine engine)
    {
        public readonly IEngine Engine = engine;
        public readonly LongHistogram Latency = LatencyHistograms.Create();
        public readonly LongHistogram AppendCall = LatencyHistograms.Create();
        public long AckedInWindow;
        public long Clamped;
    }
}
