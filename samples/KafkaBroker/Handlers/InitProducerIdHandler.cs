using AppendLog;
using KafkaBroker.Protocol;
using KafkaBroker.Server;

namespace KafkaBroker.Handlers;

/// <summary>
/// InitProducerId v0–v1 for idempotent producers: a producer id never handed out before (see
/// <see cref="Storage.OffsetStore.AllocateProducerIdAsync"/>) with epoch 0. Transactional ids are refused with
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED: this broker has no transaction coordinator.
/// </summary>
internal static class InitProducerIdHandler
{
    public static async Task<KafkaWriter?> HandleAsync(RequestContext request)
    {
        string? transactionalId = request.Body.ReadNullableString();
        _ = request.Body.ReadInt32(); // transaction_timeout_ms

        var error = ErrorCode.None;
        long producerId = -1;
        if (transactionalId is not null)
        {
            error = ErrorCode.TransactionalIdAuthorizationFailed;
        }
        else
        {
            try
            {
                producerId = await request.Broker.Offsets.AllocateProducerIdAsync(request.Broker.Stopping)
                    .ConfigureAwait(false);
                if (request.Broker.Options.IsReplicated)
                {
                    // Each broker allocates from its own offsets log: the node id (1 to 7) in the low three bits
                    // keeps two brokers from handing out the same producer id.
                    producerId = (producerId << 3) | (long)request.Broker.Options.NodeId;
                }
            }
            catch (Exception e) when (e is LogFaultedException or LogDiskFullException)
            {
                error = ErrorCode.KafkaStorageError;
            }
        }

        var w = new KafkaWriter(request.Header.CorrelationId);
        w.WriteInt32(0); // throttle_time_ms
        w.WriteError(error);
        w.WriteInt64(producerId);
        w.WriteInt16(error == ErrorCode.None ? (short)0 : (short)-1);
        return w;
    }
}
