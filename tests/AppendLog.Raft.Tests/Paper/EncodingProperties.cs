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
    public bool AConfigChangeWithAnAddress_RoundTripsThroughItsVersion2Encoding(byte kind, ulong node, string? address)
    {
        // Lone surrogates have no UTF-8 form (they would come back as U+FFFD): an address is text, so leave them out.
        var text = new string((address ?? "").Where(c => !char.IsSurrogate(c)).ToArray());
        var change = new ConfigChange((ConfigChangeKind)kind, new RaftNodeId(node), text);
        var encoded = change.Encode();
        return ConfigChange.Decode(encoded) == change && encoded.Length > ConfigChange.EncodedBytes && encoded[ConfigChange.EncodedBytes] == 2;
    }

    [NUnit.Framework.Test]
    public void AVersion1ConfigChange_IsStillReadAsAChangeWithoutAnAddress()
    {
        // Written by the previous release: kind 2 (add learner), node 7, nothing else.
        byte[] version1 = [2, 7, 0, 0, 0, 0, 0, 0, 0];
        NUnit.Framework.Assert.That(ConfigChange.Decode(version1), NUnit.Framework.Is.EqualTo(new ConfigChange(ConfigChangeKind.AddLearner, new RaftNodeId(7))));
    }

    [NUnit.Framework.Test]
    public void AnAddressLongerThanTheLimit_IsRefusedWhenEncoded() =>
        NUnit.Framework.Assert.Throws<System.ArgumentException>(
            () => new ConfigChange(ConfigChangeKind.AddLearner, new RaftNodeId(7), new string('a', ConfigChange.AddressBytesMax + 1)).Encode());

    [NUnit.Framework.Test]
    public void AMembership_RecordsAnAddedMembersAddress_KeepsItOnPromotion_AndForgetsItOnRemoval()
    {
        var one = new RaftNodeId(1);
        var four = new RaftNodeId(4);
        var config = new ClusterConfig([one], [], [new(one, "10.0.0.1:7000")])
            .Apply(new ConfigChange(ConfigChangeKind.AddLearner, four, "10.0.0.4:7000"));
        NUnit.Framework.Assert.That(config.Addresses[four], NUnit.Framework.Is.EqualTo("10.0.0.4:7000"));
        config = config.Apply(new ConfigChange(ConfigChangeKind.AddVoter, four));
        NUnit.Framework.Assert.That(config.Addresses[four], NUnit.Framework.Is.EqualTo("10.0.0.4:7000"), "a promotion without an address keeps the learner's");
        config = config.Apply(new ConfigChange(ConfigChangeKind.Remove, four));
        NUnit.Framework.Assert.That(config.Addresses.Keys, NUnit.Framework.Is.EqualTo(new[] { one }));
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
