using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Raft;

/// <summary>
/// The identity of one member of a Raft group. Ids are chosen by the operator, are stable across restarts,
/// and are never reused for a different machine. The value 0 is reserved for "no node".
/// </summary>
/// <param name="Value">The numeric id; 0 means "none".</param>
[Experimental(RaftExperiments.Raft)]
public readonly record struct RaftNodeId(ulong Value) : IComparable<RaftNodeId>
{
    /// <summary>"No node": no leader known, no vote cast.</summary>
    public static RaftNodeId None => default;

    /// <summary>Whether this is <see cref="None"/>.</summary>
    public bool IsNone => Value == 0;

    /// <inheritdoc />
    public int CompareTo(RaftNodeId other) => Value.CompareTo(other.Value);

    /// <summary>Orders ids by value.</summary>
    public static bool operator <(RaftNodeId left, RaftNodeId right) => left.Value < right.Value;

    /// <summary>Orders ids by value.</summary>
    public static bool operator >(RaftNodeId left, RaftNodeId right) => left.Value > right.Value;

    /// <summary>Orders ids by value.</summary>
    public static bool operator <=(RaftNodeId left, RaftNodeId right) => left.Value <= right.Value;

    /// <summary>Orders ids by value.</summary>
    public static bool operator >=(RaftNodeId left, RaftNodeId right) => left.Value >= right.Value;

    /// <summary>The id as text: its number, or "none".</summary>
    public override string ToString() => IsNone ? "none" : Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
