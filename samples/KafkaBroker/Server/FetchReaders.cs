using AppendLog;
using KafkaBroker.Storage;

namespace KafkaBroker.Server;

/// <summary>
/// One connection's fetch state: a <see cref="LogBatchReader"/> per partition of its last fetch, kept where that fetch
/// stopped. A consumer fetches each partition from where its last answer ended, so the next fetch continues the same
/// reader: its read-ahead stays warm (the next batch is usually read before the request comes), and its batches are
/// lent from pooled memory and sent by reference (no array per batch, no copy in the broker). A fetch at another offset
/// opens a new reader there.
/// Lent bytes must outlive the fetch handler: they are read by the send. So one fetch at a time holds the readers
/// (<see cref="EnterAsync"/>), from its start until its answer is sent or dropped (<see cref="ExitAsync"/>, which ends
/// the loans and closes the readers the fetch did not use or replaced). At most one reader per partition of the last
/// fetch is kept, and at most <see cref="KeptReadersMax"/> in all.
/// </summary>
internal sealed class FetchReaders : IAsyncDisposable
{
    /// <summary>
    /// The most readers a connection keeps between fetches. A kept reader holds its window and read-ahead (with the
    /// library's defaults about 1 MiB of each, from the buffer pool that appends share), so 32 pin at most about
    /// 64 MiB per connection, plus the arrays of each reader's last round (which it reuses for the next: about the
    /// partition's share of the last answer); the partitions of a fetch beyond them get a reader for that fetch only.
    /// </summary>
    private const int KeptReadersMax = 32;

    private readonly SemaphoreSlim _turn = new(1, 1);
    private readonly Dictionary<PartitionLog, LogBatchReader> _readers = [];

    /// <summary>Readers of the fetch in progress (still lending) and readers to close once its answer is sent.</summary>
    private readonly HashSet<PartitionLog> _used = [];
    private readonly List<LogBatchReader> _retired = [];
    private bool _disposed;

    public FetchReaders() => AfterSent = ExitAsync;

    /// <summary>The parsed request, results and response writer of the fetch holding the turn, reused by the next.</summary>
    public Handlers.FetchState State { get; } = new();

    /// <summary><see cref="ExitAsync"/> as the delegate a fetch answer carries (one for the connection, not one per fetch).</summary>
    public Func<ValueTask> AfterSent { get; }

    /// <summary>Waits until the previous fetch's answer is sent; the caller must then call <see cref="ExitAsync"/> once.</summary>
    public Task EnterAsync(CancellationToken cancellationToken) => _turn.WaitAsync(cancellationToken);

    /// <summary>
    /// The reader of <paramref name="partition"/> positioned at <paramref name="offset"/> (which the caller checked is
    /// readable): the kept one when it stopped there, else a new one.
    /// </summary>
    public LogBatchReader ReaderAt(PartitionLog partition, long offset)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_readers.TryGetValue(partition, out var reader))
        {
            if (reader.NextOffset == offset && _used.Add(partition))
            {
                return reader;
            }

            // Another offset (a seek), or the partition named twice in one fetch: this reader's loans may be in the
            // answer being built, so it is closed only after the send.
            _readers.Remove(partition);
            _retired.Add(reader);
        }

        reader = partition.Log.OpenBatchReader(offset);
        if (_readers.Count >= KeptReadersMax || !_used.Add(partition))
        {
            _retired.Add(reader); // for this fetch only: closed after the send
            return reader;
        }

        _readers[partition] = reader;
        return reader;
    }

    /// <summary>
    /// Drops the reader of <paramref name="partition"/> after a failed read (closed after the send like a replaced one).
    /// </summary>
    public void Forget(PartitionLog partition)
    {
        if (_readers.Remove(partition, out var reader))
        {
            _retired.Add(reader);
        }
    }

    /// <summary>
    /// Called once the fetch's answer is sent (or will never be): ends every loan, closes the readers the fetch replaced
    /// or did not use, and lets the next fetch in.
    /// </summary>
    public async ValueTask ExitAsync()
    {
        try
        {
            int unused = 0;
            foreach (var (partition, reader) in _readers)
            {
                reader.Release();
                if (!_used.Contains(partition))
                {
                    _retired.Add(reader);
                    unused++;
                }
            }

            if (unused > 0)
            {
                // Partitions the fetch no longer names (a consumer's assignment changed): rare, so the copy is fine.
                foreach (var partition in _readers.Keys.Where(p => !_used.Contains(p)).ToList())
                {
                    _readers.Remove(partition);
                }
            }

            foreach (var reader in _retired)
            {
                await reader.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _retired.Clear();
            _used.Clear();
            _turn.Release();
        }
    }

    /// <summary>Closes every reader (the connection is closed and every handler has finished).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var reader in _readers.Values.Concat(_retired))
        {
            await reader.DisposeAsync().ConfigureAwait(false);
        }

        _readers.Clear();
        _retired.Clear();
        _turn.Dispose();
    }
}
