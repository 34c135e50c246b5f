namespace AppendLog.Io;

/// <summary>What a directory's file system offers, as found by <see cref="DirectIoProbe.Probe"/>.</summary>
/// <param name="SupportsDirectIo">An O_DIRECT open and one aligned 4 KiB O_DIRECT write succeeded.</param>
/// <param name="IsTmpfs">The directory is on tmpfs: nothing there survives a reboot, whatever the mode.</param>
/// <param name="Reason">Why direct I/O is not available (the errno or the architecture), or null.</param>
internal readonly record struct DirectIoSupport(bool SupportsDirectIo, bool IsTmpfs, string? Reason);
