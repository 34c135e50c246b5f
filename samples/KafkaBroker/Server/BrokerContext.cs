using KafkaBroker.Groups;
using KafkaBroker.Storage;

namespace KafkaBroker.Server;

/// <summary>What every request handler may use: the options, the stores, and the broker's lifetime.</summary>
internal sealed class BrokerContext(
    BrokerOptions options, TopicStore topics, OffsetStore offsets, GroupCoordinator groups, CancellationToken stopping)
{
    public BrokerOptions Options { get; } = options;

    public TopicStore Topics { get; } = topics;

    public OffsetStore Offsets { get; } = offsets;

    public GroupCoordinator Groups { get; } = groups;

    /// <summary>Cancelled when the broker stops: ends long polls and group waits.</summary>
    public CancellationToken Stopping { get; } = stopping;

    /// <summary>The port clients reach this broker on (the bound one when the options asked for 0).</summary>
    public int Port { get; set; }
}
