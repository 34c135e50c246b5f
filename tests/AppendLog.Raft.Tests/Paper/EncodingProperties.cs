using AppendLog.Raft.Membership;
using AppendLog.Raft.Replication;
using FsCheck.NUnit;

namespace AppendLog.Raft.Tests.Paper;

// FsCheck supplies the arguments; NUnit's analyzer cannot see that.
#pragma warning disable NUnit1027

public sealed class EncodingProperties
{
    [Property]
    public bool AConfigChange_RoundTripsThroughItsEntryEncoding(byte kind, ulong node)
    {
        var change = new ConfigChange((ConfigChangeKind)kind, new RaftNodeId(node));
        return ConfigChange.Decode(change.Encode()) == change;
    }

    [Property]
    public bool TheInflightWindow_NeverHoldsMoreThanItsLimit_AndFreesInOrder(byte[] freeAfter)
    {
        var inflights = new Inflights(4);
        long last = 0;
        foreach (var step in freeAfter)
        {
            if (!inflights.IsFull)
            {
                inflights.Add(++last);
            }

            if (step % 3 == 0)
            {
                inflights.FreeThrough(last - (step % 5));
            }

            if (inflights.Count > 4)
            {
                return false;
            }
        }

        inflights.FreeThrough(last);
        return inflights.Count == 0;
    }
}
