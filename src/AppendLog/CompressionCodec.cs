namespace AppendLog;

/// <summary>
/// How the records of a batch are compressed on disk: the codec id in bits 0-2 of the batch header's attributes, as in
/// Kafka (<c>CompressionType</c>). Every codec is read and written; batches from Kafka clients are read whatever codec
/// they carry.
/// </summary>
public enum CompressionCodec
{
    /// <summary>No compression.</summary>
    None = 0,

    /// <summary>GZIP (Kafka codec id 1): a gzip stream, level 6 as Kafka's producer writes by default.</summary>
    Gzip = 1,

    /// <summary>Snappy (Kafka codec id 2): written in the xerial block framing Kafka's Java producer writes; a raw
    /// snappy block (as librdkafka writes) is read too.</summary>
    Snappy = 2,

    /// <summary>LZ4 (Kafka codec id 3, LZ4 frame format).</summary>
    Lz4 = 3,

    /// <summary>ZSTD (Kafka codec id 4): zstd frames, level 3 as Kafka's producer writes by default.</summary>
    Zstd = 4,
}
