namespace AppendLog;

/// <summary>When a log runs key compaction (see <see cref="SegmentedLog.CompactAsync"/>).</summary>
public enum CompactionPolicy
{
    /// <summary>Only when <see cref="SegmentedLog.CompactAsync"/> is called.</summary>
    Manual = 0,

    /// <summary>Also in the background after each segment is sealed (a roll is when new sealed data appears).</summary>
    AfterRoll = 1,
}
