using AppendLog.Raft.Membership;
using AppendLog.Raft.Storage;
using AppendLog.Raft.Tests.Harness;
using NUnit.Framework;

namespace AppendLog.Raft.Tests.Storage;

/// <summary>The rows of <see cref="SnapshotReceiver"/>'s table, over the file receiver a ReplicatedLog uses.</summary>
public sealed class SnapshotReceiverTests
{
    private static readonly SnapshotMetadata Seven = new(7, 2, new ClusterConfig([new RaftNodeId(1)], []));
    private static readonly SnapshotMetadata Nine = new(9, 3, new ClusterConfig([new RaftNodeId(1)], []));

    private static byte[] Image(int length) => Enumerable.Range(0, length).Select(i => (byte)(i * 31)).ToArray();

    [Test]
    public void ChunksInOrder_AssembleTheImage_WhichIsPublishedWholeAndDurableUnderItsIndex()
    {
        using var dir = new TempDirectory();
        var receiver = new FileSnapshotReceiver(dir.Path);
        var image = Image(10);
        Assert.That(receiver.Receive(Seven, 10, 0, image.AsSpan(0, 4)), Is.EqualTo((4L, (SnapshotImage?)null)));
        Assert.That(File.Exists(Path.Combine(dir.Path, SnapshotFile.ReceiveFileName)), Is.True, "assembled in a temp file");
        Assert.That(File.Exists(SnapshotFile.DataPath(dir.Path, 7)), Is.False, "nothing is published before the image is whole");
        Assert.That(receiver.Receive(Seven, 10, 4, image.AsSpan(4, 4)).Received, Is.EqualTo(8));
        var (received, whole) = receiver.Receive(Seven, 10, 8, image.AsSpan(8));
        Assert.Multiple(() =>
        {
            Assert.That(received, Is.EqualTo(10));
            Assert.That(whole, Is.TypeOf<FileSnapshotImage>());
            Assert.That(whole!.ToArray(), Is.EqualTo(image));
            Assert.That(((FileSnapshotImage)whole).Path, Is.EqualTo(SnapshotFile.DataPath(dir.Path, 7)));
            Assert.That(File.Exists(Path.Combine(dir.Path, SnapshotFile.ReceiveFileName)), Is.False, "renamed into place");
        });
        ((FileSnapshotImage)whole!).Close();
    }

    /// <summary>
    /// An image half received when the member stops is taken up again at the next start from its last durable progress
    /// record (every syncEveryBytes; 4 here), not from zero: the leader's next chunk, even a restarted transfer's first, is
    /// answered with the bytes held, and the leader sends from there. A different sender's image starts over.
    /// </summary>
    [Test]
    public void AnImageHalfReceivedBeforeARestart_ResumesFromItsLastDurableProgress()
    {
        using var dir = new TempDirectory();
        var image = Image(16);
        var leader = new RaftNodeId(2);
        var first = new FileSnapshotReceiver(dir.Path, syncEveryBytes: 4);
        first.Receive(Seven, 16, 0, image.AsSpan(0, 4), leader);
        first.Receive(Seven, 16, 4, image.AsSpan(4, 4), leader);
        first.Receive(Seven, 16, 8, image.AsSpan(8, 2), leader);
        Assert.That(first.Received, Is.EqualTo(10));
        first.Close(); // the member stops: 8 bytes are recorded durable, 2 more were written after that record

        SnapshotFile.DeleteStaleImages(dir.Path, keepFromIndex: 0, atOpen: true); // as the adapter's open does
        var second = new FileSnapshotReceiver(dir.Path, syncEveryBytes: 4);
        Assert.That(second.Received, Is.EqualTo(8), "resumed from the last durable record");
        Assert.That(second.Receive(Seven, 16, 0, image.AsSpan(0, 4), leader).Received, Is.EqualTo(8), "a restarted transfer is told to go on from 8");
        Assert.That(second.Receive(Seven, 16, 8, image.AsSpan(8, 4), leader).Received, Is.EqualTo(12));
        var whole = second.Receive(Seven, 16, 12, image.AsSpan(12), leader).Image;
        Assert.That(whole!.ToArray(), Is.EqualTo(image));
        ((FileSnapshotImage)whole).Close();
        Assert.That(File.Exists(Path.Combine(dir.Path, SnapshotFile.ReceiveProgressFileName)), Is.False, "the record goes with the finished image");
    }

    [Test]
    public void AHalfReceivedImage_IsNotResumed_FromAnotherSender_OrWhenTheSnapshotOnDiskAlreadyCoversIt()
    {
        using var dir = new TempDirectory();
        var image = Image(16);
        var first = new FileSnapshotReceiver(dir.Path, syncEveryBytes: 4);
        first.Receive(Seven, 16, 0, image.AsSpan(0, 8), new RaftNodeId(2));
        first.Close();
        var second = new FileSnapshotReceiver(dir.Path, syncEveryBytes: 4);
        Assert.That(second.Receive(Seven, 16, 0, image.AsSpan(0, 4), new RaftNodeId(3)).Received, Is.EqualTo(4),
            "another leader's image of the same index may differ byte for byte: start over");
        second.Close();

        SnapshotFile.DeleteStaleImages(dir.Path, keepFromIndex: 7, atOpen: true);
        Assert.Multiple(() =>
        {
            Assert.That(File.Exists(Path.Combine(dir.Path, SnapshotFile.ReceiveFileName)), Is.False, "a snapshot at 7 is already installed");
            Assert.That(File.Exists(Path.Combine(dir.Path, SnapshotFile.ReceiveProgressFileName)), Is.False);
        });
    }

    [Test]
    public void AChunkPastAGap_IsRefused_WithTheBytesHeld_AndARepeatIsHarmless()
    {
        using var dir = new TempDirectory();
        var receiver = new FileSnapshotReceiver(dir.Path);
        var image = Image(12);
        receiver.Receive(Seven, 12, 0, image.AsSpan(0, 4));
        Assert.That(receiver.Receive(Seven, 12, 8, image.AsSpan(8, 4)), Is.EqualTo((4L, (SnapshotImage?)null)), "the chunk at 4 was lost: send from 4");
        Assert.That(receiver.Receive(Seven, 12, 0, image.AsSpan(0, 4)).Received, Is.EqualTo(4), "a duplicate of the first chunk");
        Assert.That(receiver.Receive(Seven, 12, 4, image.AsSpan(4, 4)).Received, Is.EqualTo(8));
        var whole = receiver.Receive(Seven, 12, 8, image.AsSpan(8, 4)).Image;
        Assert.That(whole!.ToArray(), Is.EqualTo(image));
        ((FileSnapshotImage)whole).Close();
    }

    [Test]
    public void AChunkOfAnotherSnapshot_StartsOverAtOffsetZero_OrAsksForTheStart()
    {
        using var dir = new TempDirectory();
        var receiver = new FileSnapshotReceiver(dir.Path);
        receiver.Receive(Seven, 12, 0, Image(12).AsSpan(0, 4));
        Assert.That(receiver.Receive(Nine, 8, 4, Image(8).AsSpan(4, 4)), Is.EqualTo((0L, (SnapshotImage?)null)), "mid-image of an unknown snapshot: send from 0");
        Assert.That(receiver.Receive(Seven, 12, 4, Image(12).AsSpan(4, 4)).Received, Is.EqualTo(8), "the first snapshot's part is still held");
        Assert.That(receiver.Receive(Nine, 8, 0, Image(8).AsSpan(0, 4)).Received, Is.EqualTo(4), "the start of another snapshot replaces it");
        Assert.That(receiver.Receive(Seven, 12, 8, Image(12).AsSpan(8, 4)), Is.EqualTo((0L, (SnapshotImage?)null)), "the first one is gone");
    }

    [Test]
    public void AChunkThatDoesNotFitItsImage_IsDamage()
    {
        using var dir = new TempDirectory();
        var receiver = new FileSnapshotReceiver(dir.Path);
        Assert.Throws<InvalidDataException>(() => receiver.Receive(Seven, 6, 4, Image(4)));
        Assert.Throws<InvalidDataException>(() => receiver.Receive(Seven, -1, 0, []));
    }

    [Test]
    public void AnImageOfZeroBytes_IsWholeAtOnce()
    {
        var receiver = new MemorySnapshotReceiver();
        var (received, image) = receiver.Receive(Seven, 0, 0, []);
        Assert.That(received, Is.Zero);
        Assert.That(image!.Length, Is.Zero);
    }

    [Test]
    public void AtOpen_HalfReceivedAndHalfTakenImages_AndImagesNoSnapshotNames_AreDeleted()
    {
        using var dir = new TempDirectory();
        foreach (var name in new[] { SnapshotFile.ReceiveFileName, SnapshotFile.TakeFileName, SnapshotFile.DataFileName(5), SnapshotFile.DataFileName(7), SnapshotFile.DataFileName(9) })
        {
            File.WriteAllBytes(Path.Combine(dir.Path, name), [1]);
        }

        SnapshotFile.DeleteStaleImages(dir.Path, 7, atOpen: true);
        Assert.That(Directory.GetFiles(dir.Path).Select(Path.GetFileName), Is.EquivalentTo(new[] { SnapshotFile.DataFileName(7) }));
    }

    [Test]
    public void AnImageFile_StaysReadableThroughItsHandle_AfterANewerSnapshotDeletesIt()
    {
        using var dir = new TempDirectory();
        var path = SnapshotFile.DataPath(dir.Path, 5);
        File.WriteAllBytes(path, Image(100));
        var image = new FileSnapshotImage(path);
        SnapshotFile.DeleteStaleImages(dir.Path, 6, atOpen: false);
        Assert.That(File.Exists(path), Is.False);
        using (var stream = image.OpenRead(10))
        {
            var tail = new byte[100];
            Assert.That(stream.Length, Is.EqualTo(90));
            Assert.That(stream.ReadAtLeast(tail, 90, throwOnEndOfStream: false), Is.EqualTo(90));
            Assert.That(tail.AsSpan(0, 90).ToArray(), Is.EqualTo(Image(100)[10..]));
        }

        image.Close();
    }
}
