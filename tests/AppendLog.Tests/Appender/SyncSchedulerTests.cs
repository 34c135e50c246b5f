using AppendLog.Appender;
using NUnit.Framework;

namespace AppendLog.Tests.Appender;

/// <summary>
/// The sync scheduler on its own: a model executor plays random scripts of events (appends, write completions in any
/// order, sync outcomes in any order, flush requests, timers, close) and checks every action against the durability
/// rules. The scheduler has no clock, no lock and no I/O, so a script replays exactly.
/// </summary>
[CancelAfter(60_000)]
public sealed class SyncSchedulerTests
{
    private const long Frequency = 1_000_000; // timestamps in microseconds

    [FsCheck.NUnit.Property(MaxTest = 400)]
    public void RandomScripts_KeepTheChain_AndNeverMakeDurableWhatNoSuccessfulSyncCovers(byte[] script, bool debounced, bool manual, bool oneSync)
    {
        var policy = manual ? FlushPolicy.Manual : debounced ? FlushPolicy.Debounced(TimeSpan.FromMilliseconds(2), 64 * 1024) : FlushPolicy.GroupCommit;
        var model = new Model(policy, oneSync ? 1 : 2, start: 4096);
        foreach (byte b in script)
        {
            model.Play(b);
        }

        model.DrainAndClose();
    }

    [Test]
    public void ALaterSyncSucceedingBeforeAnEarlierOneFails_NeverMovesDurability()
    {
        var s = new SyncScheduler(FlushPolicy.GroupCommit, syncsInFlightMax: 2, Frequency, position: 0);
        s.Accepted(100, now: 0);
        var cut = s.Next(0);
        Assert.That(cut.Kind, Is.EqualTo(SyncActionKind.CutChunk));
        s.WrittenTo(100);
        var first = s.Next(0);
        Assert.That(first.Kind, Is.EqualTo(SyncActionKind.StartSync));
        Assert.That(s.Next(0).Kind, Is.EqualTo(SyncActionKind.None));

        s.Accepted(300, now: 1);
        Assert.That(s.Next(1).Kind, Is.EqualTo(SyncActionKind.CutChunk), "as much is pending as the first sync carries");
        s.WrittenTo(300);
        var second = s.Next(1);
        Assert.That(second.Kind, Is.EqualTo(SyncActionKind.StartSync));
        Assert.That(second.Position, Is.EqualTo(300));

        s.SyncCompleted(second.SyncId, succeeded: true);
        Assert.That(s.Next(2).Kind, Is.EqualTo(SyncActionKind.None), "the earlier sync still runs");
        Assert.That(s.Durable, Is.EqualTo(0));

        s.SyncCompleted(first.SyncId, succeeded: false);
        Assert.That(s.Next(3).Kind, Is.EqualTo(SyncActionKind.None), "after a failed sync nothing is durable any more");
        Assert.That(s.Durable, Is.EqualTo(0));
        Assert.That(s.IsFaulted, Is.True);
        s.Accepted(400, now: 4);
        s.RequestFlush();
        Assert.That(s.Next(4).Kind, Is.EqualTo(SyncActionKind.None), "a faulted log starts nothing");
    }

    [Test]
    public void SyncsRetireInStartOrder_ALaterSuccessWaitsForTheEarlierOne()
    {
        var s = new SyncScheduler(FlushPolicy.GroupCommit, syncsInFlightMax: 2, Frequency, position: 0);
        s.Accepted(100, 0);
        s.Next(0);
        s.WrittenTo(100);
        var first = s.Next(0);
        s.Accepted(250, 1);
        s.Next(1);
        s.WrittenTo(250);
        var second = s.Next(1);
        s.SyncCompleted(second.SyncId, succeeded: true);
        Assert.That(s.Next(2).Kind, Is.EqualTo(SyncActionKind.None));

        s.SyncCompleted(first.SyncId, succeeded: true);
        Assert.That(s.Next(3), Is.EqualTo(new SyncAction(SyncActionKind.Durable, 100)));
        Assert.That(s.Next(3), Is.EqualTo(new SyncAction(SyncActionKind.Durable, 250)));
        Assert.That(s.Next(3).Kind, Is.EqualTo(SyncActionKind.None));
    }

    [Test]
    public void ASyncStartsOnlyOnceEveryByteOfItsTargetIsWritten()
    {
        var s = new SyncScheduler(FlushPolicy.GroupCommit, syncsInFlightMax: 2, Frequency, position: 0);
        s.Accepted(8192, 0);
        Assert.That(s.Next(0), Is.EqualTo(new SyncAction(SyncActionKind.CutChunk, 8192)));
        s.WrittenTo(4096);
        Assert.That(s.Next(0).Kind, Is.EqualTo(SyncActionKind.None), "half the target is written");
        Assert.That(s.FlushWaitingForWrites, Is.True);
        s.WrittenTo(8192);
        Assert.That(s.Next(0).Kind, Is.EqualTo(SyncActionKind.StartSync));
    }

    [Test]
    public void Debounced_WaitsForTheDelay_ThenSyncs_OrAtOnceWhenEnoughIsPending()
    {
        var s = new SyncScheduler(FlushPolicy.Debounced(TimeSpan.FromMilliseconds(5), 8192), 2, Frequency, position: 0);
        s.Accepted(100, now: 1_000);
        var arm = s.Next(1_000);
        Assert.That(arm.Kind, Is.EqualTo(SyncActionKind.ArmTimer));
        Assert.That(arm.Delay, Is.EqualTo(TimeSpan.FromMilliseconds(5)));
        s.Accepted(200, now: 3_000);
        Assert.That(s.Next(3_000).Kind, Is.EqualTo(SyncActionKind.None), "the timer is armed already");
        s.TimerFired();
        Assert.That(s.Next(4_000), Is.EqualTo(new SyncAction(SyncActionKind.ArmTimer, Delay: TimeSpan.FromMilliseconds(2))), "a timer that fired early is armed again for the rest");
        s.TimerFired();
        Assert.That(s.Next(6_000), Is.EqualTo(new SyncAction(SyncActionKind.CutChunk, 200)));

        s.WrittenTo(200);
        var sync = s.Next(6_000);
        s.SyncCompleted(sync.SyncId, true);
        Assert.That(s.Next(6_100).Kind, Is.EqualTo(SyncActionKind.Durable));
        s.Accepted(200 + 8192, now: 6_200);
        Assert.That(s.Next(6_200).Kind, Is.EqualTo(SyncActionKind.CutChunk), "pending bytes reached the policy's maximum");
    }

    [Test]
    public void Manual_SyncsOnlyWhenAsked_OrAtClose()
    {
        var s = new SyncScheduler(FlushPolicy.Manual, 2, Frequency, position: 0);
        s.Accepted(100, 0);
        Assert.That(s.Next(0).Kind, Is.EqualTo(SyncActionKind.None));
        s.RequestFlush();
        Assert.That(s.Next(0).Kind, Is.EqualTo(SyncActionKind.CutChunk));
        s.WrittenTo(100);
        var sync = s.Next(0);
        s.SyncCompleted(sync.SyncId, true);
        Assert.That(s.Next(0).Kind, Is.EqualTo(SyncActionKind.Durable));
        s.Accepted(200, 1);
        Assert.That(s.Next(1).Kind, Is.EqualTo(SyncActionKind.None));
        s.Close();
        Assert.That(s.Next(1).Kind, Is.EqualTo(SyncActionKind.CutChunk));
    }

    [Test]
    public void TheChainIsAsserted_WhereItMoves()
    {
        var s = new SyncScheduler(FlushPolicy.GroupCommit, 2, Frequency, position: 100);
        Assert.That(() => s.Accepted(50, 0), Throws.Exception.With.Message.Contains("head never goes backwards"));
        s.Accepted(200, 0);
        Assert.That(() => s.WrittenTo(300), Throws.Exception.With.Message.Contains("written ≤ head"));
        s.WrittenTo(150);
        Assert.That(() => s.WrittenTo(120), Throws.Exception.With.Message.Contains("written never goes backwards"));
        Assert.That(() => s.SyncCompleted(99, true), Throws.Exception.With.Message.Contains("was started"));
    }

    /// <summary>
    /// Plays the executor: keeps writes (completing in any order; written is their contiguous prefix) and syncs
    /// (completing in any order, sometimes failing), and checks each action the scheduler asks for.
    /// </summary>
    private sealed class Model
    {
        private readonly SyncScheduler _s;
        private readonly int _syncsMax;
        private readonly List<(long Start, long End, bool Done)> _writes = new();
        private readonly List<(long Id, long Target, long WrittenAtStart)> _running = new();
        private readonly List<(long Id, long Target, bool Ok)> _startOrder = new();
        private long _head;
        private long _dispatched;
        private long _now;
        private long _durable;
        private bool _timerArmed;
        private bool _failed;

        public Model(FlushPolicy policy, int syncsMax, long start)
        {
            _s = new SyncScheduler(policy, syncsMax, Frequency, start);
            _syncsMax = syncsMax;
            _head = _dispatched = _durable = start;
        }

        public void Play(byte b)
        {
            _now += 1 + (b & 0x7) * 300;
            switch (b % 8)
            {
                case 0:
                case 1:
                case 2:
                    _head += 1 + (b * 37 % 5000);
                    _s.Accepted(_head, _now);
                    if (b % 3 == 0 && _head - _dispatched >= 4096)
                    {
                        Dispatch(); // a full chunk goes out on its own (out-of-order dispatch)
                    }

                    break;
                case 3:
                case 4:
                    CompleteWrite(b);
                    break;
                case 5:
                    CompleteSync(b, ok: b % 29 != 5);
                    break;
                case 6:
                    _s.RequestFlush();
                    break;
                case 7:
                    if (_timerArmed)
                    {
                        _timerArmed = false;
                        _s.TimerFired();
                    }

                    break;
            }

            Drive();
        }

        public void DrainAndClose()
        {
            _s.Close();
            for (int round = 0; round < 10_000; round++)
            {
                Drive();
                if (_writes.Count > 0)
                {
                    CompleteWrite(0);
                }
                else if (_running.Count > 0)
                {
                    CompleteSync(0, ok: true);
                }
                else
                {
                    break;
                }
            }

            Drive();
            if (_failed)
            {
                Assert.That(_s.Durable, Is.LessThanOrEqualTo(_s.Written));
                return;
            }

            Assert.That(_s.Durable, Is.EqualTo(_head), "closing makes everything accepted durable");
            Assert.That(_s.IsQuiet, Is.True);
        }

        private void Dispatch()
        {
            if (_dispatched < _head)
            {
                _writes.Add((_dispatched, _head, false));
                _dispatched = _head;
            }
        }

        private void CompleteWrite(byte b)
        {
            if (_writes.Count == 0)
            {
                return;
            }

            int i = b % _writes.Count;
            var w = _writes[i];
            _writes[i] = (w.Start, w.End, true);
            long written = _s.Written;
            while (_writes.Count > 0 && _writes[0].Done)
            {
                written = _writes[0].End;
                _writes.RemoveAt(0);
            }

            if (!_failed)
            {
                _s.WrittenTo(written);
            }
        }

        private void CompleteSync(byte b, bool ok)
        {
            if (_running.Count == 0)
            {
                return;
            }

            int i = b % _running.Count;
            var sync = _running[i];
            _running.RemoveAt(i);
            int k = _startOrder.FindIndex(x => x.Id == sync.Id);
            _startOrder[k] = (sync.Id, sync.Target, ok);
            _failed |= !ok;
            _s.SyncCompleted(sync.Id, ok);
        }

        private void Drive()
        {
            for (int guard = 0; guard < 100; guard++)
            {
                var a = _s.Next(_now);
                Assert.That(_s.Durable, Is.LessThanOrEqualTo(_s.Written), "durable ≤ written");
                Assert.That(_s.Written, Is.LessThanOrEqualTo(_s.Head), "written ≤ head");
                switch (a.Kind)
                {
                    case SyncActionKind.None:
                        return;
                    case SyncActionKind.CutChunk:
                        Assert.That(_failed, Is.False, "a faulted log starts no flush");
                        Assert.That(a.Position, Is.EqualTo(_head), "a flush covers the head");
                        Dispatch();
                        break;
                    case SyncActionKind.StartSync:
                        Assert.That(_failed, Is.False, "a faulted log starts no sync");
                        Assert.That(a.Position, Is.LessThanOrEqualTo(_s.Written), "a sync starts once its target is written");
                        Assert.That(_running.Count, Is.LessThan(_syncsMax), "no more syncs than allowed");
                        _running.Add((a.SyncId, a.Position, _s.Written));
                        _startOrder.Add((a.SyncId, a.Position, false));
                        break;
                    case SyncActionKind.ArmTimer:
                        Assert.That(a.Delay, Is.GreaterThan(TimeSpan.Zero));
                        _timerArmed = true;
                        break;
                    case SyncActionKind.Durable:
                        Assert.That(a.Position, Is.GreaterThan(_durable), "durable only moves forward");
                        Assert.That(_failed, Is.False, "nothing becomes durable after a failed sync");
                        int k = _startOrder.FindIndex(x => x.Target == a.Position);
                        Assert.That(k, Is.GreaterThanOrEqualTo(0), "durable moves to a started sync's target");
                        for (int j = 0; j <= k; j++)
                        {
                            Assert.That(_startOrder[j].Ok, Is.True, "every sync started up to this one succeeded");
                        }

                        _startOrder.RemoveRange(0, k + 1);
                        _durable = a.Position;
                        break;
                }
            }

            Assert.Fail("the scheduler kept asking for actions without an event");
        }
    }
}
