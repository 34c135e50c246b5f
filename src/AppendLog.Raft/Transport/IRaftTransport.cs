using AppendLog.Raft.Core;

namespace AppendLog.Raft.Transport;

/// <summary>
/// Carries messages between nodes. Delivery is best effort: a message may be lost, delayed, duplicated or
/// reordered, and Raft tolerates all of it. <see cref="Send"/> must not block the node's loop; a transport that
/// cannot keep up drops. Incoming messages are handed to the addressee's host (<c>RaftHost.Receive</c>).
/// The real transport (length-prefixed frames over TCP) and the in-memory one used by tests implement this.
/// </summary>
internal interface IRaftTransport
{
    void Send(RaftMessage message);
}
