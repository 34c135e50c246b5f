using System.Diagnostics;
using AppendLog.LoadGen.Measurement;
using HdrHistogram;

namespace AppendLog.RaftBench;

/// <summary>The outcome of one open-loop step at a fixed offered rate, computed inside the leader.</summary>
internal sealed record OpenResult(
    double Rate, double WindowSeconds, long Intended, long AckedInWindow, double AckedPerSecond, long Errors, long NotSent, long Unfinished,
    double P50Ms, double P90Ms, double P99Ms, double P999Ms, double P9999Ms, double MaxMs, long Samples, double SendLagP99Ms,
    string? FirstError, string Pacing);

/// <summary>
/// Open loop: <c>producers</c> dedicated threads, each with a fixed schedule of intended send times (the rate split
/// evenly, producers staggered by a fraction of one interval), replicate a 1 KiB entry at each time without waiting for
/// earlier ones. Latency = commit − <em>intended</em> send time, so a producer that sleeps past its slot, or waits for
/// its in-flight cap, charges that time to the engine (no coordinated omission). Every send intended before the end of
/// the window is issued, however late, until the drain deadline (window end + 10 s); sends never issued by then count as
/// not sent, commits never seen as unfinished, and either fails the step. Threads sleep with nanosleep(2) at a 1 µs
/// timer slack (LoadGen's PreciseSleep), not Thread.Sleep's whole milliseconds. With <c>pooled</c> each call is
/// dispatched to the thread pool instead of made on the producer thread, for an engine whose call does much work (or
/// blocks) before its first await: the producer then keeps its schedule and the dispatch delay is the engine's latency.
/// Producers run at a real-time priority where the machine allows it (<see cref="PacingPriority"/>): on a busy machine a
/// normal thread woke milliseconds late, and that harness lag, charged to every engine alike, hid their differences.
/// One producer is the default: a late wake-up sends every due request at once, each with its own intended time.
/// </summary>
internal static class OpenLoop
{
    private const long HighestMicros = 60_000_000;

    /// <summary>The time left until a Stopwatch timestamp, zero once it has passed (Task.Delay refuses negative spans).</summary>
    public static TimeSpan Until(long timestamp) => TimeSpan.FromTicks(Math.Max(0, Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), timestamp).Ticks));

    public static async Task<OpenResult> RunAsync(IBenchNode node, double rate, int producers, bool pooled, TimeSpan warmup, TimeSpan window, Action<string> mark)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rate);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(producers);
        var start = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 100; // 10 ms for the threads to start
        var windowStart = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var windowEnd = windowStart + (long)(window.TotalSeconds * Stopwatch.Frequency);
        var drainDeadline = windowEnd + (10 * Stopwatch.Frequency);
        var interval = producers / rate * Stopwatch.Frequency; // ticks between one producer's sends

        // In flight per producer: one second of its schedule (at least 256). Far above what a step within 20 ms holds.
        var inflightMax = Math.Max(256, (int)Math.Min(1_000_000, rate / producers));
        var states = Enumerable.Range(0, producers).Select(p => new ProducerState(inflightMax, start + (long)(p * interval / producers))).ToArray();
        long outstanding = 0;
        long errors = 0;
        string? firstError = null;
        var allIssued = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var producersLeft = producers;

        void OnDone(ProducerState state, long intended, Exception? error)
        {
            var acked = Stopwatch.GetTimestamp();
            if (error is not null)
            {
                Interlocked.Increment(ref errors);
                Interlocked.CompareExchange(ref firstError, error.GetType().Name + ": " + error.Message.ReplaceLineEndings(" "), null);
            }
            else
            {
                if (intended >= windowStart)
                {
                    state.Latency.RecordValue(Math.Clamp((acked - intended) * 1_000_000 / Stopwatch.Frequency, 1, HighestMicros));
                }

                if (acked >= windowStart && acked < windowEnd)
                {
                    Interlocked.Increment(ref state.AckedInWindow);
                }
            }

            state.Inflight.Release();
            if (Interlocked.Decrement(ref outstanding) == 0 && allIssued.Task.IsCompleted)
            {
                drained.TrySetResult();
            }
        }

        async Task TrackAsync(ProducerState state, long intended, ValueTask pending)
        {
            Exception? error = null;
            try
            {
                await pending.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                error = ex;
            }

            OnDone(state, intended, error);
        }

        var payload = ClosedLoop.Payload(-2);
        void Send(ProducerState state, long intended)
        {
            ValueTask pending;
            try
            {
                pending = node.ReplicateAsync(payload, CancellationToken.None);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                pending = ValueTask.FromException(ex);
            }

            _ = TrackAsync(state, intended, pending);
        }

        string? pacing = null;
        var threads = states.Select((state, p) => new Thread(() =>
        {
            PreciseSleep.TryTightenTimerSlack();
            Interlocked.CompareExchange(ref pacing, PacingPriority.TryRaiseCurrentThread(), null);
            var count = (long)Math.Ceiling((windowEnd - state.FirstSend) / interval);
            for (long k = 0; k < count; k++)
            {
                var intended = state.FirstSend + (long)(k * interval);
                PreciseSleep.Until(intended);
                var untilDeadline = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), drainDeadline);
                if (untilDeadline <= TimeSpan.Zero || !state.Inflight.Wait(untilDeadline))
                {
                    state.NotSent = count - k;
                    break;
                }

                var issued = Stopwatch.GetTimestamp();
                if (intended >= windowStart)
                {
                    state.SendLag.RecordValue(Math.Clamp((issued - intended) * 1_000_000 / Stopwatch.Frequency, 1, HighestMicros));
                    state.Intended++;
                }

                Interlocked.Increment(ref outstanding);
                if (pooled)
                {
                    // The call runs on the thread pool: its synchronous part never holds this producer's next sends.
                    var sent = intended;
                    ThreadPool.UnsafeQueueUserWorkItem(_ => Send(state, sent), null);
                }
                else
                {
                    Send(state, intended);
                }
            }

            if (Interlocked.Decrement(ref producersLeft) == 0)
            {
                allIssued.TrySetResult();
                if (Interlocked.Read(ref outstanding) == 0)
                {
                    drained.TrySetResult();
                }
            }
        })
        { IsBackground = true, Name = $"open-loop-{p}" }).ToList();
        threads.ForEach(t => t.Start());

        // The driver samples every member's CPU time at these marks.
        await Task.Delay(OpenLoop.Until(windowStart)).ConfigureAwait(false);
        mark("start");
        await Task.Delay(OpenLoop.Until(windowEnd)).ConfigureAwait(false);
        mark("end");
        await allIssued.Task.ConfigureAwait(false);
        try
        {
            await drained.Task.WaitAsync(Until(drainDeadline) + TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        var merged = new LongHistogram(HighestMicros, 3);
        var lag = new LongHistogram(HighestMicros, 3);
        foreach (var state in states)
        {
            merged.Add(state.Latency);

            lag.Add(state.SendLag);
        }

        double Ms(LongHistogram h, double percentile) => h.TotalCount == 0 ? double.NaN : h.GetValueAtPercentile(percentile) / 1000.0;
        var acked = states.Sum(s => Interlocked.Read(ref s.AckedInWindow));
        var unfinished = Interlocked.Read(ref outstanding);
        if (unfinished > 0)
        {
            // The step failed; let the engine work off its backlog (up to 30 s more) so the next step starts clean.
            await Task.WhenAny(drained.Task, Task.Delay(TimeSpan.FromSeconds(30))).ConfigureAwait(false);
        }

        return new OpenResult(
            rate, window.TotalSeconds, states.Sum(s => s.Intended), acked, acked / window.TotalSeconds, Interlocked.Read(ref errors),
            states.Sum(s => s.NotSent), unfinished,
            Ms(merged, 50), Ms(merged, 90), Ms(merged, 99), Ms(merged, 99.9), Ms(merged, 99.99),
            merged.TotalCount == 0 ? double.NaN : merged.GetMaxValue() / 1000.0, merged.TotalCount, Ms(lag, 99), firstError, pacing ?? "normal");
    }

    private sealed class ProducerState(int inflightMax, long firstSend)
    {
        public readonly SemaphoreSlim Inflight = new(inflightMax, inflightMax);
        public readonly long FirstSend = firstSend;

        /// <summary>Commit − intended, recorded by completions on any thread: a concurrent histogram.</summary>
        public readonly LongConcurrentHistogram Latency = new(1, HighestMicros, 3);

        /// <summary>Issue − intended: how late the harness itself sent. Written by the producer thread only.</summary>
        public readonly LongHistogram SendLag = new(HighestMicros, 3);
        public long AckedInWindow;
        public long Intended;
        public long NotSent;
    }
}
