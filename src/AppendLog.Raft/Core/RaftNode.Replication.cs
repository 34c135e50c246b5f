using AppendLog.Raft.Replication;

namespace AppendLog.Raft.Core;

/// <summary>Leader-side replication: appends, snapshots, and the commit rule.</summary>
internal sealed partial class RaftNode
{
    private void BroadcastAppend()
    {
        foreach (var id in _progress.Keys)
        {
            if (id != Id)
            {
                SendAppend(id, sendIfEmpty: true);
            }
        }
    }

    /// <summary>
    /// Sends <paramref name="to"/> the entries from its next index (or a snapshot when they are compacted away),
    /// unless its progress is paused (probe awaiting an answer, pipeline window full, snapshot in flight).
    /// </summary>
    /// <returns>Whether a message was sent.</returns>
    private bool SendAppend(RaftNodeId to, bool sendIfEmpty)
    {
        var pr = _progress[to];
        if (pr.IsPaused)
        {
            return false;
        }

        var prevIndex = pr.Next - 1;
        if (pr.Next < _log.FirstIndex || !_log.TryGetTerm(prevIndex, out var prevTerm))
        {
            SendSnapshotChunk(to, pr);
            return true;
        }

        var entries = new List<RaftEntry>();
        if (pr.Next <= _log.LastIndex)
        {
            _log.Read(pr.Next, _log.LastIndex + 1, _options.MaximumBatchBytes, entries);
            if (entries.Count == 0)
            {
                // The next entry's payload is not in memory: the host fetches it, and EntriesFetched sends again.
                return false;
            }
        }

        if (entries.Count == 0 && !sendIfEmpty)
        {
            return false;
        }

        Send(new RaftMessage
        {
            Type = RaftMessageType.Append,
            From = Id,
            To = to,
            Term = Term,
            Index = prevIndex,
            LogTerm = prevTerm,
            Entries = entries,
            Commit = _log.Committed,
        });

        if (pr.State == ProgressState.Replicate && entries.Count > 0)
        {
            pr.OptimisticUpdate(entries[^1].Index);
            pr.Inflights.Add(entries[^1].Index);
        }
        else if (pr.State == ProgressState.Probe)
        {
            pr.ProbeSent = true;
        }

        return true;
    }

    /// <summary>
    /// Sends <paramref name="to"/> the chunk of this leader's snapshot that starts where the follower's acknowledgements
    /// reached (0 for a snapshot it has not acknowledged any of). One chunk is in flight at a time: the next leaves when
    /// this one is acknowledged (<see cref="RaftMessageType.SnapshotResponse"/>), and a chunk lost with no acknowledgement
    /// is sent again after the next heartbeat answer. The chunk is read from the image here, on the loop: a bounded read
    /// (<see cref="RaftOptions.SnapshotChunkBytes"/>) of a file the page cache usually still holds.
    /// </summary>
    private void SendSnapshotChunk(RaftNodeId to, Progress pr)
    {
        var snapshot = _storage.Snapshot;
        if (pr.State != ProgressState.Snapshot || pr.PendingSnapshot != snapshot.Index)
        {
            pr.BecomeSnapshot(snapshot.Index);
        }

        var length = snapshot.Data.Length;
        var offset = Math.Min(pr.SnapshotAcked, length);
        var chunk = new byte[(int)Math.Min(_options.SnapshotChunkBytes, length - offset)];
        var read = chunk.Length == 0 ? 0 : snapshot.Data.Read(offset, chunk);
        Invariant.Assert(read == chunk.Length, "a snapshot image yields every byte of its length");
        Send(new RaftMessage
        {
            Type = RaftMessageType.Snapshot,
            From = Id,
            To = to,
            Term = Term,
            Snapshot = snapshot,
            SnapshotLength = length,
            SnapshotOffset = offset,
            SnapshotChunk = chunk,
        });
    }

    /// <summary>
    /// Advances the commit index to the highest index durable on a quorum of voters, but only if that entry is of
    /// the current term (§5.4.2): counting replicas of an older-term entry is not enough (Figure 8). Earlier
    /// entries commit with it, by the log matching property.
    /// </summary>
    private bool MaybeCommit()
    {
        var matches = new List<long>(Config.Voters.Count);
        foreach (var voter in Config.Voters)
        {
            matches.Add(_progress.TryGetValue(voter, out var pr) ? pr.Match : 0);
        }

        if (matches.Count == 0)
        {
            return false;
        }

        matches.Sort();
        var quorumMatch = matches[matches.Count - Config.Quorum];
        if (quorumMatch <= _log.Committed)
        {
            return false;
        }

        var currentTermOnly = (_options.TestingFaults & RaftTestingFaults.CommitPreviousTermByCounting) == 0;
        if (currentTermOnly && _log.TermAt(quorumMatch) != Term)
        {
            return false;
        }

        _log.CommitTo(quorumMatch);
        ReleaseReadsAwaitingTermCommit();
        return true;
    }
}
