using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using AppendLog.Io;
using AppendLog.Io.Interop;
using NUnit.Framework;

namespace AppendLog.Tests.Io;

[TestFixture]
[Platform("Linux")]
[SupportedOSPlatform("linux")]
public sealed class LibCTests
{
    [Test]
    public void ToException_MapsEnospcToADiskFullStorageException()
    {
        IOException ex = LibC.ToException(Errno.ENOSPC, "fallocate", "/data/0.log");

        Assert.That(ex, Is.TypeOf<StorageIOException>());
        var storage = (StorageIOException)ex;
        Assert.That(storage.Errno, Is.EqualTo(Errno.ENOSPC));
        Assert.That(storage.IsDiskFull, Is.True);
        Assert.That(storage.HResult, Is.EqualTo(28));
        Assert.That(storage.Message, Does.Contain("fallocate").And.Contain("/data/0.log").And.Contain("ENOSPC"));
    }

    [Test]
    public void ToException_TreatsEdquotAsDiskFullButNotEio()
    {
        var quota = (StorageIOException)LibC.ToException(Errno.EDQUOT, "pwrite", "/x");
        var eio = (StorageIOException)LibC.ToException(Errno.EIO, "fdatasync", "/x");

        Assert.That(quota.IsDiskFull, Is.True);
        Assert.That(eio.IsDiskFull, Is.False);
        Assert.That(eio.HResult, Is.EqualTo(5));
    }

    [Test]
    public void ToException_MapsEnoentToFileNotFound()
    {
        IOException ex = LibC.ToException(Errno.ENOENT, "open", "/missing");

        Assert.That(ex, Is.TypeOf<FileNotFoundException>());
        Assert.That(((FileNotFoundException)ex).FileName, Is.EqualTo("/missing"));
    }

    [Test]
    public void ErrnoValues_MatchTheAsmGenericNumbers()
    {
        // include/uapi/asm-generic/errno-base.h and errno.h, shared by x86_64 and arm64.
        Assert.That((int)Errno.EIO, Is.EqualTo(5));
        Assert.That((int)Errno.EAGAIN, Is.EqualTo(11));
        Assert.That((int)Errno.EINVAL, Is.EqualTo(22));
        Assert.That((int)Errno.ENOSPC, Is.EqualTo(28));
        Assert.That((int)Errno.EOPNOTSUPP, Is.EqualTo(95));
        Assert.That((int)Errno.EDQUOT, Is.EqualTo(122));
    }

    [Test]
    public void OpenFlags_FollowTheProcessArchitecture()
    {
        Assume.That(LibC.IsSupported, "flag values are only defined for x86_64 and arm64");
        if (RuntimeInformation.ProcessArchitecture == Architecture.Arm64)
        {
            // arch/arm64/include/uapi/asm/fcntl.h: O_DIRECTORY 040000, O_DIRECT 0200000.
            Assert.That(LibC.O_DIRECT, Is.EqualTo(Convert.ToInt32("200000", 8)));
            Assert.That(LibC.O_DIRECTORY, Is.EqualTo(Convert.ToInt32("40000", 8)));
        }
        else
        {
            // include/uapi/asm-generic/fcntl.h: O_DIRECT 040000, O_DIRECTORY 0200000.
            Assert.That(LibC.O_DIRECT, Is.EqualTo(Convert.ToInt32("40000", 8)));
            Assert.That(LibC.O_DIRECTORY, Is.EqualTo(Convert.ToInt32("200000", 8)));
        }

        Assert.That(Convert.ToInt32("2000000", 8), Is.EqualTo(LibC.O_CLOEXEC), "O_CLOEXEC is octal 02000000");
        Assert.That(LibC.O_TMPFILE & LibC.O_DIRECTORY, Is.EqualTo(LibC.O_DIRECTORY));
    }
}
