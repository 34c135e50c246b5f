// A generic-host app that gets its LogManager from dependency injection: options bound from appsettings.json
// ("AppendLog" section), AppendLog's log lines through the host's logging, every log flushed and closed on shutdown.
//
//   dotnet run -c Release --project samples/HostedLog
using AppendLog;
using AppendLog.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddAppendLog(builder.Configuration.GetSection("AppendLog"));
builder.Services.AddHostedService<OrderWriter>();
using var host = builder.Build();
await host.RunAsync();

/// <summary>Appends orders to two partitions for three seconds, reads one back, then stops the application.</summary>
internal sealed class OrderWriter(LogManager logs, IHostApplicationLifetime lifetime, ILogger<OrderWriter> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var partitions = new[] { await logs.GetOrOpenAsync("orders-0", stoppingToken), await logs.GetOrOpenAsync("orders-1", stoppingToken) };
        long start0 = partitions[0].EndOffset;
        int written = 0;
        using var window = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        window.CancelAfter(TimeSpan.FromSeconds(3));
        try
        {
            while (!window.IsCancellationRequested)
            {
                var log = partitions[written % 2];
                await log.AppendAsync(new AppendRecord(BitConverter.GetBytes(written), System.Text.Encoding.UTF8.GetBytes($"order {written}")), CancellationToken.None);
                written++;
            }
        }
        finally
        {
            int read = 0;
            await foreach (var _ in partitions[0].ReadAsync(start0, CancellationToken.None))
            {
                read++;
            }

            logger.LogInformation("Appended {Written} durable orders to {Root}; read back {Read} from orders-0", written, logs.RootDirectory, read);
            lifetime.StopApplication();
        }
    }
}
