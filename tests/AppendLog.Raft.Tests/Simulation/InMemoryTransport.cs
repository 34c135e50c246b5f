using AppendLog.Raft.Core;
using AppendLog.Raft.Transport;

namespace AppendLog.Raft.Tests.Simulation;

/// <summary>
/// An in-memory <see cref="IRaftTransport"/> connecting hosts in one process. Links can be cut to partition nodes.
/// (The discrete-event simulation schedules deliveries itself; this one serves the real, threaded host loop.)
/// </summary>
internal sealed class InMemoryTransport : IRaftTransport
{
    private readonly Dictionary<RaftNodeId, Action<RaftMessage>> _receivers;
    private readonly HashSet<(RaftNodeId, RaftNodeId)> _cut;
    private readonly Lock _lock;

    private InMemoryTransport(Dictionary<RaftNodeId, Action<RaftMessage>> receivers, HashSet<(RaftNodeId, RaftNodeId)> cut, Lock gate)
    {
        _receivers = receivers;
        _cut = cut;
        _lock = gate;
    }

    /// <summary>A network of transports sharing receivers and cut links.</summary>
    public sealed class Network
    {
        private readonly Dictionary<RaftNodeId, Action<RaftMessage>> _receivers = [];
        private readonly HashSet<(RaftNodeId, RaftNodeId)> _cut = [];
        private readonly Lock _lock = new();

        public InMemoryTransport Transport() => new(_receivers, _cut, _lock);

        public void Register(RaftNodeId id, Action<RaftMessage> receive)
        {
            lock (_lock)
            {
                _receivers[id] = receive;
            }
        }

        public void Isolate(RaftNodeId id)
        {
            lock (_lock)
            {
                foreach (var other in _receivers.Keys)
                {
                    _cut.Add((id, other));
                    _cut.Add((other, id));
                }
            }
        }
    }

    public void Send(RaftMessage message)
    {
        Action<RaftMessage>? receive;
        lock (_lock)
        {
            if (_cut.Contains((message.From, message.To)) || !_receivers.TryGetValue(message.To, out receive))
            {
                return;
            }
        }

        receive(message);
    }
}
