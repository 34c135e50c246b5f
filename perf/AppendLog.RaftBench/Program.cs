using AppendLog.RaftBench;

// Replicated commits side by side: AppendLog.Raft's ReplicatedLog against DotNext.Net.Cluster's Raft, three processes
// on loopback each. See perf/README.md, section "Replication".
//   node    --engine appendlog|dotnext --id i --ports p1,p2,p3 --dir D [--election-min 150 --election-max 300]
//   run     --engine appendlog|dotnext|both [--clients 1,16,64] [--seconds 10] [--warmup 2] [--rounds 3] [--kills 2]
//           [--failover-clients 16] [--dir D] [--out PREFIX] [--env K=V,K=V (every member of both engines)]
//   profile --engine appendlog|dotnext [--clients 64] [--warmup 3] [--attach "timeout -s INT 10 strace -f -c -p {leader}"]
const string Usage = "usage: AppendLog.RaftBench node|run|profile --engine appendlog|dotnext|both ... (see perf/README.md, Replication)";
if (args.Length == 0)
{
    Console.Error.WriteLine(Usage);
    return 2;
}

try
{
    var options = new Options(args[1..]);
    return args[0] switch
    {
        "node" => await NodeHost.RunAsync(options),
        "run" => await Driver.RunAsync(options, args),
        "profile" => await Driver.ProfileAsync(options),
        _ => throw new ArgumentException(Usage),
    };
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine(ex.Message);
    return 2;
}
