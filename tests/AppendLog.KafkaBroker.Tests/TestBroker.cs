using NUnit.Framework;
using KafkaBroker;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// An in-process broker on 127.0.0.1 with an ephemeral port and a temporary data directory, which
/// <see cref="RestartAsync"/> stops (flushing every log) and starts again over the same directory.
/// </summary>
internal sealed class TestBroker : IAsyncDisposable
{
    private readonly BrokerOptions _options;
    private KafkaServer _server;

    private TestBroker(BrokerOptions options, KafkaServer server)
    {
        _options = options;
        _server = server;
    }

    public string BootstrapServers => $"127.0.0.1:{_server.Port}";

    public string DataDirectory => _options.DataDirectory;

    public KafkaServer Server => _server;

    public static async Task<TestBroker> StartAsync(Func<BrokerOptions, BrokerOptions>? configure = null)
    {
        string directory = Path.Combine(Path.GetTempPath(), "kafka-broker-tests", Guid.NewGuid().ToString("N"));
        var options = new BrokerOptions { DataDirectory = directory, Port = 0, Log = TestContext.Progress };
        options = configure?.Invoke(options) ?? options;
        return new TestBroker(options, await KafkaServer.StartAsync(options));
    }

    public async Task RestartAsync()
    {
        await _server.DisposeAsync();
        _server = await KafkaServer.StartAsync(_options);
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        try
        {
            Directory.Delete(_options.DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory left behind is harmless.
        }
    }
}
