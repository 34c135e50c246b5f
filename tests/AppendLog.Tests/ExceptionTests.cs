using NUnit.Framework;

namespace AppendLog.Tests;

public sealed class ExceptionTests
{
    [Test]
    public void LogCorruptedException_NamesFileAndPosition()
    {
        var ex = new LogCorruptedException("/data/00000000000000000000.log", 4096, "CRC mismatch");
        Assert.That(ex.FilePath, Is.EqualTo("/data/00000000000000000000.log"));
        Assert.That(ex.Position, Is.EqualTo(4096));
        Assert.That(ex.Message, Does.Contain("00000000000000000000.log").And.Contain("4096"));
    }
}
