using System.Globalization;
using System.Runtime.InteropServices;
using KafkaBroker;

// A single-node Kafka broker over AppendLog.
//   dotnet run --project samples/KafkaBroker -c Release --
//       [--data DIR] [--port 9092] [--host 127.0.0.1] [--no-auto-create]
// Stop it with Ctrl+C or SIGTERM: every log is flushed and closed.
string data = Path.Combine(Path.GetTempPath(), "appendlog-kafka");
int port = 9092;
string host = "127.0.0.1";
bool autoCreate = true;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--data":
            data = args[++i];
            break;
        case "--port":
            port = int.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        case "--host":
            host = args[++i];
            break;
        case "--no-auto-create":
            autoCreate = false;
            break;
        default:
            Console.Error.WriteLine(
                $"Unknown argument '{args[i]}'. Usage: [--data DIR] [--port N] [--host ADDR] [--no-auto-create]");
            return 2;
    }
}

var options = new BrokerOptions
{
    DataDirectory = data,
    Port = port,
    Host = host,
    AutoCreateTopics = autoCreate,
    Log = Console.Out,
};
await using var server = await KafkaServer.StartAsync(options);
Console.WriteLine($"Kafka broker on {host}:{server.Port}, data in {data}. Ctrl+C (SIGINT) or SIGTERM stops it.");
var stopped = new TaskCompletionSource();
void Stop(PosixSignalContext context)
{
    context.Cancel = true;
    stopped.TrySetResult();
}

using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
await stopped.Task;
Console.WriteLine("Stopping: flushing and closing the logs.");
return 0;
