using System.Globalization;
using System.Runtime.InteropServices;
using KafkaBroker;

// A Kafka broker over AppendLog, single or one of a replicated cluster.
//   dotnet run --project samples/KafkaBroker -c Release --
//       [--data DIR] [--port 9092] [--host 127.0.0.1] [--no-auto-create]
//       [--node-id N --cluster ID=HOST:KAFKAPORT:RAFTPORT,... --topic NAME:PARTITIONS ...]
// Stop it with Ctrl+C or SIGTERM: every log is flushed and closed.
const string Usage = "Usage: [--data DIR] [--port N] [--host ADDR] [--no-auto-create] " +
    "[--node-id N --cluster ID=HOST:KAFKAPORT:RAFTPORT,... --topic NAME:PARTITIONS ...]";
string data = Path.Combine(Path.GetTempPath(), "appendlog-kafka");
int port = 9092;
string host = "127.0.0.1";
bool autoCreate = true;
int nodeId = 0;
List<ClusterNode>? cluster = null;
var topics = new Dictionary<string, int>(StringComparer.Ordinal);
try
{
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
            case "--node-id":
                nodeId = int.Parse(args[++i], CultureInfo.InvariantCulture);
                break;
            case "--cluster":
                cluster = [.. args[++i].Split(',').Select(ParseNode)];
                break;
            case "--topic":
                string[] topic = args[++i].Split(':');
                topics[topic[0]] = int.Parse(topic[1], CultureInfo.InvariantCulture);
                break;
            default:
                throw new FormatException($"Unknown argument '{args[i]}'.");
        }
    }
}
catch (Exception e) when (e is FormatException or IndexOutOfRangeException)
{
    Console.Error.WriteLine($"{e.Message} {Usage}");
    return 2;
}

var self = cluster?.FirstOrDefault(n => n.NodeId == nodeId);
var options = new BrokerOptions
{
    DataDirectory = data,
    Port = self?.KafkaPort ?? port,
    Host = self?.Host ?? host,
    AutoCreateTopics = autoCreate && cluster is null,
    Log = Console.Out,
    NodeId = nodeId,
    Cluster = cluster,
    ReplicatedTopics = cluster is null ? null : topics,
    MaximumBatchSize = cluster is null ? 1024 * 1024 + 12 : BrokerOptions.ReplicatedBatchSizeMax,
};
await using var server = await KafkaServer.StartAsync(options);
Console.WriteLine($"Kafka broker on {options.Host}:{server.Port}, data in {data}. Ctrl+C (SIGINT) or SIGTERM stops it.");
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

static ClusterNode ParseNode(string text)
{
    // ID=HOST:KAFKAPORT:RAFTPORT
    string[] idAndRest = text.Split('=');
    string[] parts = idAndRest[1].Split(':');
    return new ClusterNode(
        int.Parse(idAndRest[0], CultureInfo.InvariantCulture),
        parts[0],
        int.Parse(parts[1], CultureInfo.InvariantCulture),
        int.Parse(parts[2], CultureInfo.InvariantCulture));
}
