using AppendLog.Appender;
using AppendLog.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using NUnit.Framework;

namespace AppendLog.Tests.Diagnostics;

/// <summary>What the log says through <see cref="LogOptions.LoggerFactory"/>, and that it says nothing without one.</summary>
public sealed class LogMessagesTests
{
    private static (ILoggerFactory Factory, FakeLogCollector Collector) FakeFactory()
    {
        var provider = new FakeLoggerProvider();
        return (new SingleProviderFactory(provider), provider.Collector);
    }

    [Test]
    public async Task Open_WithPreferredMode_WhereODirectIsRefused_WarnsOnceWithTheReason()
    {
        var (factory, logs) = FakeFactory();
        var storage = new SimulatedStorage(1, supportsDirectIo: false);
        var options = new LogOptions { Directory = "/sim/log", DirectIo = DirectIoMode.Preferred, LoggerFactory = factory };
        await using (var log = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default))
        {
            Assert.That(log.IsDirectIo, Is.False);
        }

        var fallback = logs.GetSnapshot().Where(r => r.Id.Name == "DirectIoFallback").ToList();
        Assert.That(fallback, Has.Count.EqualTo(1));
        Assert.That(fallback[0].Level, Is.EqualTo(LogLevel.Warning));
        Assert.That(fallback[0].Category, Is.EqualTo(AppendLog.Diagnostics.Log.Category));
        Assert.That(fallback[0].Message, Does.Contain("EINVAL").And.Contain("/sim/log"));
    }

    [Test]
    public async Task Open_WithDisabledMode_DoesNotWarnAboutAFallbackThatWasAsked()
    {
        var (factory, logs) = FakeFactory();
        var storage = new SimulatedStorage(1, supportsDirectIo: false);
        var options = new LogOptions { Directory = "/sim/log", DirectIo = DirectIoMode.Disabled, LoggerFactory = factory };
        await using (await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default))
        {
        }

        Assert.That(logs.GetSnapshot().Where(r => r.Id.Name == "DirectIoFallback"), Is.Empty);
    }

    [Test]
    public async Task Open_OnTmpfs_Warns()
    {
        var (factory, logs) = FakeFactory();
        var storage = new SimulatedStorage(1) { IsTmpfs = true };
        await using (await SegmentedLog.OpenAsync(new LogOptions { Directory = "/sim/log", LoggerFactory = factory }, storage, IoWorkers.Shared, default))
        {
        }

        Assert.That(logs.GetSnapshot().Select(r => r.Id.Name), Does.Contain("Tmpfs"));
    }

    [Test]
    public async Task FailedSync_LogsTheFaultOnce_AsCritical()
    {
        var (factory, logs) = FakeFactory();
        var storage = new SimulatedStorage(3);
        var options = new LogOptions { Directory = "/sim/log", LoggerFactory = factory };
        await using var log = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default);
        storage.InjectError(StorageOperation.SyncData, 1);
        Assert.ThrowsAsync<LogFaultedException>(async () => await log.AppendAsync(new byte[10]));
        Assert.ThrowsAsync<LogFaultedException>(async () => await log.AppendAsync(new byte[10]));

        var faulted = logs.GetSnapshot().Where(r => r.Id.Name == "Faulted").ToList();
        Assert.That(faulted, Has.Count.EqualTo(1));
        Assert.That(faulted[0].Level, Is.EqualTo(LogLevel.Critical));
        Assert.That(faulted[0].Exception, Is.InstanceOf<IOException>());
    }

    [Test]
    public async Task DiskFull_IsLoggedAsAWarning()
    {
        var (factory, logs) = FakeFactory();
        var storage = new SimulatedStorage(4);
        var options = new LogOptions { Directory = "/sim/log", LoggerFactory = factory, PreallocationMinimumStep = 64 * 1024, PreallocationMaximumStep = 64 * 1024 };
        await using var log = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default);
        storage.DiskFull = true;
        Assert.ThrowsAsync<LogDiskFullException>(async () =>
        {
            for (int i = 0; i < 100; i++)
            {
                await log.AppendAsync(new byte[4000]);
            }
        });

        Assert.That(logs.GetSnapshot().Where(r => r.Id.Name == "DiskFull").Select(r => r.Level), Does.Contain(LogLevel.Warning));
    }

    [Test]
    public async Task Open_OfACorruptSealedSegment_LogsCorruptionFound_AndStillThrows()
    {
        var (factory, logs) = FakeFactory();
        var storage = new SimulatedStorage(5);
        var options = new LogOptions { Directory = "/sim/log", LoggerFactory = factory, SegmentSize = 1024 * 1024, MaximumBatchSize = 64 * 1024 };
        await using (var log = await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default))
        {
            for (int i = 0; i < 20; i++)
            {
                await log.AppendAsync(new byte[60 * 1024]);
            }

            Assert.That(log.SegmentCount, Is.GreaterThan(1));
        }

        // Case B of the recovery table: a sealed file whose length differs from its index.
        string first = storage.ListFiles("/sim/log").Where(f => f.EndsWith(".log", StringComparison.Ordinal)).Order(StringComparer.Ordinal).First();
        using (var file = storage.Open(Path.Combine("/sim/log", first), AppendLog.Io.FileCreation.OpenExisting, DirectIoMode.Disabled))
        {
            file.Truncate(file.Length - 4096);
        }

        Assert.ThrowsAsync<LogCorruptedException>(async () => await SegmentedLog.OpenAsync(options, storage, IoWorkers.Shared, default));
        var found = logs.GetSnapshot().Where(r => r.Id.Name == "CorruptionFound").ToList();
        Assert.That(found, Has.Count.EqualTo(1));
        Assert.That(found[0].Level, Is.EqualTo(LogLevel.Error));
    }

    /// <summary>A factory over one provider (the tests reference only the logging abstractions).</summary>
    private sealed class SingleProviderFactory(ILoggerProvider provider) : ILoggerFactory
    {
        public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

        public ILogger CreateLogger(string categoryName) => provider.CreateLogger(categoryName);

        public void Dispose() => provider.Dispose();
    }
}
