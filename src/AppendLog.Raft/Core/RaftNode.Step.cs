using AppendLog.Raft.Replication;
using AppendLog.Raft.Storage;

namespace AppendLog.Raft.Core;

/// <summary>Message handling and elections.</summary>
internal sealed partial class RaftNode
{
    /// <summary>Processes one message from a peer.</summary>
    public void Step(RaftMessage m)
    {
        AssertNoOutstandingReady();
        Invariant.Assert(m.To == Id, "a message is stepped on its addressee");
        if (m.Term > Term)
        {
            if (m.Type is RaftMessageType.Vote or RaftMessageType.PreVote && !m.Transfer && InLease())
            {
                // Check-quorum lease (thesis §6.2): we heard from a live leader within the minimum election
                // timeout, so a higher-term candidate is a disrupting server; ignore it without raising our term.
                NoteCandidate(m);
                if (m.Type == RaftMessageType.PreVote)
                {
                    _preVoteInLease = m;
                }

                return;
            }

            if (m.Type == RaftMessageType.PreVote || (m.Type == RaftMessageType.PreVoteResponse && !m.Reject))
            {
                // Pre-vote messages carry a future term and change no one's term (thesis §9.6).
            }
            else
            {
                var leader = m.Type is RaftMessageType.Append or RaftMessageType.Heartbeat or RaftMessageType.Snapshot
                    ? m.From
                    : RaftNodeId.None;
                BecomeFollower(m.Term, leader);
            }
        }
        else if (m.Term < Term)
        {
            if ((_options.CheckQuorum || _options.PreVote) && m.Type is RaftMessageType.Append or RaftMessageType.Heartbeat)
            {
                // A stale leader would otherwise never learn of the newer term: with pre-vote our term
                // may have moved without its followers ever voting against it.
                Send(new RaftMessage { Type = RaftMessageType.AppendResponse, From = Id, To = m.From, Term = Term });
            }
            else if (m.Type == RaftMessageType.PreVote)
            {
                Send(new RaftMessage { Type = RaftMessageType.PreVoteResponse, From = Id, To = m.From, Term = Term, Reject = true });
            }

            return;
        }

        if (m.Type is RaftMessageType.Vote or RaftMessageType.PreVote)
        {
            HandleVoteRequest(m);
            return;
        }

        switch (Role)
        {
            case RaftRole.Leader:
                StepLeader(m);
                break;
            case RaftRole.Candidate:
            case RaftRole.PreCandidate:
                StepCandidate(m);
                break;
            default:
                StepFollower(m);
                break;
        }
    }

    private bool InLease() =>
        _options.CheckQuorum
        && ((!Leader.IsNone && _electionElapsed < _options.ElectionTicksMin)
            || (_options.LeaseReads && _ticksSinceStart < _options.ElectionTicksMin));

    private void TickElection()
    {
        _electionElapsed++;
        _ticksSinceStart = Math.Min(_ticksSinceStart + 1, _options.ElectionTicksMin);
        if (_preVoteInLease is { } waiting && !InLease())
        {
            // The lease that made us ignore this pre-vote is over and no leader spoke since: answer it now, as we would
            // have without the lease, rather than leave its pre-candidate waiting a whole timeout more.
            _preVoteInLease = null;
            Step(waiting);
        }

        if (Promotable && _electionElapsed >= _randomizedElectionTimeout)
        {
            if (IsReplaying
                && !_outranksACandidate
                && _electionElapsed < _randomizedElectionTimeout + _options.ElectionTicksMax - _options.ElectionTicksMin)
            {
                // Still applying a long backlog: this timeout falls in [max, 2·max − min), after every caught-up
                // member's [min, max), so one of those campaigns first when there is one.
                return;
            }

            _electionElapsed = 0;
            _outranksACandidate = false;
            Campaign(preVote: _options.PreVote, transfer: false);
        }
    }

    private void TickLeader()
    {
        _heartbeatElapsed++;
        _electionElapsed++;
        _ticksSinceStart = Math.Min(_ticksSinceStart + 1, _options.ElectionTicksMin);
        if (_electionElapsed >= _options.ElectionTicksMin)
        {
            _electionElapsed = 0;
            if (_options.CheckQuorum && !QuorumActive())
            {
                // Check-quorum: a leader cut off from a quorum steps down rather than accept writes it cannot commit.
                BecomeFollower(Term, RaftNodeId.None);
                return;
            }

            LeadTransferee = RaftNodeId.None;
        }

        if (_heartbeatElapsed >= _options.HeartbeatTicks)
        {
            _heartbeatElapsed = 0;
            TickReadLease();
            BroadcastHeartbeats();
        }
        else
        {
            _leaderTicks++;
        }
    }

    private bool QuorumActive()
    {
        var active = 0;
        foreach (var voter in Config.Voters)
        {
            if (voter == Id || (_progress.TryGetValue(voter, out var pr) && pr.RecentActive))
            {
                active++;
            }
        }

        foreach (var (id, pr) in _progress)
        {
            pr.RecentActive = id == Id;
        }

        return active >= Config.Quorum;
    }

    private void Campaign(bool preVote, bool transfer)
    {
        RaftMessageType type;
        long term;
        if (preVote)
        {
            BecomePreCandidate();
            type = RaftMessageType.PreVote;
            term = Term + 1;
        }
        else
        {
            BecomeCandidate();
            type = RaftMessageType.Vote;
            term = Term;
        }

        if (Poll(Id, granted: true) == ElectionResult.Won)
        {
            WinElection();
            return;
        }

        var lastIndex = _log.LastIndex;
        var lastTerm = _log.LastTerm;
        foreach (var voter in Config.Voters)
        {
            if (voter != Id)
            {
                Send(new RaftMessage { Type = type, From = Id, To = voter, Term = term, Index = lastIndex, LogTerm = lastTerm, Transfer = transfer });
            }
        }
    }

    private void WinElection()
    {
        if (Role == RaftRole.PreCandidate)
        {
            Campaign(preVote: false, transfer: false);
        }
        else
        {
            BecomeLeader();
            BroadcastAppend();
        }
    }

    private enum ElectionResult
    {
        Pending,
        Won,
        Lost,
    }

    private ElectionResult Poll(RaftNodeId from, bool granted)
    {
        _votes.TryAdd(from, granted);
        int yes = 0, no = 0;
        foreach (var voter in Config.Voters)
        {
            if (_votes.TryGetValue(voter, out var vote))
            {
                if (vote)
                {
                    yes++;
                }
                else
                {
                    no++;
                }
            }
        }

        return yes >= Config.Quorum ? ElectionResult.Won : no >= Config.Quorum ? ElectionResult.Lost : ElectionResult.Pending;
    }

    private void HandleVoteRequest(RaftMessage m)
    {
        var responseType = m.Type == RaftMessageType.Vote ? RaftMessageType.VoteResponse : RaftMessageType.PreVoteResponse;
        var canVote = Vote == m.From
            || (Vote.IsNone && Leader.IsNone)
            || (m.Type == RaftMessageType.PreVote && m.Term > Term);
        if (canVote && _log.IsUpToDate(m.Index, m.LogTerm) && !YieldsToThisPreCandidate(m))
        {
            // The vote (and the term) reach the host in the next Ready, and the response goes out only
            // after they are durable: a restarted node never votes twice in one term (§5.2).
            Send(new RaftMessage { Type = responseType, From = Id, To = m.From, Term = m.Term });
            if (m.Type == RaftMessageType.Vote)
            {
                _electionElapsed = 0;
                Vote = m.From;
            }
        }
        else
        {
            NoteCandidate(m);
            Send(new RaftMessage { Type = responseType, From = Id, To = m.From, Term = Term, Reject = true });
        }
    }

    /// <summary>
    /// Two pre-candidates whose logs end alike would each grant the other's pre-vote, both campaign in the same term, vote
    /// for themselves and split the vote: then nobody leads for another randomized timeout (the fail-over simulation saw
    /// 510 ms, above 3 election timeouts). The tie is broken by id: a pre-candidate refuses the pre-vote of one with a lower
    /// id and an identical last entry, and grants it otherwise. The higher one, granted by the lower, campaigns, and the
    /// lower one votes for it. Only pre-votes are refused, never a vote, so safety does not depend on it; and a candidate
    /// refused here has a twin whose log is as good and who is campaigning already.
    /// </summary>
    private bool YieldsToThisPreCandidate(RaftMessage m) =>
        m.Type == RaftMessageType.PreVote
        && Role == RaftRole.PreCandidate
        && m.From.Value < Id.Value
        && m.Index == _log.LastIndex
        && m.LogTerm == _log.LastTerm;

    private void StepCandidate(RaftMessage m)
    {
        var myResponseType = Role == RaftRole.PreCandidate ? RaftMessageType.PreVoteResponse : RaftMessageType.VoteResponse;
        switch (m.Type)
        {
            case RaftMessageType.Append:
                BecomeFollower(m.Term, m.From);
                HandleAppend(m);
                break;
            case RaftMessageType.Heartbeat:
                BecomeFollower(m.Term, m.From);
                HandleHeartbeat(m);
                break;
            case RaftMessageType.Snapshot:
                BecomeFollower(m.Term, m.From);
                HandleSnapshot(m);
                break;
            default:
                if (m.Type == myResponseType)
                {
                    var result = Poll(m.From, !m.Reject);
                    if (result == ElectionResult.Won)
                    {
                        WinElection();
                    }
                    else if (result == ElectionResult.Lost)
                    {
                        BecomeFollower(Term, RaftNodeId.None);
                    }
                }

                break;
        }
    }

    private void StepFollower(RaftMessage m)
    {
        switch (m.Type)
        {
            case RaftMessageType.Append:
                _electionElapsed = 0;
                _outranksACandidate = false;
                _preVoteInLease = null;
                Leader = m.From;
                HandleAppend(m);
                break;
            case RaftMessageType.Heartbeat:
                _electionElapsed = 0;
                _outranksACandidate = false;
                _preVoteInLease = null;
                Leader = m.From;
                HandleHeartbeat(m);
                break;
            case RaftMessageType.Snapshot:
                _electionElapsed = 0;
                _outranksACandidate = false;
                _preVoteInLease = null;
                Leader = m.From;
                HandleSnapshot(m);
                break;
            case RaftMessageType.TimeoutNow:
                if (Promotable)
                {
                    // Leadership transfer: campaign at once, skipping pre-vote; voters ignore their lease.
                    Campaign(preVote: false, transfer: true);
                }

                break;
            default:
                break;
        }
    }

    private void HandleAppend(RaftMessage m)
    {
        if (m.Index < _log.Committed)
        {
            // Entries up to our commit index are ours already; a leader's copy of one can differ only if a safety rule
            // broke somewhere (Leader Completeness): say so rather than report them as matching.
            foreach (var entry in m.Entries)
            {
                if (entry.Index > _log.Committed)
                {
                    break;
                }

                Invariant.Assert(!_log.TryGetTerm(entry.Index, out var term) || term == entry.Term, "a committed entry never conflicts");
            }

            Send(new RaftMessage { Type = RaftMessageType.AppendResponse, From = Id, To = m.From, Term = Term, Index = _log.Committed, Commit = _log.Applied });
            return;
        }

        if (_log.MatchTerm(m.Index, m.LogTerm))
        {
            var lastNew = m.Index + m.Entries.Count;
            for (var i = 0; i < m.Entries.Count; i++)
            {
                var entry = m.Entries[i];
                Invariant.Assert(entry.Index == m.Index + 1 + i, "appended entries are consecutive");
                if (!_log.MatchTerm(entry.Index, entry.Term))
                {
                    // First conflict (or first new entry): everything from here is replaced (§5.3).
                    Invariant.Assert(entry.Index > _log.Committed, "a committed entry never conflicts");
                    var suffix = m.Entries.Skip(i).ToList();
                    TruncateConfigs(entry.Index);
                    _log.TruncateAndAppend(suffix);
                    OnEntriesAppended(suffix);
                    break;
                }
            }

            _log.CommitTo(Math.Min(m.Commit, lastNew));
            Send(new RaftMessage { Type = RaftMessageType.AppendResponse, From = Id, To = m.From, Term = Term, Index = lastNew, Commit = _log.Applied });
            return;
        }

        // Reject, with a hint: the last index at or before the leader's probe whose term is at most the
        // leader's term there. Every entry between the hint and the probe is known not to match.
        var hintIndex = FindConflictByTerm(Math.Min(m.Index, _log.LastIndex), m.LogTerm, out var hintTerm);
        Send(new RaftMessage
        {
            Type = RaftMessageType.AppendResponse,
            From = Id,
            To = m.From,
            Term = Term,
            Index = m.Index,
            Reject = true,
            RejectHint = hintIndex,
            LogTerm = hintTerm,
        });
    }

    /// <summary>The largest index at or below <paramref name="index"/> whose term is at most <paramref name="term"/>.</summary>
    private long FindConflictByTerm(long index, long term, out long foundTerm)
    {
        while (true)
        {
            if (!_log.TryGetTerm(index, out foundTerm))
            {
                foundTerm = 0;
                return index;
            }

            if (foundTerm <= term || index <= _log.Snapshot.Index)
            {
                return index;
            }

            index--;
        }
    }

    private void HandleHeartbeat(RaftMessage m)
    {
        // The leader sends min(our match, its commit): entries we acknowledged in this term.
        _log.CommitTo(m.Commit);

        // Echo the leader's read round: the answer confirms its leadership for reads registered before that round.
        Send(new RaftMessage { Type = RaftMessageType.HeartbeatResponse, From = Id, To = m.From, Term = Term, Index = m.Index, Commit = _log.Applied });
    }

    /// <summary>
    /// One chunk of the leader's snapshot. The chunk goes to storage (<see cref="IRaftLog.ReceiveSnapshotChunk"/>), which
    /// assembles the image on disk and answers how much of it it holds; the node acknowledges that, and when the image is
    /// whole (made durable by storage) replaces its log with the snapshot, as the single-message install did. Only the
    /// message's metadata and chunk are used: a message sent in memory carries the leader's whole image, one decoded from
    /// the network only the chunk.
    /// </summary>
    private void HandleSnapshot(RaftMessage m)
    {
        var metadata = m.Snapshot!.Metadata;
        if (metadata.Index <= _log.Committed)
        {
            Send(new RaftMessage { Type = RaftMessageType.AppendResponse, From = Id, To = m.From, Term = Term, Index = _log.Committed });
            return;
        }

        if (_log.MatchTerm(metadata.Index, metadata.Term))
        {
            // Our log already holds the snapshot's last entry: it is committed, keep the log.
            _log.CommitTo(metadata.Index);
        }
        else
        {
            var (received, image) = _storage.ReceiveSnapshotChunk(metadata, m.SnapshotLength, m.SnapshotOffset, m.SnapshotChunk.Span, m.From);
            if (image is null)
            {
                Send(new RaftMessage
                {
                    Type = RaftMessageType.SnapshotResponse, From = Id, To = m.From, Term = Term, Index = metadata.Index, SnapshotOffset = received,
                });
                return;
            }

            _log.Restore(new RaftSnapshot(metadata, image));
            _configs.Clear();
            _configs.Add((metadata.Index, metadata.Config));
        }

        Send(new RaftMessage { Type = RaftMessageType.AppendResponse, From = Id, To = m.From, Term = Term, Index = _log.Committed });
    }

    private void StepLeader(RaftMessage m)
    {
        if (!_progress.TryGetValue(m.From, out var pr))
        {
            return;
        }

        switch (m.Type)
        {
            case RaftMessageType.AppendResponse:
                pr.RecentActive = true;
                if (!m.Reject)
                {
                    pr.Applied = m.Commit;
                }

                HandleAppendResponse(m, pr);
                MaybeHandOverWhileReplaying();
                break;
            case RaftMessageType.HeartbeatResponse:
                pr.RecentActive = true;
                pr.Applied = m.Commit;
                MaybeHandOverWhileReplaying();
                pr.ProbeSent = false;
                OnReadRoundAcked(m.From, m.Index);
                if (pr.State == ProgressState.Replicate && pr.Inflights.IsFull)
                {
                    pr.Inflights.FreeFirst();
                }
                else if (pr.State == ProgressState.Snapshot)
                {
                    if (pr.SnapshotAdvanced)
                    {
                        // Chunks are flowing: leave the transfer alone until the next heartbeat answer.
                        pr.SnapshotAdvanced = false;
                        break;
                    }

                    // No chunk acknowledged since the last heartbeat answer: a chunk, or the last one's answer, was lost.
                    // Probe again: a follower that installed the snapshot answers the probe; one that still needs it
                    // rejects it, and the transfer resumes where its acknowledgements reached (Progress keeps that).
                    pr.BecomeProbe();
                }

                if (pr.Match < _log.LastIndex)
                {
                    SendAppend(m.From, sendIfEmpty: true);
                }

                break;
            case RaftMessageType.SnapshotResponse:
                pr.RecentActive = true;
                if (pr.State == ProgressState.Snapshot && pr.PendingSnapshot == m.Index && m.SnapshotOffset != pr.SnapshotAcked)
                {
                    // A duplicate answer (same offset) sends nothing: one chunk stays in flight.
                    pr.SnapshotAcknowledged(m.SnapshotOffset);
                    SendSnapshotChunk(m.From, pr);
                }

                break;
            default:
                break;
        }
    }

    private void HandleAppendResponse(RaftMessage m, Progress pr)
    {
        if (m.Reject)
        {
            var probe = m.RejectHint;
            if (m.LogTerm > 0)
            {
                // Skip every entry of the follower's conflicting term at once (§5.3 optimisation).
                probe = FindConflictByTerm(m.RejectHint, m.LogTerm, out _);
            }

            if (pr.MaybeDecreaseTo(m.Index, probe))
            {
                if (pr.State == ProgressState.Replicate)
                {
                    pr.BecomeProbe();
                }

                SendAppend(m.From, sendIfEmpty: true);
            }

            return;
        }

        if (!pr.MaybeUpdate(m.Index))
        {
            return;
        }

        switch (pr.State)
        {
            case ProgressState.Probe:
                pr.BecomeReplicate();
                break;
            case ProgressState.Snapshot when pr.Match + 1 >= _log.FirstIndex:
                pr.BecomeProbe();
                pr.BecomeReplicate();
                break;
            case ProgressState.Replicate:
                pr.Inflights.FreeThrough(m.Index);
                break;
            default:
                break;
        }

        if (MaybeCommit())
        {
            BroadcastAppend();
            StepDownIfRemoved();
            if (Role != RaftRole.Leader)
            {
                return;
            }
        }
        else
        {
            while (SendAppend(m.From, sendIfEmpty: false))
            {
            }
        }

        if (m.From == LeadTransferee && pr.Match == _log.LastIndex)
        {
            Send(new RaftMessage { Type = RaftMessageType.TimeoutNow, From = Id, To = m.From, Term = Term });
        }
    }
}
