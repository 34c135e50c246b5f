using AppendLog.Raft.Storage;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Storage;

public sealed class TruncationGateTests
{
    [Test]
    public async Task ATruncation_WaitsForTheReadsInProgress_AndNewReadsWaitForIt()
    {
        var gate = new TruncationGate();
        await gate.EnterReadAsync(CancellationToken.None);
        var truncation = gate.BeginTruncateAsync().AsTask();
        await Task.Delay(20);
        Assert.That(truncation.IsCompleted, Is.False, "the reader still holds its lease");

        var laterRead = gate.EnterReadAsync(CancellationToken.None).AsTask();
        gate.ExitRead();
        await truncation;
        await Task.Delay(20);
        Assert.That(laterRead.IsCompleted, Is.False, "a read that starts during a truncation waits for it");

        gate.EndTruncate();
        await laterRead;
        gate.ExitRead();
    }
}
