namespace AppendLog.Raft.Tests.Simulation;

/// <summary>One operation on a read/write register: invoked and (unless pending) returned at points of one total order.</summary>
/// <param name="IsWrite">A write of <paramref name="Value"/>, or a read that returned it.</param>
/// <param name="Value">The value written or read.</param>
/// <param name="Invoked">When the client invoked it.</param>
/// <param name="Returned">When the client saw its result; <see cref="long.MaxValue"/> for a pending operation (a write whose
/// client never heard back: it may have taken effect at any point after its invocation, or never).</param>
internal readonly record struct RegisterOp(bool IsWrite, long Value, long Invoked, long Returned)
{
    public bool IsPending => Returned == long.MaxValue;

    public override string ToString() =>
        $"{(IsWrite ? "write" : "read")} {Value} [{Invoked}, {(IsPending ? "pending" : Returned.ToString(System.Globalization.CultureInfo.InvariantCulture))}]";
}

/// <summary>
/// Decides whether a history of register operations is linearizable: whether each operation can be given a point between
/// its invocation and its return such that, in the order of those points, every read returns the latest write
/// (Herlihy and Wing). The search is Wing and Gong's, as refined by Lowe ("Testing for linearizability", 2017): walk the
/// history in time order, tentatively linearize any operation whose invocation is reached, backtrack when an operation's
/// return is reached before it was linearized, and cache (set linearized, register value) pairs already explored so no
/// configuration is searched twice. Registers are independent, so a key-value history is checked one key at a time
/// (P-compositionality), which keeps each search small.
/// <para>
/// A pending write (the client never heard back) may take effect or not. A pending write whose value no read returned
/// constrains nothing and is dropped. One that some read returned took effect before that read returned, so it is given
/// that return: the same linearizations exist, and it is not left concurrent with everything after it (values are
/// unique per write, as in the simulation; that is what keeps the search small).
/// </para>
/// </summary>
internal static class LinearizabilityChecker
{
    /// <summary>Configurations explored per key before giving up (STYLE.md 2): a search this large means the history is
    /// far more concurrent than the simulation makes it, and the checker says so rather than run for minutes.</summary>
    private const int ConfigurationsMax = 2_000_000;

    /// <summary>
    /// Checks one register's history whose writes all write distinct values (and none writes <paramref name="initial"/>),
    /// in O(n²) over values, by zones (Gibbons and Korach; Golab, Li and Shah, "Analyzing consistency properties for fun
    /// and profit", PODC 2011): the cluster of a value is its write and the reads that returned it; its zone runs from the
    /// earliest return in the cluster to the latest invocation (forward when the earliest return comes first, else
    /// backward). The history is linearizable if and only if every read's write began before the read ended, no two
    /// forward zones overlap, and no backward zone lies inside a forward zone. The simulation's histories (each write
    /// unique, and far more concurrent writes than the search handles) are checked this way; the search cross-checks it
    /// on small random histories (LinearizabilityCheckerTests).
    /// </summary>
    /// <returns>Null when linearizable, else a description of why not.</returns>
    public static string? CheckUniqueWrites(IReadOnlyList<RegisterOp> history, long initial)
    {
        var ops = Prepare(history);
        var writes = new Dictionary<long, RegisterOp>();
        foreach (var op in ops.Where(op => op.IsWrite))
        {
            if (op.Value == initial || !writes.TryAdd(op.Value, op))
            {
                throw new ArgumentException($"value {op.Value} is written twice (or is the initial value): zones need unique writes", nameof(history));
            }
        }

        // Zones by value: (earliest return, latest invocation). The initial value's write ended before time began.
        var zones = new Dictionary<long, (long EarliestReturn, long LatestInvocation)>();
        foreach (var (value, write) in writes)
        {
            zones[value] = (write.Returned, write.Invoked);
        }

        foreach (var read in ops.Where(op => !op.IsWrite))
        {
            if (read.Value == initial)
            {
                var zone = zones.GetValueOrDefault(initial, (long.MinValue, long.MinValue));
                zones[initial] = (long.MinValue, Math.Max(zone.Item2, read.Invoked));
                continue;
            }

            if (!writes.TryGetValue(read.Value, out var write) || read.Returned < write.Invoked)
            {
                return $"not linearizable: {read} returned a value not written before it ended";
            }

            var (earliest, latest) = zones[read.Value];
            zones[read.Value] = (Math.Min(earliest, read.Returned), Math.Max(latest, read.Invoked));
        }

        var forward = zones.Where(z => z.Value.EarliestReturn < z.Value.LatestInvocation).ToList();
        var backward = zones.Where(z => z.Value.EarliestReturn >= z.Value.LatestInvocation).ToList();
        for (var i = 0; i < forward.Count; i++)
        {
            var (low, high) = forward[i].Value;
            for (var j = i + 1; j < forward.Count; j++)
            {
                var (otherLow, otherHigh) = forward[j].Value;
                if (low < otherHigh && otherLow < high)
                {
                    return $"not linearizable: the values {forward[i].Key} and {forward[j].Key} were each seen while the other must have been current";
                }
            }

            foreach (var (value, (earliest, latest)) in backward)
            {
                if (low < latest && earliest < high)
                {
                    return $"not linearizable: value {value} was written and read entirely while value {forward[i].Key} must have been current";
                }
            }
        }

        return null;
    }

    /// <summary>Checks one register's history, starting from <paramref name="initial"/>, by search (any values).</summary>
    /// <returns>Null when linearizable, else a description of why not (or that the search was too large).</returns>
    public static string? Check(IReadOnlyList<RegisterOp> history, long initial)
    {
        var ops = Prepare(history);
        if (ops.Count == 0)
        {
            return null;
        }

        // Events in time order: each operation's invocation and, unless pending, its return (a return at the same instant
        // as an invocation comes first: that operation ended before the other began).
        var events = new List<(long Time, bool IsReturn, int Op)>(2 * ops.Count);
        for (var i = 0; i < ops.Count; i++)
        {
            events.Add((ops[i].Invoked, false, i));
            if (!ops[i].IsPending)
            {
                events.Add((ops[i].Returned, true, i));
            }
        }

        events.Sort((a, b) => a.Time != b.Time ? a.Time.CompareTo(b.Time) : b.IsReturn.CompareTo(a.IsReturn));
        return Search(ops, events, initial);
    }

    /// <summary>Drops pending writes no read returned; bounds a read pending write's return by its first reader's.</summary>
    private static List<RegisterOp> Prepare(IReadOnlyList<RegisterOp> history)
    {
        // The earliest return of a read of each value: a write that some read returned took effect before that.
        var firstReadReturn = new Dictionary<long, long>();
        foreach (var op in history.Where(op => !op.IsWrite))
        {
            firstReadReturn[op.Value] = Math.Min(op.Returned, firstReadReturn.GetValueOrDefault(op.Value, long.MaxValue));
        }

        return history
            .Where(op => !op.IsPending || !op.IsWrite || firstReadReturn.ContainsKey(op.Value))
            .Select(op => op.IsWrite && op.IsPending ? op with { Returned = Math.Max(op.Invoked, firstReadReturn[op.Value]) } : op)
            .ToList();
    }

    private static string? Search(List<RegisterOp> ops, List<(long Time, bool IsReturn, int Op)> events, long initial)
    {
        // A doubly linked list over the events, so linearized operations are lifted out and put back in O(1).
        var count = events.Count;
        var next = new int[count + 1];
        var prev = new int[count + 1];
        var callOf = new int[ops.Count];
        var returnOf = Enumerable.Repeat(-1, ops.Count).ToArray();
        for (var i = 0; i < count; i++)
        {
            next[i] = i + 1 < count ? i + 1 : -1;
            prev[i] = i - 1;
            if (events[i].IsReturn)
            {
                returnOf[events[i].Op] = i;
            }
            else
            {
                callOf[events[i].Op] = i;
            }
        }

        var head = 0; // first event still in the list, or -1
        var linearized = new ulong[(ops.Count + 63) / 64];
        var seen = new HashSet<(string Linearized, long State)>();
        var stack = new Stack<(int Op, long State)>();
        var state = initial;
        var entry = head;
        var explored = 0;
        var deepest = 0;

        void Lift(int op)
        {
            Unlink(callOf[op]);
            if (returnOf[op] >= 0)
            {
                Unlink(returnOf[op]);
            }
        }

        void Unlink(int e)
        {
            if (prev[e] >= 0)
            {
                next[prev[e]] = next[e];
            }
            else
            {
                head = next[e];
            }

            if (next[e] >= 0)
            {
                prev[next[e]] = prev[e];
            }
        }

        void Unlift(int op)
        {
            if (returnOf[op] >= 0)
            {
                Relink(returnOf[op]);
            }

            Relink(callOf[op]);
        }

        void Relink(int e)
        {
            if (prev[e] >= 0)
            {
                next[prev[e]] = e;
            }
            else
            {
                head = e;
            }

            if (next[e] >= 0)
            {
                prev[next[e]] = e;
            }
        }

        while (head >= 0)
        {
            if (++explored > ConfigurationsMax)
            {
                return $"undecided: more than {ConfigurationsMax} configurations explored";
            }

            if (entry >= 0 && !events[entry].IsReturn)
            {
                var op = events[entry].Op;
                var candidate = ops[op];
                var ok = candidate.IsWrite || candidate.Value == state;
                var after = candidate.IsWrite ? candidate.Value : state;
                if (ok)
                {
                    linearized[op / 64] |= 1UL << (op % 64);
                    if (seen.Add((Key(linearized), after)))
                    {
                        stack.Push((op, state));
                        deepest = Math.Max(deepest, stack.Count);
                        state = after;
                        Lift(op);
                        entry = head;
                        continue;
                    }

                    linearized[op / 64] &= ~(1UL << (op % 64));
                }

                entry = next[entry];
                continue;
            }

            // A return reached (or the end of the list) with its operation not linearized: undo the last choice.
            if (stack.Count == 0)
            {
                var blocked = entry >= 0 ? ops[events[entry].Op] : (RegisterOp?)null;
                return $"not linearizable: no order explains the history (at most {deepest} of {ops.Count} operations placed; " +
                       $"first unplaceable: {blocked?.ToString() ?? "a pending write"})";
            }

            var (undone, before) = stack.Pop();
            state = before;
            linearized[undone / 64] &= ~(1UL << (undone % 64));
            Unlift(undone);
            entry = next[callOf[undone]];
        }

        return null;
    }

    private static string Key(ulong[] bits) => string.Join(',', bits);
}
