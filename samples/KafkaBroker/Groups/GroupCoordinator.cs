using System.Collections.Concurrent;

namespace KafkaBroker.Groups;

/// <summary>
/// Every consumer group of this broker (a single node is every group's coordinator), and the background tick that
/// expires sessions and completes rebalances whose wait is over.
/// </summary>
internal sealed class GroupCoordinator : IAsyncDisposable
{
    /// <summary>
    /// How often sessions and rebalance deadlines are checked: well below Kafka's 6 s minimum session.
    /// </summary>
    private static readonly TimeSpan s_tickInterval = TimeSpan.FromMilliseconds(50);

    private readonly ConcurrentDictionary<string, ConsumerGroup> _groups = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly TimeSpan _initialRebalanceDelay;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _ticker;

    public GroupCoordinator(TimeProvider time, TimeSpan initialRebalanceDelay)
    {
        _time = time;
        _initialRebalanceDelay = initialRebalanceDelay;
        _ticker = TickAsync();
    }

    public ConsumerGroup GetOrCreate(string groupId) =>
        _groups.GetOrAdd(groupId, id => new ConsumerGroup(id, _time, _initialRebalanceDelay));

    public ConsumerGroup? Find(string groupId) => _groups.GetValueOrDefault(groupId);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _ticker.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The tick loop ends by cancellation.
        }

        _stop.Dispose();
    }

    private async Task TickAsync()
    {
        using var timer = new PeriodicTimer(s_tickInterval, _time);
        while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
        {
            foreach (var group in _groups.Values)
            {
                group.Tick();
            }
        }
    }
}
