using KafkaBroker.Server;
using NUnit.Framework;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>The per-connection bound: a reader waits while either the count or the bytes would be exceeded.</summary>
[TestFixture]
public sealed class InflightRequestsTests
{
    [Test]
    [CancelAfter(10_000)]
    public async Task AtTheCountBound_TheNextEnterWaitsForAnExit(CancellationToken cancellationToken)
    {
        var inflight = new InflightRequests(requestsMax: 2, bytesMax: 1000);
        await inflight.EnterAsync(10, cancellationToken);
        await inflight.EnterAsync(10, cancellationToken);

        var third = inflight.EnterAsync(10, cancellationToken).AsTask();
        await Task.Delay(100, cancellationToken);
        Assert.That(third.IsCompleted, Is.False, "two requests held: the third waits");

        inflight.Exit(10);
        await third.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task AtTheByteBound_TheNextEnterWaitsUntilItFits(CancellationToken cancellationToken)
    {
        var inflight = new InflightRequests(requestsMax: 10, bytesMax: 1000);
        await inflight.EnterAsync(600, cancellationToken);
        await inflight.EnterAsync(300, cancellationToken);

        var large = inflight.EnterAsync(500, cancellationToken).AsTask();
        inflight.Exit(300);
        await Task.Delay(100, cancellationToken);
        Assert.That(large.IsCompleted, Is.False, "600 + 500 bytes would pass the bound");

        inflight.Exit(600);
        await large.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
        Assert.That(async () => await inflight.EnterAsync(501, cancellationToken).AsTask().WaitAsync(TimeSpan.FromMilliseconds(200), cancellationToken),
            Throws.InstanceOf<TimeoutException>(), "500 held, 501 more does not fit");
    }

    [Test]
    public void ARequestLargerThanTheWholeBound_IsRefused() =>
        Assert.That(async () => await new InflightRequests(4, 1000).EnterAsync(1001, CancellationToken.None),
            Throws.InstanceOf<ArgumentOutOfRangeException>());

    [Test]
    public void ExitWithoutEnter_IsABug() =>
        Assert.That(() => new InflightRequests(4, 1000).Exit(1), Throws.InvalidOperationException);
}
