namespace AppendLog.Io;

/// <summary>The storage the public API uses: the kernel's file system.</summary>
internal static class DefaultStorage
{
    public static IStorage Instance { get; } = new LinuxStorage();
}
