using BenchmarkDotNet.Attributes;

namespace AppendLog.Benchmarks;

/// <summary>
/// Reading records back in steady state: a log of 65,536 records of 100 B (batches of 64) held in its batch cache,
/// read whole per invocation, per record as an operation. <see cref="ReadViews"/> (no copies) must allocate 0 B per
/// record (expectations.json: what one enumeration allocates, its enumerator and buffers, is under 0.5 B per record
/// and rounds to 0; one allocation per batch would not). <see cref="ReadCopies"/> is the copying reader beside it, and
/// <see cref="ReadBatches"/> the raw batches (no record decoding).
/// </summary>
[MemoryDiagnoser]
public class ReadBenchmarks
{
    private const int Records = 65_536;
    private const int RecordsPerBatch = 64;

    private SegmentedLog _log = null!;
    private string _dir = "";

    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "appendlog-readbench-" + Guid.NewGuid().ToString("N"));
        _log = SegmentedLog.OpenAsync(new LogOptions
        {
            Directory = _dir,
            BatchCache = new BatchCache(256L * 1024 * 1024),
        }).AsTask().GetAwaiter().GetResult();
        var random = new Random(42);
        var appends = new List<Task<long>>();
        for (int b = 0; b < Records / RecordsPerBatch; b++)
        {
            var batch = new AppendRecord[RecordsPerBatch];
            for (int i = 0; i < batch.Length; i++)
            {
                var value = new byte[100];
                random.NextBytes(value);
                batch[i] = new AppendRecord(value);
            }

            appends.Add(_log.AppendBatchAsync(batch).AsTask());
        }

        Task.WhenAll(appends).GetAwaiter().GetResult();
        if (ReadViews() != Records || ReadViews() != Records)
        {
            throw new InvalidOperationException("the log does not read back whole");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _log.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_dir, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = Records)]
    public long ReadViews() => ReadViewsAsync().GetAwaiter().GetResult();

    [Benchmark(OperationsPerInvoke = Records)]
    public long ReadCopies() => ReadCopiesAsync().GetAwaiter().GetResult();

    /// <summary>The raw batches without decoding their records: the floor the record readers are measured against.</summary>
    [Benchmark(OperationsPerInvoke = Records)]
    public long ReadBatches() => ReadBatchesAsync().GetAwaiter().GetResult();

    private async ValueTask<long> ReadViewsAsync()
    {
        long count = 0;
        await foreach (var record in _log.ReadViewsAsync(0).ConfigureAwait(false))
        {
            count += record.Value.Length == 100 ? 1 : 0;
        }

        return count;
    }

    private async ValueTask<long> ReadBatchesAsync()
    {
        long count = 0;
        await foreach (var batch in _log.ReadBatchesAsync(0).ConfigureAwait(false))
        {
            count += batch.RecordCount;
        }

        return count;
    }

    private async ValueTask<long> ReadCopiesAsync()
    {
        long count = 0;
        await foreach (var record in _log.ReadAsync(0).ConfigureAwait(false))
        {
            count += record.Value!.Length == 100 ? 1 : 0;
        }

        return count;
    }
}
