namespace AppendLog;

/// <summary>How the records of a batch are compressed on disk (the batch header's attributes, as in Kafka).</summary>
public enum CompressionCodec
{
    /// <summary>No compression.</summary>
    None = 0,

    /// <summary>LZ4 (Kafka codec id 3, LZ4 frame format).</summary>
    Lz4 = 3,
}
