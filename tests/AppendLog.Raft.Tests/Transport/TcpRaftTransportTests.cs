using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using AppendLog.Raft.Core;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Transport;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Transport;

[NonParallelizable]
public sealed class TcpRaftTransportTests
{
    private static readonly RaftNodeId A = new(1);
    private static readonly RaftNodeId B = new(2);

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static RaftMessage Append(long index, byte[] data) => new()
    {
        Type = RaftMessageType.Append,
        From = A,
        To = B,
        Term = 3,
        Index = index,
        LogTerm = 3,
        Commit = index,
        Entries = [new RaftEntry(3, index + 1, RaftEntryKind.Normal, data)],
    };

    private static async Task AwaitAsync(Func<bool> condition)
    {
        for (var i = 0; i < 1000 && !condition(); i++)
        {
            await Task.Delay(10);
        }
    }

    [Test]
    public async Task Messages_ArriveInOrder_AndIntact()
    {
        var peers = new Dictionary<RaftNodeId, IPEndPoint>
        {
            [A] = new(IPAddress.Loopback, FreePort()),
            [B] = new(IPAddress.Loopback, FreePort()),
        };
        var received = new ConcurrentQueue<RaftMessage>();
        await using var a = new TcpRaftTransport(A, peers[A], peers, _ => { }, TimeProvider.System);
        await using var b = new TcpRaftTransport(B, peers[B], peers, received.Enqueue, TimeProvider.System);
        a.Start();
        b.Start();
        for (var i = 0; i < 500; i++)
        {
            a.Send(Append(i, [(byte)i, (byte)(i >> 8), 7]));
            if (i % 100 == 0)
            {
                await Task.Delay(5); // stay under the queue bound: this test is about delivery, not drops
            }
        }

        await AwaitAsync(() => received.Count == 500);
        Assert.Multiple(() =>
        {
            Assert.That(received.Select(m => m.Index), Is.EqualTo(Enumerable.Range(0, 500).Select(i => (long)i)));
            Assert.That(received.All(m => m.Entries[0].Data.Span.SequenceEqual(new byte[] { (byte)m.Index, (byte)(m.Index >> 8), 7 })), Is.True);
            Assert.That(a.DroppedMessages, Is.Zero);
        });
    }

    [Test]
    public async Task AnUnreachablePeer_CostsDroppedMessages_NotABlockedSender_AndIsReachedOnceItListens()
    {
        var peers = new Dictionary<RaftNodeId, IPEndPoint>
        {
            [A] = new(IPAddress.Loopback, FreePort()),
            [B] = new(IPAddress.Loopback, FreePort()),
        };
        await using var a = new TcpRaftTransport(A, peers[A], peers, _ => { }, TimeProvider.System);
        a.Start();
        for (var i = 0; i < TcpRaftTransport.SendQueueMessagesMax + 100; i++)
        {
            a.Send(Append(i, [1]));
        }

        Assert.That(a.DroppedMessages, Is.GreaterThanOrEqualTo(100), "a full queue drops instead of blocking the node's loop");

        var received = new ConcurrentQueue<RaftMessage>();
        await using var b = new TcpRaftTransport(B, peers[B], peers, received.Enqueue, TimeProvider.System);
        b.Start();
        await AwaitAsync(() => !received.IsEmpty);
        a.Send(Append(99_999, [2]));
        await AwaitAsync(() => received.Any(m => m.Index == 99_999));
        Assert.That(received.Any(m => m.Index == 99_999), Is.True, "the sender reconnected with backoff and delivers again");
    }

    /// <summary>
    /// A snapshot message larger than a frame (RaftFrame.PayloadBytesMax) cannot be sent. It used to make the frame writer
    /// throw outside what the sender caught: that peer's sender died for the life of the process, no later heartbeat
    /// reached it, and DisposeAsync threw. The sender must drop such a message, count it, and go on.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task AMessageLargerThanAFrame_IsDroppedAndCounted_AndLaterMessagesStillArrive()
    {
        var peers = new Dictionary<RaftNodeId, IPEndPoint>
        {
            [A] = new(IPAddress.Loopback, FreePort()),
            [B] = new(IPAddress.Loopback, FreePort()),
        };
        var received = new ConcurrentQueue<RaftMessage>();
        var a = new TcpRaftTransport(A, peers[A], peers, _ => { }, TimeProvider.System);
        await using var b = new TcpRaftTransport(B, peers[B], peers, received.Enqueue, TimeProvider.System);
        a.Start();
        b.Start();

        var config = new AppendLog.Raft.Membership.ClusterConfig([A, B], []);
        var huge = new RaftSnapshot(new SnapshotMetadata(100, 3, config), SnapshotImage.Empty);
        a.Send(new RaftMessage
        {
            Type = RaftMessageType.Snapshot, From = A, To = B, Term = 3, Snapshot = huge,
            SnapshotLength = RaftFrame.PayloadBytesMax + 1, SnapshotChunk = new byte[RaftFrame.PayloadBytesMax + 1],
        });
        for (var i = 0; i < 10; i++)
        {
            a.Send(new RaftMessage { Type = RaftMessageType.Heartbeat, From = A, To = B, Term = 3, Index = i });
        }

        await AwaitAsync(() => received.Count(m => m.Type == RaftMessageType.Heartbeat) == 10);
        Assert.Multiple(() =>
        {
            Assert.That(received.Count(m => m.Type == RaftMessageType.Heartbeat), Is.EqualTo(10), "every later heartbeat arrived");
            Assert.That(received.Any(m => m.Type == RaftMessageType.Snapshot), Is.False);
            Assert.That(a.OversizeMessagesDropped, Is.EqualTo(1), "the oversize snapshot was counted");
        });
        Assert.DoesNotThrowAsync(async () => await a.DisposeAsync(), "the sender is alive and stops cleanly");
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task AMemberOfAnotherCluster_IsRefusedAtConnection_AndOneOfTheSameClusterIsServed()
    {
        var peers = new Dictionary<RaftNodeId, IPEndPoint>
        {
            [A] = new(IPAddress.Loopback, FreePort()),
            [B] = new(IPAddress.Loopback, FreePort()),
        };
        var received = new ConcurrentQueue<RaftMessage>();
        await using var b = new TcpRaftTransport(B, peers[B], peers, received.Enqueue, TimeProvider.System, "orders");
        b.Start();

        // A member of "billing" that was given this group's addresses: its connection is closed before any frame is read.
        var stranger = new TcpRaftTransport(A, peers[A], peers, _ => { }, TimeProvider.System, "billing");
        stranger.Start();
        for (var i = 0; i < 5; i++)
        {
            stranger.Send(new RaftMessage { Type = RaftMessageType.Heartbeat, From = A, To = B, Term = 9, Index = i });
        }

        await AwaitAsync(() => b.RefusedConnections >= 1);
        await Task.Delay(100);
        Assert.Multiple(() =>
        {
            Assert.That(b.RefusedConnections, Is.GreaterThanOrEqualTo(1), "the stranger's connection was refused");
            Assert.That(received, Is.Empty, "nothing of the stranger's reached the node");
            Assert.That(b.FramesReceived, Is.Zero);
        });
        await stranger.DisposeAsync();

        // The same node id, configured with this group's id, is served.
        await using var member = new TcpRaftTransport(A, peers[A], peers, _ => { }, TimeProvider.System, "orders");
        member.Start();
        member.Send(new RaftMessage { Type = RaftMessageType.Heartbeat, From = A, To = B, Term = 9, Index = 7 });
        await AwaitAsync(() => !received.IsEmpty);
        Assert.That(received.Single().Index, Is.EqualTo(7));
    }

    [Test]
    public void AClusterIdLongerThan255Bytes_IsRefusedByTheOptions()
    {
        var options = new ReplicatedLogOptions
        {
            NodeId = A,
            Members = new Dictionary<RaftNodeId, IPEndPoint> { [A] = new(IPAddress.Loopback, 1) },
            Directory = "unused",
            ClusterId = new string('é', 128),
        };
        Assert.Throws<ArgumentException>(() => options.Validate());
    }
}
