using System.Collections.Concurrent;
using System.Globalization;
using AppendLog.Appender;
using AppendLog.Format;
using AppendLog.Io;
using AppendLog.Io.Interop;
using AppendLog.Testing;

namespace AppendLog.Tests.Durability;

/// <summary>How an epoch of a simulated run ends.</summary>
internal enum EpochEnd
{
    /// <summary>Power cut from the test thread after a drawn number of operations.</summary>
    CrashAfterOperations,

    /// <summary>Power cut from the storage hook just before the N-th write.</summary>
    CrashAtWrite,

    /// <summary>Power cut from the storage hook just before the N-th fdatasync.</summary>
    CrashAtSync,

    /// <summary>EIO on the N-th write; the log faults; then a power cut and reopen.</summary>
    WriteErrorThenCrash,

    /// <summary>EIO on the N-th fdatasync; the log faults; then a power cut and reopen.</summary>
    SyncErrorThenCrash,

    /// <summary>EIO on the N-th write; the log faults; reopen on the same (living) storage.</summary>
    WriteErrorThenReopen,

    /// <summary>Dispose and reopen without a crash: everything accepted must be there.</summary>
    CleanReopen,
}

/// <summary>Counters over many runs, printed by the soak.</summary>
internal sealed class RunTotals
{
    private readonly ConcurrentDictionary<string, long> _outcomes = new(StringComparer.Ordinal);
    private long _seeds;
    private long _operations;
    private long _crashes;
    private long _recordsVerified;
    private long _acknowledged;
    private long _acknowledgedLost;

    public long Seeds => Interlocked.Read(ref _seeds);

    public long Operations => Interlocked.Read(ref _operations);

    public long Crashes => Interlocked.Read(ref _crashes);

    public long RecordsVerified => Interlocked.Read(ref _recordsVerified);

    public long Acknowledged => Interlocked.Read(ref _acknowledged);

    public long AcknowledgedLost => Interlocked.Read(ref _acknowledgedLost);

    public void AddSeed() => Interlocked.Increment(ref _seeds);

    public void AddOperation() => Interlocked.Increment(ref _operations);

    public void AddCrash() => Interlocked.Increment(ref _crashes);

    public void AddVerified(long n) => Interlocked.Add(ref _recordsVerified, n);

    public void AddAcknowledged(long n) => Interlocked.Add(ref _acknowledged, n);

    public void AddLost(long n) => Interlocked.Add(ref _acknowledgedLost, n);

    /// <summary>Counts what the log did when a fault was injected ("EIO on write → LogFaultedException").</summary>
    public void AddOutcome(string fault, string outcome) => _outcomes.AddOrUpdate($"{fault} → {outcome}", 1, static (_, n) => n + 1);

    public override string ToString()
    {
        var lines = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture, $"seeds={Seeds} operations={Operations} crashes={Crashes} records verified={RecordsVerified} acknowledged={Acknowledged} acknowledged lost={AcknowledgedLost}"),
        };
        lines.AddRange(_outcomes.OrderBy(static p => p.Key, StringComparer.Ordinal).Select(static p => string.Create(CultureInfo.InvariantCulture, $"  {p.Key}: {p.Value}")));
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>
/// One seeded, model-based run against <see cref="SimulatedStorage"/>: several epochs of random operations (single
/// and batch appends awaited or not, TryAppend, concurrent writer tasks, flush, reads, a disk-full window), each
/// ended by a power cut, an injected EIO or a clean reopen, followed by recovery and a full check of the log
/// against the model.
/// </summary>
/// <remarks>
/// <para><b>What the check asserts after every reopen</b> (docs/internals.md, "The contract"):</para>
/// <list type="bullet">
/// <item>the log reads back gap-free from offset 0 to <c>EndOffset</c> = <c>DurableEndOffset</c>;</item>
/// <item>every record is one that was appended, byte for byte (<see cref="Payload"/>), none twice;</item>
/// <item>every acknowledged record is at the offset its append returned, and the recovered prefix of the previous
/// epoch is unchanged (recovery syncs what it keeps, so it is acknowledged too);</item>
/// <item>a batch is all or nothing, its records consecutive; a writer that awaits each append sees its records in
/// order;</item>
/// <item>the next append gets offset <c>EndOffset</c> (offsets never reused).</item>
/// </list>
/// <para>While the epoch runs: <c>DurableEndOffset</c> and <c>EndOffset</c> never go backwards and
/// durable ≤ end (sampled by a concurrent task and after every operation); an acknowledged append's offset is below
/// <c>DurableEndOffset</c> when its task completes; every LogFaultedException of one log instance is the same object
/// with the storage error as InnerException; no task is left pending (bounded waits).</para>
/// <para><b>Determinism.</b> The operations, sizes, crash points and crash tears come from the seed; the
/// interleaving of the I/O threads does not, so a replay repeats the scenario, not necessarily the schedule.</para>
/// </remarks>
internal sealed class SimulatedRun
{
    private const string Directory = "/sim/log";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    // Dedicated workers: a held write (latency spike) must not starve other tests on the shared ones.
    private static readonly IoWorkers s_io = new(4, "sim-io");

    private readonly int _seed;
    private readonly Random _random;
    private readonly RunTotals _totals;
    private readonly int _epochs;
    private readonly LogOptions _options;
    private readonly ConcurrentDictionary<long, Issued> _issued = new();
    private readonly ConcurrentDictionary<long, long> _acked = new();
    private readonly ConcurrentQueue<string> _violations = new();
    private readonly List<Task> _outstanding = [];
    private readonly List<(long Offset, long Id)> _tryAccepted = [];
    private List<long> _prefix = [];
    private SimulatedStorage _storage;
    private SimulatedStorage? _afterCrash;
    private long _nextId = 1;
    private int _nextWriter = 1;
    private long _driverSeq;
    private int _crashSignal;
    private volatile bool _stopIssuing;
    private bool _diskFullSeen;
    private LogFaultedException? _fault;
    private EpochEnd _end;
    private long _endBeforeClose;

    public SimulatedRun(int seed, RunTotals totals, int epochs = 3, EpochEnd[]? ends = null)
    {
        _seed = seed;
        _random = new Random(seed);
        _totals = totals;
        _epochs = epochs;
        _ends = ends;
        _storage = new SimulatedStorage(seed, supportsDirectIo: _random.Next(4) != 0);
        int chunk = _random.Next(2) == 0 ? 16 * 1024 : 64 * 1024;
        Pool = new LogBufferPool(budgetBytes: (64 * 1024) + (_random.Next(2, 12) * chunk), chunkSize: chunk);
        _options = new LogOptions
        {
            Directory = Directory,
            SegmentSize = 1024 * 1024,
            MaximumBatchSize = 64 * 1024,
            PreallocationMinimumStep = 64 * 1024 * _random.Next(1, 5),
            PreallocationMaximumStep = 512 * 1024,
            BufferPool = Pool,
            FlushPolicy = _random.Next(3) switch
            {
                0 => FlushPolicy.GroupCommit,
                1 => FlushPolicy.Debounced(TimeSpan.FromMilliseconds(1), 64 * 1024),
                _ => FlushPolicy.Debounced(TimeSpan.FromMilliseconds(_random.Next(1, 4)), 1024 * 1024),
            },
        };
    }

    private readonly EpochEnd[]? _ends;

    public LogBufferPool Pool { get; }

    /// <summary>Describes the run for failure messages.</summary>
    public string Describe => string.Create(CultureInfo.InvariantCulture, $"seed {_seed} (O_DIRECT {_storage.SupportsDirectIo}, chunk {Pool.ChunkSize}, budget {Pool.BudgetBytes}, policy {_options.FlushPolicy}, prealloc {_options.PreallocationMinimumStep})");

    /// <summary>Runs every epoch; throws on the first violated property, naming the seed.</summary>
    public async Task RunAsync()
    {
        _totals.AddSeed();
        try
        {
            var log = await SegmentedLog.OpenAsync(_options, _storage, s_io, CancellationToken.None).AsTask().WaitAsync(Bound);
            for (int epoch = 0; epoch < _epochs; epoch++)
            {
                var end = _ends is { Length: > 0 } ? _ends[_random.Next(_ends.Length)] : (EpochEnd)_random.Next(7);
                log = await RunEpochAsync(log, end, epoch);
            }

            await DrainAsync();
            _endBeforeClose = log.EndOffset;
            await log.DisposeAsync().AsTask().WaitAsync(Bound);
            var reopened = await SegmentedLog.OpenAsync(_options, _storage, s_io, CancellationToken.None).AsTask().WaitAsync(Bound);
            await VerifyAsync(reopened, exact: true, "final reopen");
            await reopened.DisposeAsync();
        }
        catch (Exception e) when (e is not DurabilityViolation)
        {
            throw new DurabilityViolation($"{Describe}: {e.GetType().Name}: {e.Message}", e);
        }
        finally
        {
            Pool.Dispose();
        }
    }

    private async Task<SegmentedLog> RunEpochAsync(SegmentedLog log, EpochEnd end, int epoch)
    {
        _stopIssuing = false;
        _fault = null;
        _crashSignal = 0;
        _afterCrash = null;
        _diskFullSeen = false;
        _end = end;
        int operations = _random.Next(10, 120);
        int crashAfter = _random.Next(1, operations);
        int nth = _random.Next(1, 60);
        int crashSeed = _random.Next();
        int spikeAt = _random.Next(3) == 0 ? _random.Next(1, 40) : -1;
        string fault = end.ToString();
        InstallHook(end, nth, crashSeed, spikeAt);
        if (end is EpochEnd.WriteErrorThenCrash or EpochEnd.WriteErrorThenReopen)
        {
            _storage.InjectError(StorageOperation.Write, nth);
        }
        else if (end == EpochEnd.SyncErrorThenCrash)
        {
            _storage.InjectError(StorageOperation.SyncData, nth);
        }

        using var sampling = new CancellationTokenSource();
        var sampler = SampleWatermarksAsync(log, sampling.Token);
        bool expectFault = end is not EpochEnd.CleanReopen;
        int done = 0;
        for (int i = 0; i < operations && !_stopIssuing; i++)
        {
            if (end == EpochEnd.CrashAfterOperations && i == crashAfter)
            {
                TriggerCrash(crashSeed);
                break;
            }

            await StepAsync(log);
            done++;
            _totals.AddOperation();
        }

        // Everything issued must finish (acknowledged or failed) within the bound: nothing hangs after a fault.
        await DrainAsync();
        if (end is EpochEnd.WriteErrorThenCrash or EpochEnd.SyncErrorThenCrash && Volatile.Read(ref _crashSignal) == 0)
        {
            // The error may not have been reached by the operations drawn; the crash still happens.
            TriggerCrash(crashSeed);
        }

        if (end is EpochEnd.CrashAtWrite or EpochEnd.CrashAtSync && Volatile.Read(ref _crashSignal) == 0)
        {
            TriggerCrash(crashSeed);
            await DrainAsync();
        }

        await sampling.CancelAsync();
        await sampler;
        _storage.BeforeOperation = null;
        _storage.ClearFaults();
        _storage.DiskFull = false;
        if (_fault is not null)
        {
            _totals.AddOutcome(fault, "LogFaultedException (one instance, InnerException set)");
        }
        else if (expectFault && end is EpochEnd.WriteErrorThenReopen)
        {
            _totals.AddOutcome(fault, "error not reached by the drawn operations");
        }

        _endBeforeClose = log.EndOffset;
        await Bounded(log.DisposeAsync().AsTask(), $"DisposeAsync at the end of epoch {epoch} ({end}, fault: {_fault?.InnerException?.Message ?? "none"}, disk full seen: {_diskFullSeen})");
        AssertNoViolations($"epoch {epoch} ({end}, {done} operations)");
        if (_afterCrash is not null)
        {
            _storage = _afterCrash;
            _storage.DiskFull = false;
            _totals.AddCrash();
        }

        var reopened = await Bounded(SegmentedLog.OpenAsync(_options, _storage, s_io, CancellationToken.None).AsTask(), $"OpenAsync after epoch {epoch}");
        bool exact = end == EpochEnd.CleanReopen || (end == EpochEnd.WriteErrorThenReopen && _fault is null);
        await VerifyAsync(reopened, exact, $"epoch {epoch} ({end}) reopen");

        // Offsets are never reused: the first append after recovery gets the recovered end.
        long expectedOffset = reopened.EndOffset;
        long id = NewIds(1, writer: -1, batchSize: 1);
        long offset = await Bounded(reopened.AppendAsync(Payload.Create(id, 100)).AsTask(), "the first append after recovery");
        Require(offset == expectedOffset, $"after recovery to {expectedOffset} the next append got offset {offset}");
        _acked[offset] = id;
        _totals.AddAcknowledged(1);
        return reopened;
    }

    private void InstallHook(EpochEnd end, int nth, int crashSeed, int spikeAt)
    {
        int writes = 0;
        int syncs = 0;
        var storage = _storage;
        ManualResetEventSlim? held = spikeAt > 0 ? new ManualResetEventSlim() : null;
        int releaseAt = spikeAt + 3;
        storage.BeforeOperation = (operation, _) =>
        {
            if (operation == StorageOperation.Write)
            {
                int n = Interlocked.Increment(ref writes);
                if (end == EpochEnd.CrashAtWrite && n == nth)
                {
                    TriggerCrash(crashSeed);
                }

                if (held is not null)
                {
                    if (n == spikeAt)
                    {
                        // Latency spike: hold this write until three later ones have been issued (or 50 ms), so they
                        // complete before it: out-of-order completion.
                        held.Wait(TimeSpan.FromMilliseconds(50));
                    }
                    else if (n >= releaseAt)
                    {
                        held.Set();
                    }
                }
            }
            else if (operation == StorageOperation.SyncData)
            {
                int n = Interlocked.Increment(ref syncs);
                if (end == EpochEnd.CrashAtSync && n == nth)
                {
                    TriggerCrash(crashSeed);
                }
            }
        };
    }

    private void TriggerCrash(int crashSeed)
    {
        if (Interlocked.Exchange(ref _crashSignal, 1) != 0)
        {
            return;
        }

        _stopIssuing = true;
        _afterCrash = _storage.Crash(crashSeed);
    }

    private async Task StepAsync(SegmentedLog log)
    {
        switch (_random.Next(20))
        {
            case < 4:
                await AppendOneAsync(log, writer: 0, seq: _driverSeq++);
                break;
            case < 7:
                Track(AppendOneAsync(log, writer: -1, seq: 0));
                break;
            case < 9:
                await AppendBatchAsync(log, writer: 0, seq: _driverSeq++);
                break;
            case < 10:
                Track(AppendBatchAsync(log, writer: -1, seq: 0));
                break;
            case < 12:
                TryAppend(log);
                break;
            case < 15:
                StartWriters(log);
                break;
            case < 16:
                await FlushAsync(log);
                break;
            case < 18:
                await ReadSomeAsync(log);
                break;
            case < 19:
                await DrainAsync();
                break;
            default:
                ToggleDiskFull();
                break;
        }

        CheckWatermarks(log);
    }

    private void ToggleDiskFull()
    {
        _storage.DiskFull = !_storage.DiskFull;
        _diskFullSeen |= _storage.DiskFull;
    }

    private int DrawLength()
    {
        return _random.Next(10) switch
        {
            < 6 => _random.Next(Payload.MinimumLength, 400),
            < 9 => _random.Next(400, 8000),
            _ => _random.Next(8000, 64 * 1024 - 200),
        };
    }

    private long NewIds(int count, int writer, int batchSize, long seq = 0)
    {
        long first = Interlocked.Add(ref _nextId, count) - count;
        for (int i = 0; i < count; i++)
        {
            _issued[first + i] = new Issued(writer, seq, i, batchSize);
        }

        return first;
    }

    private async Task AppendOneAsync(SegmentedLog log, int writer, long seq)
    {
        long id = NewIds(1, writer, 1, seq);
        byte[] value = Payload.Create(id, DrawLength());
        await ObserveAsync(log, async () => await log.AppendAsync(value), id, 1);
    }

    private async Task AppendBatchAsync(SegmentedLog log, int writer, long seq)
    {
        int count = _random.Next(1, 9);
        long first = NewIds(count, writer, count, seq);
        var records = new AppendRecord[count];
        for (int i = 0; i < count; i++)
        {
            records[i] = new AppendRecord(Payload.Create(first + i, _random.Next(Payload.MinimumLength, 6000)));
        }

        if (RecordBatchEncoder.MeasureUncompressed(records) > _options.MaximumBatchSize)
        {
            records = records[..1];
            _issued[first] = new Issued(writer, seq, 0, 1);
            count = 1;
        }

        await ObserveAsync(log, async () => await log.AppendBatchAsync(records), first, count);
    }

    private void TryAppend(SegmentedLog log)
    {
        long id = NewIds(1, writer: -1, batchSize: 1);
        try
        {
            if (log.TryAppend(Payload.Create(id, DrawLength()), out long offset))
            {
                _tryAccepted.Add((offset, id));
                Track(ObserveAsync(
                    log,
                    async () =>
                    {
                        await log.WaitForDurableAsync(offset + 1);
                        return offset;
                    },
                    id,
                    1));
            }
        }
        catch (LogFaultedException e)
        {
            NoteFault(log, e);
        }
    }

    private void StartWriters(SegmentedLog log)
    {
        int writers = _random.Next(2, 7);
        for (int w = 0; w < writers; w++)
        {
            int writer = Interlocked.Increment(ref _nextWriter);
            int count = _random.Next(1, 12);
            var plan = Enumerable.Range(0, count).Select(_ => (Batch: _random.Next(4) == 0, Length: DrawLength(), Size: _random.Next(1, 6))).ToList();
            Track(Task.Run(async () =>
            {
                for (int seq = 0; seq < plan.Count && !_stopIssuing; seq++)
                {
                    var (batch, length, size) = plan[seq];
                    bool ok;
                    if (batch)
                    {
                        long first = NewIds(size, writer, size, seq);
                        var records = Enumerable.Range(0, size).Select(i => new AppendRecord(Payload.Create(first + i, Math.Min(length, 9000)))).ToArray();
                        ok = await ObserveAsync(log, async () => await log.AppendBatchAsync(records), first, size);
                    }
                    else
                    {
                        long id = NewIds(1, writer, 1, seq);
                        ok = await ObserveAsync(log, async () => await log.AppendAsync(Payload.Create(id, length)), id, 1);
                    }

                    if (!ok)
                    {
                        break;
                    }
                }
            }));
        }
    }

    private async Task FlushAsync(SegmentedLog log)
    {
        long end = log.EndOffset;
        try
        {
            await log.FlushAsync().AsTask().WaitAsync(Bound);
            long durable = log.DurableEndOffset;
            Require(durable >= end, $"FlushAsync completed with DurableEndOffset {durable} below the EndOffset {end} at the call");
            foreach (var (offset, id) in _tryAccepted.Where(t => t.Offset < end))
            {
                _acked[offset] = id;
            }
        }
        catch (LogFaultedException e)
        {
            NoteFault(log, e);
        }
    }

    private async Task ReadSomeAsync(SegmentedLog log)
    {
        long durable = log.DurableEndOffset;
        long from = _random.NextInt64(0, durable + 1);
        int take = _random.Next(1, 300);
        long expected = from;
        var records = log.ReadAsync(from).GetAsyncEnumerator();
        while (true)
        {
            try
            {
                if (!await records.MoveNextAsync())
                {
                    break;
                }
            }
            catch (IOException e) when (e is not LogCorruptedException && Volatile.Read(ref _crashSignal) != 0)
            {
                // The power is off: a read fails with the storage's error, as any read of a dead disk would.
                await records.DisposeAsync();
                return;
            }

            var record = records.Current;
            Require(record.Offset == expected, $"read from {from}: got offset {record.Offset} where {expected} was next");
            string? problem = Payload.Check(record.Value, out long id);
            Require(problem is null, $"read at offset {record.Offset}: {problem}");
            Require(_issued.ContainsKey(id), $"read at offset {record.Offset}: identity {id} was never appended");
            if (_acked.TryGetValue(record.Offset, out long ackedId))
            {
                Require(ackedId == id, $"read at offset {record.Offset}: identity {id}, but the append acknowledged there was {ackedId}");
            }

            if (record.Offset < _prefix.Count)
            {
                Require(_prefix[(int)record.Offset] == id, $"read at offset {record.Offset}: identity {id}, recovered earlier as {_prefix[(int)record.Offset]}");
            }

            expected++;
            if (--take == 0)
            {
                break;
            }
        }

        await records.DisposeAsync();

        Require(take == 0 || expected >= durable, $"read from {from} stopped at {expected}, below the DurableEndOffset {durable} at its start");
    }

    /// <summary>Runs one append; records its acknowledgement or checks its failure. False when it failed.</summary>
    private async Task<bool> ObserveAsync(SegmentedLog log, Func<Task<long>> append, long firstId, int count)
    {
        try
        {
            var task = append();
            if (await Task.WhenAny(task, Task.Delay(Bound)) != task)
            {
                Require(false, $"append of identity {firstId} neither completed nor failed within {Bound.TotalSeconds} s (EndOffset {log.EndOffset}, DurableEndOffset {log.DurableEndOffset}, segments {log.SegmentCount})");
                _stopIssuing = true;
                return false;
            }

            long offset = await task;
            long durable = log.DurableEndOffset;
            Require(durable >= offset + count, $"append of identity {firstId} acknowledged offset {offset} while DurableEndOffset was {durable}");
            for (int i = 0; i < count; i++)
            {
                _acked[offset + i] = firstId + i;
            }

            _totals.AddAcknowledged(count);
            return true;
        }
        catch (LogFaultedException e)
        {
            NoteFault(log, e);
        }
        catch (IOException e) when (e is not LogDiskFullException and not LogFaultedException and not LogCorruptedException)
        {
            // Known and reported: when the open(2) of the next segment fails during a roll (here: the power is off),
            // AppendAsync throws the raw storage error, not a Log* exception, and the log is not faulted.
            Require(Volatile.Read(ref _crashSignal) != 0, $"append of identity {firstId} failed with an untyped I/O error: {e}");
            _totals.AddOutcome("power cut during a roll", $"raw {e.GetType().Name} from the append (untyped; log not faulted)");
            _stopIssuing = true;
        }
        catch (LogDiskFullException)
        {
            Require(_diskFullSeen, "LogDiskFullException without a full disk");
            _totals.AddOutcome("ENOSPC on allocation", "LogDiskFullException (append not accepted)");
        }

        return false;
    }

    private void NoteFault(SegmentedLog log, LogFaultedException e)
    {
        lock (_violations)
        {
            _stopIssuing = true;
            bool injected = Volatile.Read(ref _crashSignal) != 0
                || _end is EpochEnd.WriteErrorThenCrash or EpochEnd.WriteErrorThenReopen or EpochEnd.SyncErrorThenCrash;
            if (e.InnerException is StorageIOException { Errno: Errno.ENOSPC })
            {
                _totals.AddOutcome("ENOSPC", "LogFaultedException (log unusable until reopened)");
                Require(false, $"a full disk faulted the log instead of failing the append with LogDiskFullException: {e.InnerException.Message}");
            }
            else
            {
                Require(injected, $"the log faulted without an injected error or crash: {e.InnerException?.Message}");
            }

            if (_fault is null)
            {
                _fault = e;
                Require(e.InnerException is IOException, $"LogFaultedException without the storage error inside: {e.InnerException}");
                Require(e.Directory == log.Directory, $"LogFaultedException names '{e.Directory}'");
            }
            else
            {
                Require(ReferenceEquals(_fault, e), "a faulted log threw two different LogFaultedException instances");
            }
        }
    }

    private void Track(Task task)
    {
        lock (_outstanding)
        {
            _outstanding.Add(task);
        }
    }

    private async Task DrainAsync()
    {
        while (true)
        {
            Task[] tasks;
            lock (_outstanding)
            {
                tasks = [.. _outstanding];
                _outstanding.Clear();
            }

            if (tasks.Length == 0)
            {
                return;
            }

            try
            {
                await Task.WhenAll(tasks).WaitAsync(Bound);
            }
            catch (TimeoutException)
            {
                throw new DurabilityViolation($"{Describe}: {tasks.Count(t => !t.IsCompleted)} appends still pending after {Bound.TotalSeconds} s: the log hangs");
            }
        }
    }

    private long _lastDurable;
    private long _lastEnd;

    private async Task Bounded(Task task, string what)
    {
        try
        {
            await task.WaitAsync(Bound);
        }
        catch (TimeoutException)
        {
            throw new DurabilityViolation($"{Describe}: {what} did not finish within {Bound.TotalSeconds} s (a hang)");
        }
    }

    private async Task<T> Bounded<T>(Task<T> task, string what)
    {
        await Bounded((Task)task, what);
        return await task;
    }

    private void CheckWatermarks(SegmentedLog log)
    {
        lock (_violations)
        {
            long durable = log.DurableEndOffset;
            long end = log.EndOffset;
            Require(durable >= _lastDurable, $"DurableEndOffset went back from {_lastDurable} to {durable}");
            Require(end >= _lastEnd, $"EndOffset went back from {_lastEnd} to {end}");
            Require(durable <= end, $"DurableEndOffset {durable} above EndOffset {end}");
            _lastDurable = durable;
            _lastEnd = end;
        }
    }

    private async Task SampleWatermarksAsync(SegmentedLog log, CancellationToken cancellationToken)
    {
        _lastDurable = log.DurableEndOffset;
        _lastEnd = log.EndOffset;
        while (!cancellationToken.IsCancellationRequested)
        {
            CheckWatermarks(log);
            try
            {
                await Task.Delay(1, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Reads the whole log and checks it against the model; the recovered records become the new prefix.</summary>
    private async Task VerifyAsync(SegmentedLog log, bool exact, string when)
    {
        var ids = new List<long>();
        await foreach (var record in log.ReadAsync(0))
        {
            Require(record.Offset == ids.Count, $"{when}: offset {record.Offset} where {ids.Count} was next (a gap)");
            string? problem = Payload.Check(record.Value, out long id);
            Require(problem is null, $"{when}: offset {record.Offset}: {problem}");
            ids.Add(id);
        }

        int n = ids.Count;
        AssertNoViolations(when);
        Check(log.EndOffset == n && log.DurableEndOffset == n, $"{when}: read {n} records but EndOffset {log.EndOffset}, DurableEndOffset {log.DurableEndOffset}");
        var seen = new Dictionary<long, int>();
        for (int o = 0; o < n; o++)
        {
            long id = ids[o];
            Check(_issued.TryGetValue(id, out var issued), $"{when}: offset {o} holds identity {id}, never appended (invented)");
            Check(seen.TryAdd(id, o), $"{when}: identity {id} at offsets {seen.GetValueOrDefault(id)} and {o} (duplicated)");
            if (issued.IndexInBatch == 0 && issued.BatchSize > 1)
            {
                for (int j = 1; j < issued.BatchSize; j++)
                {
                    Check(o + j < n && ids[o + j] == id + j, $"{when}: the batch starting with identity {id} at offset {o} is not whole at record {j}");
                }
            }
            else if (issued.IndexInBatch > 0)
            {
                Check(o > 0 && ids[o - 1] == id - 1, $"{when}: record {issued.IndexInBatch} of a batch at offset {o} without its predecessor");
            }
        }

        for (int o = 0; o < _prefix.Count; o++)
        {
            Check(o < n && ids[o] == _prefix[o], $"{when}: offset {o} recovered earlier as identity {_prefix[o]}, now {(o < n ? ids[o].ToString(CultureInfo.InvariantCulture) : "missing")}");
        }

        long lost = _acked.Count(p => p.Key >= n || ids[(int)p.Key] != p.Value);
        _totals.AddLost(lost);
        var firstLost = _acked.Where(p => p.Key >= n || ids[(int)p.Key] != p.Value).OrderBy(static p => p.Key).Select(static p => p.Key).FirstOrDefault(-1);
        Check(lost == 0, $"{when}: {lost} acknowledged records lost, the first at offset {firstLost}; recovered {n} records");

        // A writer that awaited each append must find its records in the order it appended them.
        var lastSeqByWriter = new Dictionary<int, long>();
        foreach (long id in ids)
        {
            var issued = _issued[id];
            if (issued.Writer < 0 || issued.IndexInBatch > 0)
            {
                continue;
            }

            if (lastSeqByWriter.TryGetValue(issued.Writer, out long last))
            {
                Check(issued.Seq > last, $"{when}: writer {issued.Writer} append {issued.Seq} lies after its append {last}");
            }

            lastSeqByWriter[issued.Writer] = issued.Seq;
        }

        if (exact)
        {
            Check(n == _endBeforeClose, $"{when}: a clean close kept {n} records, but {_endBeforeClose} were accepted");
        }

        _totals.AddVerified(n);
        _prefix = ids;
        _acked.Clear();
        _tryAccepted.Clear();
        _lastDurable = log.DurableEndOffset;
        _lastEnd = log.EndOffset;
    }

    private void Require(bool ok, string message)
    {
        if (!ok)
        {
            _violations.Enqueue(message);
        }
    }

    private void Check(bool ok, string message)
    {
        if (!ok)
        {
            throw new DurabilityViolation($"{Describe}: {message}");
        }
    }

    private void AssertNoViolations(string when)
    {
        if (!_violations.IsEmpty)
        {
            throw new DurabilityViolation($"{Describe}: {when}: {string.Join("; ", _violations.Take(5))}");
        }
    }

    /// <summary>Where an identity came from: its writer (0 the driver, -1 unordered), sequence, place in its batch.</summary>
    private readonly record struct Issued(int Writer, long Seq, int IndexInBatch, int BatchSize);
}

/// <summary>A property of the durability contract failed; the message names the seed.</summary>
internal sealed class DurabilityViolation : Exception
{
    public DurabilityViolation(string message)
        : base(message)
    {
    }

    public DurabilityViolation(string message, Exception inner)
        : base(message, inner)
    {
    }
}
