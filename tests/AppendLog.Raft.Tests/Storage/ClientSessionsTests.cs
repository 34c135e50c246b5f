using AppendLog.Raft.Storage;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Storage;

public sealed class ClientSessionsTests
{
    [Test]
    public void ANewSequenceApplies_TheSameIsADuplicateWithItsResponse_AnOlderOneExpires()
    {
        var sessions = new ClientSessions(10);
        sessions.Open(100);
        Assert.That(sessions.Check(100, 1, out _, out _), Is.EqualTo(SessionOutcome.Apply));
        sessions.Record(100, 1, 101, [7, 7]);
        Assert.That(sessions.Check(100, 1, out var offset, out var response), Is.EqualTo(SessionOutcome.Duplicate));
        Assert.That(offset, Is.EqualTo(101));
        Assert.That(response.ToArray(), Is.EqualTo(new byte[] { 7, 7 }));
        Assert.That(sessions.Check(100, 3, out _, out _), Is.EqualTo(SessionOutcome.Apply), "gaps are allowed");
        sessions.Record(100, 3, 105, []);
        Assert.That(sessions.Check(100, 1, out _, out _), Is.EqualTo(SessionOutcome.Expired), "older than the latest");
        Assert.That(sessions.Check(999, 1, out _, out _), Is.EqualTo(SessionOutcome.Expired), "never opened");
        Assert.That(sessions.Check(100, 0, out _, out _), Is.EqualTo(SessionOutcome.Expired), "sequences start at 1");
    }

    [Test]
    public void OpeningPastTheLimit_EvictsTheSessionUsedLeastRecently()
    {
        var sessions = new ClientSessions(2);
        sessions.Open(1);
        sessions.Open(2);
        sessions.Record(1, 1, 3, []);
        sessions.Open(4);
        Assert.That(sessions.Count, Is.EqualTo(2));
        Assert.That(sessions.Check(2, 1, out _, out _), Is.EqualTo(SessionOutcome.Expired), "2 was used least recently");
        Assert.That(sessions.Check(1, 1, out _, out _), Is.EqualTo(SessionOutcome.Duplicate));
        Assert.That(sessions.Check(4, 1, out _, out _), Is.EqualTo(SessionOutcome.Apply));
    }

    [Test]
    public void TheTable_RoundTripsThroughItsEncoding()
    {
        var sessions = new ClientSessions(8);
        sessions.Open(10);
        sessions.Open(20);
        sessions.Record(20, 5, 21, [1, 2, 3]);
        var bytes = new byte[sessions.EncodedSize + 3];
        sessions.WriteTo(bytes);

        var copy = new ClientSessions(8);
        Assert.That(copy.ReadFrom(bytes), Is.EqualTo(sessions.EncodedSize));
        Assert.That(copy.Count, Is.EqualTo(2));
        Assert.That(copy.Check(20, 5, out var offset, out var response), Is.EqualTo(SessionOutcome.Duplicate));
        Assert.That((offset, response.ToArray()), Is.EqualTo((21L, new byte[] { 1, 2, 3 })));
        Assert.That(copy.Check(10, 1, out _, out _), Is.EqualTo(SessionOutcome.Apply));
        Assert.Throws<InvalidDataException>(() => copy.ReadFrom(bytes.AsSpan(0, sessions.EncodedSize - 1)));
    }

    [Test]
    public void AResponseAboveTheLimit_IsRefused()
    {
        var sessions = new ClientSessions(1);
        sessions.Open(1);
        Assert.Throws<InvalidOperationException>(() => sessions.Record(1, 1, 2, new byte[ClientSessions.ResponseBytesMax + 1]));
    }

    [Test]
    public void SessionTags_RoundTripThroughARecordBatch()
    {
        var batch = EntryBatch.EncodeApplication(
            [new byte[] { 1 }, new byte[] { 2 }, ReadOnlyMemory<byte>.Empty],
            [null, new SessionTag(false, 42, 7), SessionTag.Open],
            term: 3,
            timestampMs: 1000);
        EntryBatch.Check(batch);
        var records = EntryBatch.ReadRecords(batch);
        Assert.That(records.Select(r => r.Session), Is.EqualTo(new SessionTag?[] { null, new SessionTag(false, 42, 7), SessionTag.Open }));
        Assert.That(records[1].Value.ToArray(), Is.EqualTo(new byte[] { 2 }));
    }
}
