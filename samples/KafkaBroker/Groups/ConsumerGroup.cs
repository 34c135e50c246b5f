using KafkaBroker.Protocol;

namespace KafkaBroker.Groups;

/// <summary>
/// One consumer group's membership, following Kafka's group coordinator (KIP-62 timeouts, the classic rebalance
/// protocol). States and what moves them:
/// <code>
/// from                         event                                              to
/// Empty                        JoinGroup                                          PreparingRebalance
/// PreparingRebalance           every member rejoined, or the rebalance timeout    CompletingRebalance, generation + 1
///                              passed (members that did not rejoin are removed)   (Empty when none is left)
/// CompletingRebalance          the leader's SyncGroup                             Stable
/// CompletingRebalance, Stable  JoinGroup, LeaveGroup, a session expiring          PreparingRebalance
/// any                          the last member leaves or expires                  Empty
/// </code>
/// Every method takes the group's lock; waiters (JoinGroup, SyncGroup) are completed under it but run their
/// continuations asynchronously, so no caller's code runs while the lock is held.
/// </summary>
internal sealed class ConsumerGroup(string groupId, TimeProvider time, TimeSpan initialRebalanceDelay)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, GroupMember> _members = new(StringComparer.Ordinal);
    private GroupState _state = GroupState.Empty;
    private string? _protocolType;
    private string _protocolName = "";
    private string _leaderId = "";
    private long _rebalanceStartTicks;
    private TimeSpan _rebalanceWait;

    public string GroupId { get; } = groupId;

    public int GenerationId { get; private set; }

    /// <summary>Starts or rejoins a member; the task completes when the rebalance completes.</summary>
    public Task<JoinResult> Join(JoinRequest request)
    {
        lock (_lock)
        {
            var rejected = CheckJoinUnsynchronized(request);
            if (rejected != ErrorCode.None)
            {
                return Task.FromResult(new JoinResult(rejected, -1, "", "", request.MemberId, []));
            }

            string memberId = request.MemberId.Length > 0 ? request.MemberId : $"{request.ClientId}-{Guid.NewGuid():N}";
            if (!_members.TryGetValue(memberId, out var member))
            {
                member = new GroupMember(memberId, request.ClientId);
                _members[memberId] = member;
            }

            member.SessionTimeout = request.SessionTimeout;
            member.RebalanceTimeout = request.RebalanceTimeout;
            member.Protocols = request.Protocols;
            member.LastHeartbeatTicks = time.GetTimestamp();
            member.JoinWaiter?.TrySetResult(Failed(ErrorCode.UnknownMemberId, memberId));
            member.JoinWaiter = new(TaskCreationOptions.RunContinuationsAsynchronously);
            _protocolType ??= request.ProtocolType;
            var waiter = member.JoinWaiter.Task;
            if (_state != GroupState.PreparingRebalance)
            {
                PrepareRebalanceUnsynchronized(initial: _state == GroupState.Empty);
            }

            TryCompleteJoinUnsynchronized(timedOut: false);
            return waiter;
        }
    }

    /// <summary>Hands the leader's assignment to each member; the task completes once the leader has sent it.</summary>
    public Task<SyncResult> Sync(
        string memberId, int generationId, IReadOnlyList<(string MemberId, byte[] Assignment)> assignments)
    {
        lock (_lock)
        {
            var error = CheckMemberUnsynchronized(memberId, generationId);
            if (error == ErrorCode.None && _state == GroupState.PreparingRebalance)
            {
                error = ErrorCode.RebalanceInProgress;
            }

            if (error != ErrorCode.None)
            {
                return Task.FromResult(new SyncResult(error, []));
            }

            var member = _members[memberId];
            if (_state == GroupState.Stable)
            {
                return Task.FromResult(new SyncResult(ErrorCode.None, member.Assignment));
            }

            member.SyncWaiter = new(TaskCreationOptions.RunContinuationsAsynchronously);
            var waiter = member.SyncWaiter.Task;
            if (memberId == _leaderId)
            {
                foreach (var m in _members.Values)
                {
                    m.Assignment = assignments.FirstOrDefault(a => a.MemberId == m.MemberId).Assignment ?? [];
                }

                _state = GroupState.Stable;
                foreach (var m in _members.Values)
                {
                    m.SyncWaiter?.TrySetResult(new SyncResult(ErrorCode.None, m.Assignment));
                    m.SyncWaiter = null;
                }
            }

            return waiter;
        }
    }

    public ErrorCode Heartbeat(string memberId, int generationId)
    {
        lock (_lock)
        {
            var error = CheckMemberUnsynchronized(memberId, generationId);
            if (error != ErrorCode.None)
            {
                return error;
            }

            _members[memberId].LastHeartbeatTicks = time.GetTimestamp();
            return _state == GroupState.PreparingRebalance ? ErrorCode.RebalanceInProgress : ErrorCode.None;
        }
    }

    public ErrorCode Leave(string memberId)
    {
        lock (_lock)
        {
            if (!_members.ContainsKey(memberId))
            {
                return ErrorCode.UnknownMemberId;
            }

            RemoveMemberUnsynchronized(memberId);
            return ErrorCode.None;
        }
    }

    /// <summary>
    /// Whether a commit from this member and generation may store offsets (Kafka's rules, simplified).
    /// </summary>
    public ErrorCode CheckCommit(string memberId, int generationId)
    {
        lock (_lock)
        {
            if (generationId < 0 && memberId.Length == 0)
            {
                // A "simple" commit (no group membership, as a standalone consumer sends): only for an empty group.
                return _members.Count == 0 ? ErrorCode.None : ErrorCode.UnknownMemberId;
            }

            var error = CheckMemberUnsynchronized(memberId, generationId);
            if (error == ErrorCode.None && _state == GroupState.CompletingRebalance)
            {
                error = ErrorCode.RebalanceInProgress;
            }

            return error;
        }
    }

    /// <summary>Expires members whose session lapsed and completes a rebalance whose wait is over.</summary>
    public void Tick()
    {
        lock (_lock)
        {
            foreach (var member in _members.Values.ToArray())
            {
                bool waitingInJoin = member.JoinWaiter is not null;
                if (!waitingInJoin && time.GetElapsedTime(member.LastHeartbeatTicks) > member.SessionTimeout)
                {
                    RemoveMemberUnsynchronized(member.MemberId);
                }
            }

            if (_state == GroupState.PreparingRebalance)
            {
                TryCompleteJoinUnsynchronized(timedOut: time.GetElapsedTime(_rebalanceStartTicks) >= _rebalanceWait);
            }
        }
    }

    private ErrorCode CheckJoinUnsynchronized(JoinRequest request)
    {
        if (request.MemberId.Length > 0 && !_members.ContainsKey(request.MemberId))
        {
            return ErrorCode.UnknownMemberId;
        }

        if (request.Protocols.Count == 0 || (_members.Count > 0 && request.ProtocolType != _protocolType))
        {
            return ErrorCode.InconsistentGroupProtocol;
        }

        bool sharesAProtocol = _members.Values.Where(m => m.MemberId != request.MemberId)
            .All(m => m.Protocols.Any(p => request.Protocols.Any(q => q.Name == p.Name)));
        return sharesAProtocol ? ErrorCode.None : ErrorCode.InconsistentGroupProtocol;
    }

    private ErrorCode CheckMemberUnsynchronized(string memberId, int generationId)
    {
        if (!_members.ContainsKey(memberId))
        {
            return ErrorCode.UnknownMemberId;
        }

        return generationId == GenerationId ? ErrorCode.None : ErrorCode.IllegalGeneration;
    }

    private void PrepareRebalanceUnsynchronized(bool initial)
    {
        foreach (var member in _members.Values)
        {
            member.SyncWaiter?.TrySetResult(new SyncResult(ErrorCode.RebalanceInProgress, []));
            member.SyncWaiter = null;
        }

        _state = GroupState.PreparingRebalance;
        _rebalanceStartTicks = time.GetTimestamp();
        _rebalanceWait = initial ? initialRebalanceDelay : _members.Values.Max(m => m.RebalanceTimeout);
    }

    private void TryCompleteJoinUnsynchronized(bool timedOut)
    {
        bool allJoined = _members.Values.All(m => m.JoinWaiter is not null);
        bool initialDelayOver = time.GetElapsedTime(_rebalanceStartTicks) >= initialRebalanceDelay;
        if (!timedOut && !(allJoined && initialDelayOver))
        {
            return;
        }

        foreach (var member in _members.Values.Where(m => m.JoinWaiter is null).ToArray())
        {
            _members.Remove(member.MemberId);
        }

        GenerationId++;
        if (_members.Count == 0)
        {
            _state = GroupState.Empty;
            _protocolType = null;
            return;
        }

        CompleteJoinUnsynchronized();
    }

    private void CompleteJoinUnsynchronized()
    {
        _leaderId = _members.ContainsKey(_leaderId) ? _leaderId : _members.Keys.First();
        var leader = _members[_leaderId];
        _protocolName = leader.Protocols
            .First(p => _members.Values.All(m => m.Protocols.Any(q => q.Name == p.Name))).Name;
        _state = GroupState.CompletingRebalance;
        var everyone = _members.Values.Select(m => (m.MemberId, m.MetadataFor(_protocolName))).ToList();
        foreach (var member in _members.Values)
        {
            var members = member.MemberId == _leaderId ? everyone : [];
            var result = new JoinResult(
                ErrorCode.None, GenerationId, _protocolName, _leaderId, member.MemberId, members);
            member.JoinWaiter!.TrySetResult(result);
            member.JoinWaiter = null;
            member.LastHeartbeatTicks = time.GetTimestamp();
        }
    }

    private void RemoveMemberUnsynchronized(string memberId)
    {
        var member = _members[memberId];
        _members.Remove(memberId);
        member.JoinWaiter?.TrySetResult(Failed(ErrorCode.UnknownMemberId, memberId));
        member.SyncWaiter?.TrySetResult(new SyncResult(ErrorCode.UnknownMemberId, []));
        if (_members.Count == 0)
        {
            _state = GroupState.Empty;
            _protocolType = null;
            GenerationId++;
            return;
        }

        if (_state != GroupState.PreparingRebalance)
        {
            PrepareRebalanceUnsynchronized(initial: false);
        }

        TryCompleteJoinUnsynchronized(timedOut: false);
    }

    private static JoinResult Failed(ErrorCode error, string memberId) => new(error, -1, "", "", memberId, []);

    private enum GroupState
    {
        Empty,
        PreparingRebalance,
        CompletingRebalance,
        Stable,
    }
}
