using AppendLog.Segments;
using NUnit.Framework;

namespace AppendLog.Tests.Segments;

public sealed class SegmentStateTests
{
    private static readonly SegmentState[] s_all = Enum.GetValues<SegmentState>();

    private static readonly HashSet<(SegmentState, SegmentState)> s_life = new()
    {
        (SegmentState.Open, SegmentState.Sealing),
        (SegmentState.Open, SegmentState.Sealed),
        (SegmentState.Sealing, SegmentState.Sealed),
        (SegmentState.Sealing, SegmentState.Open),
        (SegmentState.Sealed, SegmentState.Open),
        (SegmentState.Open, SegmentState.Removed),
        (SegmentState.Sealed, SegmentState.Removed),
    };

    [Test]
    public void EveryTransitionOutsideTheLife_IsRefused_AndLeavesTheStateAsItWas()
    {
        foreach (var from in s_all)
        {
            foreach (var to in s_all)
            {
                var segment = At(from);
                if (s_life.Contains((from, to)))
                {
                    segment.MoveTo(to);
                    Assert.That(segment.State, Is.EqualTo(to));
                }
                else
                {
                    Assert.That(() => segment.MoveTo(to), Throws.Exception.With.Message.Contains("only along its life"), $"{from} → {to}");
                    Assert.That(segment.State, Is.EqualTo(from));
                }
            }
        }
    }

    [Test]
    public void TheFlagsReadTheState()
    {
        var segment = At(SegmentState.Sealing);
        Assert.That((segment.IsSealing, segment.IsSealed, segment.IsRemoved), Is.EqualTo((true, false, false)));
        segment.MoveTo(SegmentState.Sealed);
        Assert.That((segment.IsSealing, segment.IsSealed, segment.IsRemoved), Is.EqualTo((false, true, false)));
        segment.MoveTo(SegmentState.Removed);
        Assert.That((segment.IsSealing, segment.IsSealed, segment.IsRemoved), Is.EqualTo((false, false, true)));
    }

    /// <summary>A segment brought to <paramref name="state"/> along its life.</summary>
    private static Segment At(SegmentState state)
    {
        var segment = new Segment("00000000000000000000.log", 0, 0);
        var path = state switch
        {
            SegmentState.Open => [],
            SegmentState.Sealing => new[] { SegmentState.Sealing },
            SegmentState.Sealed => [SegmentState.Sealed],
            _ => [SegmentState.Removed],
        };
        foreach (var step in path)
        {
            segment.MoveTo(step);
        }

        return segment;
    }
}
