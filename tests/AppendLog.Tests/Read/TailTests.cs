using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using AppendLog.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Read;

/// <summary>
/// Tailing readers under concurrent appends (single records and batches, across segment rolls), started at the
/// start, in the middle and at the end, several at once; and how a tail ends when cancelled or disposed.
/// Time bounds here are generous hang detectors, never performance assertions.
/// </summary>
[TestFixture(DirectIoMode.Preferred)]
[TestFixture(DirectIoMode.Disabled)]
public sealed class TailTests(DirectIoMode mode)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory("appendlog-tail");

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private LogOptions Options() => new()
    {
        Directory = _dir.File("log"),
        DirectIo = mode,
        SegmentSize = 1024 * 1024,
        MaximumBatchSize = 64 * 1024,
        PreallocationMinimumStep = 256 * 1024,
        PreallocationMaximumStep = 256 * 1024,
    };

    /// <summary>A record's value: writer, sequence number, then bytes that depend on both.</summary>
    private static byte[] Payload(int writer, int sequence, int size)
    {
        var bytes = ReadModel.Fill(size, (writer * 1_000_003) + sequence);
        BinaryPrimitives.WriteInt32LittleEndian(bytes, writer);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), sequence);
        return bytes;
    }

    /// <summary>Runs <paramref name="writers"/> appenders; returns every acknowledged offset and the value it holds.</summary>
    private static async Task<ConcurrentDictionary<long, byte[]>> AppendConcurrentlyAsync(SegmentedLog log, int writers, int operations, int seed)
    {
        var acked = new ConcurrentDictionary<long, byte[]>();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var random = new Random(Seeds.Derive(seed, w));
            int sequence = 0;
            for (int op = 0; op < operations; op++)
            {
                int count = random.Next(3) == 0 ? random.Next(2, 9) : 1;
                var values = Enumerable.Range(0, count).Select(_ => Payload(w, sequence++, random.Next(16, 1500))).ToArray();
                long first = count == 1
                    ? await log.AppendAsync(values[0])
                    : await log.AppendBatchAsync(values.Select(v => new AppendRecord(v)).ToArray());
                for (int i = 0; i < count; i++)
                {
                    Assert.That(acked.TryAdd(first + i, values[i]), Is.True, $"offset {first + i} acknowledged twice");
                }
            }
        }))).WaitAsync(Bound);
        return acked;
    }

    /// <summary>A tail from a given offset that records what it receives until cancelled.</summary>
    private sealed class Tail
    {
        private long _next;

        public Tail(SegmentedLog log, long from, CancellationToken token)
        {
            _next = from;
            Task = System.Threading.Tasks.Task.Run(async () =>
            {
                try
                {
                    await foreach (var r in log.TailAsync(from, token))
                    {
                        Received.Add(r);
                        Volatile.Write(ref _next, r.Offset + 1);
                    }
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                }
            });
        }

        public List<LogRecord> Received { get; } = [];

        public long Next => Volatile.Read(ref _next);

        public Task Task { get; }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Bound)
            {
                Assert.Fail($"timed out waiting until {what}");
            }

            await Task.Delay(5);
        }
    }

    private static void AssertReceived(List<LogRecord> received, long from, long end, IReadOnlyDictionary<long, byte[]> acked, string reader)
    {
        Assert.That(received.Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, (int)(end - from)).Select(i => from + i)),
            $"{reader}: every offset in [{from}, {end}) exactly once, in order");
        foreach (var r in received)
        {
            if (!r.Value.AsSpan().SequenceEqual(acked[r.Offset]))
            {
                Assert.Fail($"{reader}: the bytes at offset {r.Offset} differ from what was appended there");
            }
        }
    }

    [Test]
    public async Task SeveralTails_UnderConcurrentAppendsAcrossRolls_ReceiveEveryRecordOnceInOrder()
    {
        int seed = Seeds.Get();
        await using var log = await SegmentedLog.OpenAsync(Options());
        using var stop = new CancellationTokenSource();
        var fromStart = new Tail(log, 0, stop.Token);
        var appending = AppendConcurrentlyAsync(log, writers: 4, operations: 450, seed);

        // One more tail from the end as it is now, and one from the middle of what is durable (it catches up from
        // the files, then waits): both join while the appenders run.
        await WaitUntilAsync(() => log.DurableEndOffset >= 1500, "1500 records are durable");
        long middle = log.DurableEndOffset / 2, end = log.EndOffset;
        var fromMiddle = new Tail(log, middle, stop.Token);
        var fromEnd = new Tail(log, end, stop.Token);
        var acked = await appending;
        long total = log.EndOffset;
        Assert.That(acked, Has.Count.EqualTo(total), "every accepted record was acknowledged");
        Assert.That(log.SegmentCount, Is.GreaterThanOrEqualTo(3), "the appends rolled segments while the tails read");

        var tails = new[] { fromStart, fromMiddle, fromEnd };
        await WaitUntilAsync(() => tails.All(t => t.Next == total || t.Task.IsCompleted), "every tail received the last record");
        await stop.CancelAsync();
        await Task.WhenAll(tails.Select(t => t.Task)).WaitAsync(Bound);
        AssertReceived(fromStart.Received, 0, total, acked, "tail from 0");
        AssertReceived(fromMiddle.Received, middle, total, acked, $"tail from the middle ({middle})");
        AssertReceived(fromEnd.Received, end, total, acked, $"tail from the end at join ({end})");

        // Each writer's records come in the order it appended them (it awaited each append).
        var lastSequence = new Dictionary<int, int>();
        foreach (var r in fromStart.Received)
        {
            int writer = BinaryPrimitives.ReadInt32LittleEndian(r.Value), sequence = BinaryPrimitives.ReadInt32LittleEndian(r.Value.AsSpan(4));
            Assert.That(sequence, Is.GreaterThan(lastSequence.GetValueOrDefault(writer, -1)), $"writer {writer} in order");
            lastSequence[writer] = sequence;
        }
    }

    [Test]
    public async Task Tail_CaughtUpAndWaiting_EndsWithOperationCanceled_WhenCancelled()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        await log.AppendAsync(Payload(0, 0, 100));
        using var cts = new CancellationTokenSource();
        int seen = 0;
        var reader = Task.Run(async () =>
        {
            await foreach (var _ in log.TailAsync(0, cts.Token))
            {
                seen++;
            }
        });
        await WaitUntilAsync(() => Volatile.Read(ref seen) == 1, "the tail delivered the one record");
        await Task.Delay(50);
        var clock = Stopwatch.StartNew();
        await cts.CancelAsync();
        Assert.That(async () => await reader.WaitAsync(Bound), Throws.InstanceOf<OperationCanceledException>());
        TestContext.Out.WriteLine($"cancel → end of enumeration: {clock.Elapsed.TotalMilliseconds:F1} ms");
        Assert.That(seen, Is.EqualTo(1));
    }

    [Test]
    public async Task Tail_WhileRecordsStream_EndsWithOperationCanceled_WhenCancelled_AndWhatItGotIsAPrefix()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        using var cts = new CancellationTokenSource();
        using var stopWriting = new CancellationTokenSource();
        var received = new List<LogRecord>();
        int count = 0;
        var reader = Task.Run(async () =>
        {
            await foreach (var r in log.TailAsync(0, cts.Token))
            {
                received.Add(r);
                Interlocked.Increment(ref count);
            }
        });
        var writer = Task.Run(async () =>
        {
            for (int i = 0; !stopWriting.IsCancellationRequested; i++)
            {
                await log.AppendAsync(Payload(1, i, 700));
            }
        });
        await WaitUntilAsync(() => Volatile.Read(ref count) > 300, "the tail received 300 records");
        await cts.CancelAsync();
        Assert.That(async () => await reader.WaitAsync(Bound), Throws.InstanceOf<OperationCanceledException>());
        await stopWriting.CancelAsync();
        await writer.WaitAsync(Bound);
        Assert.That(received.Select(r => r.Offset), Is.EqualTo(Enumerable.Range(0, received.Count).Select(i => (long)i)), "a gap-free prefix");
        Assert.That(received.Select(r => BinaryPrimitives.ReadInt32LittleEndian(r.Value.AsSpan(4))), Is.EqualTo(Enumerable.Range(0, received.Count)));
    }

    [Test]
    public async Task Tail_WithATokenAlreadyCancelled_ThrowsOperationCanceled_OnTheFirstMove()
    {
        await using var log = await SegmentedLog.OpenAsync(Options());
        await log.AppendAsync(Payload(0, 0, 10));
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await using var e = log.TailAsync(0, cts.Token).GetAsyncEnumerator();
        Assert.That(async () => await e.MoveNextAsync().AsTask().WaitAsync(Bound), Throws.InstanceOf<OperationCanceledException>());
    }

    /// <summary>
    /// The documentation says a tail also ends when the log is disposed. A waiting tail must then end, promptly,
    /// with an exception (ObjectDisposedException, or the cancellation the dispose caused), never hang.
    /// </summary>
    [Test]
    public async Task Tail_CaughtUpAndWaiting_Ends_WhenTheLogIsDisposed()
    {
        var log = await SegmentedLog.OpenAsync(Options());
        await log.AppendAsync(Payload(0, 0, 10));
        int seen = 0;
        var reader = Task.Run(async () =>
        {
            await foreach (var _ in log.TailAsync(0))
            {
                seen++;
            }
        });
        await WaitUntilAsync(() => Volatile.Read(ref seen) == 1, "the tail delivered the one record");
        await log.DisposeAsync().AsTask().WaitAsync(Bound);
        Exception? ended = null;
        try
        {
            await reader.WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch (TimeoutException)
        {
            Assert.Fail("the tail still waits 20 s after the log was disposed");
        }
        catch (Exception e)
        {
            ended = e;
        }

        TestContext.Out.WriteLine($"tail ended with {ended?.GetType().Name ?? "no exception"}");
        Assert.That(ended, Is.InstanceOf<ObjectDisposedException>().Or.InstanceOf<OperationCanceledException>());
    }
}
