namespace KafkaBroker;

/// <summary>
/// One broker of a replicated cluster (<see cref="BrokerOptions.Cluster"/>): its id, where Kafka clients reach it, and
/// the first of its Raft ports (partition <i>i</i> of the cluster's topics, counted over the topics in name order,
/// replicates on <see cref="RaftPortBase"/> + <i>i</i>).
/// </summary>
/// <param name="NodeId">The broker id in Metadata and the Raft member id, 1 to 7 (the id is also folded into the
/// producer ids this broker hands out, so two brokers never give the same one).</param>
/// <param name="Host">The host name or address Kafka clients and the other brokers reach it on.</param>
/// <param name="KafkaPort">Its Kafka port.</param>
/// <param name="RaftPortBase">Its first Raft port.</param>
public sealed record ClusterNode(int NodeId, string Host, int KafkaPort, int RaftPortBase);
