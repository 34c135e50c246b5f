using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace AppendLog.KafkaBroker.Tests;

/// <summary>
/// The broker as a child process (<c>dotnet KafkaBroker.dll --port 0</c>), so a test can SIGKILL it: no flush,
/// no close, only what AppendLog had made durable survives. The port is read from the broker's first line.
/// </summary>
internal sealed partial class BrokerProcess : IDisposable
{
    private readonly Process _process;

    private BrokerProcess(Process process, int port)
    {
        _process = process;
        BootstrapServers = $"127.0.0.1:{port}";
    }

    public string BootstrapServers { get; }

    public static Task<BrokerProcess> StartAsync(string dataDirectory, CancellationToken cancellationToken) =>
        StartAsync(dataDirectory, ["--port", "0"], cancellationToken);

    /// <summary>Starts <c>KafkaBroker.dll --data DIR</c> with more arguments (a replicated cluster's).</summary>
    public static async Task<BrokerProcess> StartAsync(
        string dataDirectory, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "KafkaBroker.dll"));
        info.ArgumentList.Add("--data");
        info.ArgumentList.Add(dataDirectory);
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the broker");
        try
        {
            while (await process.StandardOutput.ReadLineAsync(cancellationToken) is { } line)
            {
                if (ListeningLine().Match(line) is { Success: true } match)
                {
                    // Keep draining the output so the child never blocks on a full pipe.
                    _ = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
                    return new BrokerProcess(process, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture));
                }
            }
        }
        catch
        {
            process.Kill();
            process.Dispose();
            throw;
        }

        process.Dispose();
        throw new InvalidOperationException("the broker exited before listening");
    }

    /// <summary>SIGKILL, then wait for the process to be gone.</summary>
    public async Task KillAsync(CancellationToken cancellationToken)
    {
        _process.Kill(entireProcessTree: false);
        await _process.WaitForExitAsync(cancellationToken);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        _process.Dispose();
    }

    [GeneratedRegex(@"^Kafka broker on [^:]+:(\d+),")]
    private static partial Regex ListeningLine();
}
