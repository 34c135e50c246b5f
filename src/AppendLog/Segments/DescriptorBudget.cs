using AppendLog.Appender;
using AppendLog.Diagnostics;

namespace AppendLog.Segments;

/// <summary>
/// One cap on the descriptors a <see cref="LogManager"/>'s logs keep open between operations
/// (<see cref="LogManagerOptions.MaximumOpenFiles"/>): the read handles of segment files (<see cref="ReadFileCache"/>)
/// and the write handles of the logs' active segments. Before either opens one more handle, <see cref="MakeRoom"/>
/// closes idle ones until the count is below the cap: first the least recently used idle read handle, then the write
/// handle of an idle log, chosen by CLOCK (second chance: a log that appended since the hand last passed it is skipped
/// once), which approximates least-recently-used without a global list touched on every append. An idle log is one with
/// nothing in flight and everything durable (<see cref="LogWriter.TryReleaseFileForBudget"/>); its next append opens
/// the file again. Handles in use are never closed: when all of them are, the new one opens anyway, so the count can
/// pass the cap by the handles in use at that moment (bounded by the readers and the I/O threads), and falls back as
/// they go idle.
/// <para>
/// Not counted: files opened only for one operation (a checkpoint write, a directory fsync, a seal's index, an open's
/// reads) and the short overlap at a roll while the rolled segment waits for its seal. Those live in the reserve that
/// <see cref="LogManager"/> keeps between the cap and the process's limit (<see cref="ReserveFor"/>).
/// </para>
/// Lock order: a writer's lock, then this budget's lock (a leaf: nothing is called while holding it). Writers other
/// than the caller are entered only with <c>TryEnter</c>, so two logs making room at once never wait for each other.
/// </summary>
internal sealed class DescriptorBudget
{
    /// <summary>Descriptors kept free for the runtime, the process's own files and sockets (measured: an idle .NET
    /// console process holds about 20-30).</summary>
    private const int ProcessReserve = 64;

    private readonly Lock _lock = new();

    /// <summary>The writers holding a counted active-segment handle, in CLOCK order; <see cref="_indexOf"/> maps back.</summary>
    private readonly List<LogWriter> _writers = [];
    private readonly Dictionary<LogWriter, int> _indexOf = new(ReferenceEqualityComparer.Instance);
    private int _hand;

    public DescriptorBudget(int maximum, int maximumOpenReadFiles)
    {
        Invariant.Assert(maximum >= 1, "the descriptor cap admits at least one handle");
        Maximum = maximum;
        ReadFiles = new ReadFileCache(maximumOpenReadFiles, this);
    }

    /// <summary>The cap on counted handles.</summary>
    public int Maximum { get; }

    /// <summary>The read handles, which count against this budget.</summary>
    public ReadFileCache ReadFiles { get; }

    /// <summary>Active-segment write handles counted now.</summary>
    public int WriteHandleCount
    {
        get
        {
            lock (_lock)
            {
                return _writers.Count;
            }
        }
    }

    /// <summary>Handles counted now (read and write).</summary>
    public int OpenCount => ReadFiles.OpenCount + WriteHandleCount;

    /// <summary>The most I/O threads <see cref="IoWorkers.Shared"/> runs (it grows to 64 while work waits).</summary>
    private const int IoThreadsMax = 64;

    /// <summary>
    /// The descriptors a manager needs beyond its cap: the process's own (<see cref="ProcessReserve"/>) and those opened
    /// for one operation, at most two at a time per concurrent open (the log's lock probe and a file it reads) and per I/O
    /// thread (a file and a directory during a seal or a roll). With the defaults: 64 + 2 × 64 + 2 × 64 = 320.
    /// </summary>
    public static int ReserveFor(int maximumConcurrentOpens) =>
        ProcessReserve + (2 * maximumConcurrentOpens) + (2 * IoThreadsMax);

    /// <summary>
    /// Closes idle handles until one more fits under the cap, or nothing idle is left. Called before a counted handle is
    /// opened, by a reader (<paramref name="requester"/> null) or by a writer under its own lock.
    /// </summary>
    public void MakeRoom(LogWriter? requester)
    {
        while (OpenCount >= Maximum)
        {
            if (!ReadFiles.CloseColdestIdle() && !TryCloseIdleWriter(requester))
            {
                return; // every handle is in use: the new one passes the cap until some go idle
            }
        }
    }

    /// <summary>Counts <paramref name="writer"/>'s active handle (under the writer's lock, once per open handle).</summary>
    public void Add(LogWriter writer)
    {
        lock (_lock)
        {
            Invariant.Assert(!_indexOf.ContainsKey(writer), "a writer's handle is counted once");
            _indexOf[writer] = _writers.Count;
            _writers.Add(writer);
        }
    }

    /// <summary>Stops counting <paramref name="writer"/>'s handle (closed; under the writer's lock).</summary>
    public void Remove(LogWriter writer)
    {
        lock (_lock)
        {
            Invariant.Assert(_indexOf.Remove(writer, out int index), "only a counted handle is uncounted");
            var last = _writers[^1];
            _writers.RemoveAt(_writers.Count - 1);
            if (!ReferenceEquals(last, writer))
            {
                // Swap-remove: the last writer takes the freed place (the CLOCK order shifts by one entry; harmless).
                _writers[index] = last;
                _indexOf[last] = index;
            }
        }
    }

    /// <summary>
    /// One CLOCK pass (at most two turns of the hand): a writer used since the hand last passed gets a second chance; the
    /// first one not used and idle closes its handle. False when no writer could.
    /// </summary>
    private bool TryCloseIdleWriter(LogWriter? requester)
    {
        int steps;
        lock (_lock)
        {
            steps = 2 * _writers.Count;
        }

        for (int i = 0; i < steps; i++)
        {
            LogWriter candidate;
            lock (_lock)
            {
                if (_writers.Count == 0)
                {
                    return false;
                }

                if (_hand >= _writers.Count)
                {
                    _hand = 0;
                }

                candidate = _writers[_hand++];
            }

            if (ReferenceEquals(candidate, requester) || candidate.TakeRecentUse())
            {
                continue;
            }

            if (candidate.TryReleaseFileForBudget())
            {
                return true;
            }
        }

        return false;
    }
}
