using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using AppendLog.Io.Interop;
using static AppendLog.Io.Uring.IoUringNative;

namespace AppendLog.Io.Uring;

/// <summary>What <see cref="IoUringSupport.Probe"/> found.</summary>
/// <param name="IsSupported">A ring could be created and the kernel supports WRITE, WRITE_FIXED and FSYNC.</param>
/// <param name="Reason">Why io_uring is not used (the errno and its likely cause), or null when supported.</param>
/// <param name="SetupFlags">The optional setup flags the kernel accepted, when supported.</param>
internal readonly record struct IoUringProbeResult(bool IsSupported, string? Reason, IoUringSetupFlags SetupFlags);

/// <summary>
/// Whether this process can use io_uring for the write path, decided once by creating a small ring and asking the
/// kernel which opcodes it knows (IORING_REGISTER_PROBE). The answer is cached: it depends on the kernel and the
/// process's sandbox, not on a directory (unlike O_DIRECT, see <see cref="DirectIoProbe"/>).
/// </summary>
/// <remarks>
/// Reasons for "no", by errno of io_uring_setup: ENOSYS, a kernel built without io_uring (or older than 5.1);
/// EPERM, io_uring disabled by sysctl <c>kernel.io_uring_disabled</c> or refused by a seccomp profile (Docker's
/// default profile blocks the three calls); ENOMEM, the memlock limit. An opcode missing from the probe means a
/// kernel older than 5.6 (IORING_OP_WRITE).
/// </remarks>
internal static class IoUringSupport
{
    private static readonly Lazy<IoUringProbeResult> s_probe = new(ProbeOnce, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The cached answer for this process.</summary>
    public static IoUringProbeResult Probe() => s_probe.Value;

    private static IoUringProbeResult ProbeOnce()
    {
        if (!OperatingSystem.IsLinux())
        {
            return new IoUringProbeResult(false, "io_uring is a Linux interface", IoUringSetupFlags.None);
        }
        if (RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
        {
            return new IoUringProbeResult(false,
                $"the io_uring ABI is only declared here for x86_64 and arm64, not {RuntimeInformation.ProcessArchitecture}",
                IoUringSetupFlags.None);
        }
        return ProbeLinux();
    }

    [SupportedOSPlatform("linux")]
    private static unsafe IoUringProbeResult ProbeLinux()
    {
        IoUring ring;
        try
        {
            ring = new IoUring(entries: 2);
        }
        catch (IOException e)
        {
            string cause = (e as StorageIOException)?.Errno switch
            {
                Errno.ENOSYS => "the kernel has no io_uring",
                Errno.EPERM => "io_uring is disabled (sysctl kernel.io_uring_disabled) or blocked by a seccomp profile",
                Errno.ENOMEM => "the memlock limit is too low for a ring",
                _ => "io_uring_setup failed",
            };
            return new IoUringProbeResult(false, $"{cause}: {e.Message}", IoUringSetupFlags.None);
        }
        using (ring)
        {
            string? missing = MissingOpcode(ring);
            return missing is null
                ? new IoUringProbeResult(true, null, ring.SetupFlags)
                : new IoUringProbeResult(false, missing, IoUringSetupFlags.None);
        }
    }

    /// <summary>The first opcode the write path needs that the kernel does not support, or null.</summary>
    [SupportedOSPlatform("linux")]
    private static unsafe string? MissingOpcode(IoUring ring)
    {
        // struct io_uring_probe: last_op (u8), ops_len (u8), resv (u16), resv2 (u32 × 3), then ops_len entries of
        // struct io_uring_probe_op: op (u8), resv (u8), flags (u16), resv2 (u32). 16 + 8 × 256 bytes.
        const int opsMax = 256;
        byte* probe = stackalloc byte[16 + (8 * opsMax)];
        new Span<byte>(probe, 16 + (8 * opsMax)).Clear();
        if (ring.RegisterProbe(probe, opsMax) is { } failure)
        {
            return $"IORING_REGISTER_PROBE failed (kernel older than 5.6?): {failure}";
        }
        int opsLength = probe[1];
        foreach ((byte op, string name) in new[] { (OpWrite, "WRITE"), (OpWriteFixed, "WRITE_FIXED"), (OpFsync, "FSYNC") })
        {
            bool supported = op < opsLength && (*(ushort*)(probe + 16 + (8 * op) + 2) & ProbeOpSupported) != 0;
            if (!supported)
            {
                return $"the kernel does not support IORING_OP_{name}";
            }
        }
        return null;
    }
}
