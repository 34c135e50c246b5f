namespace KafkaBroker.Protocol;

/// <summary>
/// The exact version ranges this broker implements, advertised by ApiVersions. Only non-flexible versions, except
/// ApiVersions v3: librdkafka sends ApiVersions v3 first. The lower bounds are what librdkafka's feature map needs
/// (MsgVer2: Produce ≥ 3 and Fetch ≥ 4; ZSTD: Produce 7 and Fetch 10; balanced consumer: OffsetCommit 1–2,
/// OffsetFetch 1; time-based offsets: ListOffsets 1; idempotent producer: InitProducerId 0). The upper bounds
/// stop before each API's first flexible version, so every version advertised is one whose fields the handlers
/// read and write.
/// </summary>
internal static class SupportedApis
{
    /// <summary>(api, lowest, highest) in api-key order.</summary>
    public static readonly (ApiKey Api, short Min, short Max)[] All =
    [
        (ApiKey.Produce, 3, 7),
        (ApiKey.Fetch, 4, 11),
        (ApiKey.ListOffsets, 1, 5),
        (ApiKey.Metadata, 1, 8),
        (ApiKey.OffsetCommit, 2, 7),
        (ApiKey.OffsetFetch, 1, 5),
        (ApiKey.FindCoordinator, 0, 2),
        (ApiKey.JoinGroup, 0, 5),
        (ApiKey.Heartbeat, 0, 3),
        (ApiKey.LeaveGroup, 0, 2),
        (ApiKey.SyncGroup, 0, 3),
        (ApiKey.ApiVersions, 0, 3),
        (ApiKey.CreateTopics, 0, 4),
        (ApiKey.InitProducerId, 0, 1),
    ];

    public static bool IsSupported(ApiKey api, short version)
    {
        foreach (var (key, min, max) in All)
        {
            if (key == api)
            {
                return version >= min && version <= max;
            }
        }

        return false;
    }

    /// <summary>
    /// True for flexible versions (request header v2): of the advertised ranges, only ApiVersions v3.
    /// </summary>
    public static bool IsFlexible(ApiKey api, short version) => api == ApiKey.ApiVersions && version >= 3;
}
