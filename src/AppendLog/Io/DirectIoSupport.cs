namespace AppendLog.Io;

/// <summary>What a directory's file system offers, as found by <see cref="DirectIoProbe.Probe"/>.</summary>
/// <param name="SupportsDirectIo">An O_DIRECT open and one aligned 4 KiB O_DIRECT write succeeded.</param>
/// <param name="IsTmpfs">The directory is on tmpfs: nothing there survives a reboot, whatever the mode.</param>
/// <param name="Reason">Why direct I/O is not available (the errno or the architecture), or null.</param>
/// <param name="IsConclusive">
/// False when the probe could not decide (ENOSPC, EACCES, ENOENT …: the directory is full, forbidden or not there
/// yet). Such an answer is not cached, and <see cref="DirectIoMode.Preferred"/> then tries O_DIRECT on the file
/// itself and falls back on EINVAL, so a full disk does not stop a log from being opened.
/// </param>
internal readonly record struct DirectIoSupport(bool SupportsDirectIo, bool IsTmpfs, string? Reason,
    bool IsConclusive = true);
