namespace AppendLog.Raft.Core;

/// <summary>
/// A member still replaying a backlog into its state machine (a restart: every committed entry is applied again) can hold
/// the longest log and so be the only one able to win an election; as leader it would then complete no replication until
/// its replay caught up (ReplicatedLog completes a replication once it is applied here), which was seen taking seconds in
/// RaftBench's fail-over runs. Three rules keep such a member from holding up writes (none is a paper rule; each keeps
/// the election restriction of §5.4.1, since votes and transfers still go only to up-to-date logs):
/// <list type="number">
/// <item>It campaigns one timeout later than the others (<see cref="RaftOptions.CampaignApplyLagEntries"/>), so a member
/// that can serve at once campaigns first when there is one.</item>
/// <item>Unless it has just turned a candidate away because its own log is the more up to date: that candidate cannot win
/// without it, so waiting only delays the election (the later timeout pushed it to 3 election timeouts).</item>
/// <item>A leader that took office while replaying hands leadership over (thesis §3.10) to a voter that has applied all
/// but <see cref="RaftOptions.CampaignApplyLagEntries"/> entries, as soon as such a voter answers (followers report what
/// they have handed to their state machine in the Commit field of their answers). It does so only while the backlog it
/// took office with lasts: a leader that falls behind later (load) keeps leading, so leadership never ping-pongs.</item>
/// </list>
/// </summary>
internal sealed partial class RaftNode
{
    /// <summary>This member turned away a candidate whose log is behind its own since it last heard from a leader.</summary>
    private bool _outranksACandidate;

    /// <summary>
    /// The latest pre-vote this follower ignored because it heard from a leader less than an election timeout ago (the
    /// check-quorum lease), answered when the lease ends unless a leader speaks first. A pre-candidate that timed out a tick
    /// before us would otherwise wait a whole randomized timeout more (seen: a new leader 450 ms after a crash instead
    /// of 150). Answering after the lease keeps what leases promise: no candidate is helped inside one.
    /// </summary>
    private RaftMessage? _preVoteInLease;

    /// <summary>This leader took office with a backlog to replay and has not caught up since.</summary>
    private bool _tookOfficeReplaying;

    /// <summary>More committed entries than <see cref="RaftOptions.CampaignApplyLagEntries"/> wait to be handed to the state machine.</summary>
    private bool IsReplaying =>
        _options.CampaignApplyLagEntries > 0 && _log.Committed - _log.Applied > _options.CampaignApplyLagEntries;

    /// <summary>A vote or pre-vote this member turns away or ignores: is the candidate's log behind ours?</summary>
    private void NoteCandidate(RaftMessage m)
    {
        if (m.Type is RaftMessageType.Vote or RaftMessageType.PreVote && IsReplaying && !_log.IsUpToDate(m.Index, m.LogTerm))
        {
            _outranksACandidate = true;
        }
    }

    /// <summary>A leader that took office replaying hands over to the caught-up voter furthest along, once one answers.</summary>
    private void MaybeHandOverWhileReplaying()
    {
        if (!_tookOfficeReplaying || Role != RaftRole.Leader || !LeadTransferee.IsNone)
        {
            return;
        }

        if (!IsReplaying)
        {
            _tookOfficeReplaying = false;
            return;
        }

        var target = RaftNodeId.None;
        var targetMatch = -1L;
        foreach (var (id, pr) in _progress)
        {
            if (id != Id
                && Config.IsVoter(id)
                && pr.RecentActive
                && pr.Applied > 0
                && _log.Committed - pr.Applied <= _options.CampaignApplyLagEntries
                && pr.Match > targetMatch)
            {
                target = id;
                targetMatch = pr.Match;
            }
        }

        if (!target.IsNone)
        {
            TransferLeadership(target);
        }
    }
}
