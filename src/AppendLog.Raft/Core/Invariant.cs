namespace AppendLog.Raft.Core;

/// <summary>
/// Always-on safety checks (STYLE.md 1). Each call checks one condition; compound conditions are split so
/// the failing half is named. Cheap enough to keep in release builds.
/// </summary>
internal static class Invariant
{
    public static void Assert(bool condition, string invariant)
    {
        if (!condition)
        {
            throw new RaftInvariantException(invariant);
        }
    }
}
