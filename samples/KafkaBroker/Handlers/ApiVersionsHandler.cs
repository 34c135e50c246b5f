using KafkaBroker.Protocol;
using KafkaBroker.Server;

namespace KafkaBroker.Handlers;

/// <summary>
/// ApiVersions v0–v3: the version ranges of <see cref="SupportedApis"/>. A version above 3 is answered in the v0
/// layout with UNSUPPORTED_VERSION and the list, which is how a client learns which version to retry with (KIP-511).
/// The response header is always v0 (no tagged fields), even for v3: the protocol guide's one exception.
/// </summary>
internal static class ApiVersionsHandler
{
    public static KafkaWriter Handle(RequestContext request)
    {
        var writer = new KafkaWriter(request.Header.CorrelationId);
        if (!SupportedApis.IsSupported(ApiKey.ApiVersions, request.Version))
        {
            writer.WriteError(ErrorCode.UnsupportedVersion);
            WriteList(writer, compact: false);
            return writer;
        }

        bool flexible = request.Version >= 3;
        if (flexible)
        {
            _ = request.Body.ReadCompactNullableString(); // client_software_name
            _ = request.Body.ReadCompactNullableString(); // client_software_version
            request.Body.SkipTaggedFields();
        }

        writer.WriteError(ErrorCode.None);
        WriteList(writer, flexible);
        if (request.Version >= 1)
        {
            writer.WriteInt32(0); // throttle_time_ms
        }

        if (flexible)
        {
            writer.WriteEmptyTaggedFields();
        }

        return writer;
    }

    private static void WriteList(KafkaWriter writer, bool compact)
    {
        if (compact)
        {
            writer.WriteCompactArrayCount(SupportedApis.All.Length);
        }
        else
        {
            writer.WriteArrayCount(SupportedApis.All.Length);
        }

        foreach (var (api, min, max) in SupportedApis.All)
        {
            writer.WriteInt16((short)api);
            writer.WriteInt16(min);
            writer.WriteInt16(max);
            if (compact)
            {
                writer.WriteEmptyTaggedFields();
            }
        }
    }
}
