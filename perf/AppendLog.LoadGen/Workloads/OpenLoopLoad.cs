using System.Diagnostics;
using AppendLog.LoadGen.Engines;
using AppendLog.LoadGen.Measurement;
using HdrHistogram;

namespace AppendLog.LoadGen.Workloads;

/// <summary>
/// Open loop: each producer owns a fixed schedule of intended send times (the rate split evenly across
/// producers, producers staggered by a fraction of one interval) and sends without waiting for acks. A producer
/// is a dedicated thread or an async loop on the thread pool (<see cref="ProducerMode"/>).
/// Latency is ack time − intended send time, so time a producer spends late (asleep past its slot, or
/// blocked because it already has <see cref="LoadGenOptions.InflightPerProducerMax"/> sends outstanding) is
/// charged to the engine instead of vanishing (coordinated omission). Every intended send of the window is
/// issued, however late, until the drain deadline; the ones still unsent then are counted as
/// <see cref="LoadOutcome.NotSent"/> and the run is reported incomplete.
/// </summary>
internal sealed class OpenLoopLoad : ILoad
{
    private readonly ReadOnlyMemory<byte> _payload;
    private readonly RunWindow _window;
    private readonly Producer[] _producers;
    private readonly ProducerMode _mode;
    private readonly double _intervalTicks;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _outstanding;
    private int _producersRunning;
    private volatile bool _allSent;
    private long _clamped;
    private long _failed;
    private string? _firstError;

    public OpenLoopLoad(
        IReadOnlyList<IEngine> engines, ReadOnlyMemory<byte> payload, Workload workload, int inflightPerProducerMax,
        RunWindow window)
    {
        _payload = payload;
        _window = window;
        _mode = workload.Mode;
        double bytesPerSecondPerProducer = workload.RateMBps!.Value * 1e6 / workload.Producers;
        _intervalTicks = payload.Length / bytesPerSecondPerProducer * Stopwatch.Frequency;
        _producers = new Producer[workload.Producers];
        for (int p = 0; p < _producers.Length; p++)
        {
            long first = window.Start + (long)(p * _intervalTicks / _producers.Length);
            // Fewer producers than logs: producer p serves logs p, p + P, p + 2P, … in turn, so every log gets the same
            // share of the rate; more producers than logs: several producers share a log.
            var served = engines.Count <= _producers.Length
                ? [engines[p % engines.Count]]
                : Enumerable.Range(0, engines.Count).Where(l => l % _producers.Length == p).Select(l => engines[l]).ToArray();
            _producers[p] = new Producer(p, served, first, inflightPerProducerMax);
        }
    }

    public void Start()
    {
        _producersRunning = _producers.Length;
        foreach (Producer producer in _producers)
        {
            if (_mode == ProducerMode.Dedicated)
            {
                var thread = new Thread(() => RunDedicated(producer))
                {
                    IsBackground = true,
                    Name = $"producer-{producer.Index}",
                };
                thread.Start();
            }
            else
            {
                _ = Task.Run(() => RunPooledAsync(producer));
            }
        }
    }

    /// <summary>Sends k = 0 .. count-1 are the ones intended before the end of the measured window.</summary>
    private long SendCount(Producer producer) =>
        (long)Math.Ceiling((_window.MeasureEnd - producer.FirstSend) / _intervalTicks);

    private long Intended(Producer producer, long k) => producer.FirstSend + (long)(k * _intervalTicks);

    private void RunDedicated(Producer producer)
    {
        PreciseSleep.TryTightenTimerSlack();
        long sendCount = SendCount(producer);
        for (long k = 0; k < sendCount; k++)
        {
            long intended = Intended(producer, k);
            PreciseSleep.Until(intended);
            TimeSpan untilDeadline = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _window.DrainDeadline);
            if (untilDeadline <= TimeSpan.Zero || !producer.Inflight.Wait(untilDeadline))
            {
                producer.NotSent = sendCount - k;
                break;
            }
            Send(producer, intended, k);
        }
        OnProducerDone();
    }

    /// <summary>
    /// An application's producer: an async loop on the shared thread pool that waits for its next intended time
    /// with <c>Task.Delay</c>, rounded up to whole milliseconds (the runtime timer's resolution; a producer never
    /// sends early), and on waking sends every record whose time has come, one after the other.
    /// </summary>
    private async Task RunPooledAsync(Producer producer)
    {
        long sendCount = SendCount(producer);
        for (long k = 0; k < sendCount; k++)
        {
            long intended = Intended(producer, k);
            TimeSpan untilIntended = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), intended);
            if (untilIntended > TimeSpan.Zero)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Ceiling(untilIntended.TotalMilliseconds)));
            }
            TimeSpan untilDeadline = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _window.DrainDeadline);
            if (untilDeadline <= TimeSpan.Zero || !await producer.Inflight.WaitAsync(untilDeadline))
            {
                producer.NotSent = sendCount - k;
                break;
            }
            Send(producer, intended, k);
        }
        OnProducerDone();
    }

    /// <summary>One send: records how late it left and how long the call held the producer, then tracks the ack.</summary>
    private void Send(Producer producer, long intended, long k)
    {
        bool measured = intended >= _window.MeasureStart;
        long callStart = Stopwatch.GetTimestamp();
        if (measured)
        {
            // How late the harness itself sent: sleep overshoot, CPU starvation, the in-flight cap, or an
            // earlier AppendAsync call that held this producer.
            producer.SendLag.RecordValue(LatencyHistograms.ToMicros(intended, callStart, out bool _));
        }
        Interlocked.Increment(ref _outstanding);
        ValueTask pending;
        try
        {
            pending = producer.Engines[(int)(k % producer.Engines.Length)].AppendAsync(_payload);
        }
        catch (Exception e) // an engine failure is a result to report, not a reason to stop the whole run
        {
            pending = ValueTask.FromException(e);
        }
        if (measured)
        {
            // Time the call itself held the producer: tells an engine that blocks its caller from a starved CPU.
            producer.AppendCall.RecordValue(
                LatencyHistograms.ToMicros(callStart, Stopwatch.GetTimestamp(), out bool _));
        }
        if (pending.IsCompletedSuccessfully)
        {
            OnAck(producer, intended, error: null);
        }
        else
        {
            _ = TrackAsync(producer, intended, pending);
        }
    }

    private void OnProducerDone()
    {
        if (Interlocked.Decrement(ref _producersRunning) == 0)
        {
            _allSent = true;
            if (Interlocked.Read(ref _outstanding) == 0)
            {
                _drained.TrySetResult();
            }
        }
    }

    private async Task TrackAsync(Producer producer, long intended, ValueTask pending)
    {
        Exception? error = null;
        try
        {
            await pending;
        }
        catch (Exception e) // an engine failure is a result to report, not a reason to stop the whole run
        {
            error = e;
        }
        OnAck(producer, intended, error);
    }

    private void OnAck(Producer producer, long intended, Exception? error)
    {
        long ack = Stopwatch.GetTimestamp();
        if (error is not null)
        {
            Interlocked.Increment(ref _failed);
            Interlocked.CompareExchange(ref _firstError, error.GetType().Name + ": " + error.Message, null);
        }
        else
        {
            if (intended >= _window.MeasureStart)
            {
                producer.Latency.RecordValue(LatencyHistograms.ToMicros(intended, ack, out bool clamped));
                if (clamped)
                {
                    Interlocked.Increment(ref _clamped);
                }
            }
            if (_window.IsMeasured(ack))
            {
                Interlocked.Increment(ref producer.AckedInWindow);
            }
        }
        producer.Inflight.Release();
        if (Interlocked.Decrement(ref _outstanding) == 0 && _allSent)
        {
            _drained.TrySetResult();
        }
    }

    public async Task<bool> WaitForDrainAsync()
    {
        TimeSpan untilDeadline = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _window.DrainDeadline);
        // Producers stop by the deadline on their own; a small margin lets the last of them notice it.
        try
        {
            await _drained.Task.WaitAsync(untilDeadline + TimeSpan.FromMilliseconds(100));
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
        LongHistogram sendLag = LatencyHistograms.Create();
        LongHistogram appendCall = LatencyHistograms.Create();
        long acked = 0;
        long notSent = 0;
        foreach (Producer producer in _producers)
        {
            merged.Add(producer.Latency.GetIntervalHistogram());
            sendLag.Add(producer.SendLag);
            appendCall.Add(producer.AppendCall);
            acked += Interlocked.Read(ref producer.AckedInWindow);
            notSent += producer.NotSent;
        }
        return new LoadOutcome(
            merged, acked, notSent, Interlocked.Read(ref _outstanding), Interlocked.Read(ref _clamped),
            Interlocked.Read(ref _failed), Volatile.Read(ref _firstError), sendLag, appendCall);
    }

    private sealed class Producer(int index, IEngine[] engines, long firstSend, int inflightMax)
    {
        public readonly int Index = index;

        /// <summary>The logs this producer sends to, in turn.</summary>
        public readonly IEngine[] Engines = engines;
        public readonly long FirstSend = firstSend;
        public readonly SemaphoreSlim Inflight = new(inflightMax, inflightMax);
        public readonly Recorder Latency = LatencyHistograms.CreateRecorder();

        /// <summary>Actual − intended send time; written by the producer only (one send at a time).</summary>
        public readonly LongHistogram SendLag = LatencyHistograms.Create();

        /// <summary>Duration of the synchronous AppendAsync call; written by the producer only.</summary>
        public readonly LongHistogram AppendCall = LatencyHistograms.Create();
        public long AckedInWindow;
        public long NotSent;
    }
}
