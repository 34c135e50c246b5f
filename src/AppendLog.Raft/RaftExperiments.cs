namespace AppendLog.Raft;

/// <summary>
/// Diagnostic ids for the experimental Raft surface. An id is retired with the API it covers and never reused.
/// </summary>
internal static class RaftExperiments
{
    /// <summary>The whole Raft package until its simulation suite has passed many seeds (STYLE.md 18).</summary>
    public const string Raft = "ALOG0001";
}
