using System.Diagnostics;
using System.Runtime.InteropServices;

namespace AppendLog.LoadGen.Measurement;

/// <summary>
/// Sleeps a producer thread until a timestamp. Thread.Sleep and timers round to whole milliseconds, which
/// would add up to 1 ms to every open-loop latency; nanosleep(2) wakes within the thread's timer slack
/// (50 µs by default on Linux; producers lower it to 1 µs with <see cref="TryTightenTimerSlack"/>). The null
/// engine's row shows what is left.
/// </summary>
internal static partial class PreciseSleep
{
    private const long NanosPerSecond = 1_000_000_000;

    /// <summary>prctl(2) option: the calling thread's timer slack in nanoseconds (linux/prctl.h).</summary>
    private const int PrSetTimerSlack = 29;

    /// <summary>
    /// Asks the kernel to wake this thread within 1 µs of the requested time instead of the default 50 µs
    /// slack, which would otherwise sit in every open-loop latency. Best effort: false if refused.
    /// </summary>
    public static bool TryTightenTimerSlack()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }
        return SetTimerSlack(PrSetTimerSlack, 1_000, 0, 0, 0) == 0;
    }

    public static void Until(long timestamp)
    {
        long remainingTicks = timestamp - Stopwatch.GetTimestamp();
        if (remainingTicks <= 0)
        {
            return;
        }
        TimeSpan remaining = Stopwatch.GetElapsedTime(0, remainingTicks);
        if (!OperatingSystem.IsLinux())
        {
            Thread.Sleep(remaining);
            return;
        }
        long nanos = remaining.Ticks * (NanosPerSecond / TimeSpan.TicksPerSecond);
        var request = new Timespec { Seconds = nanos / NanosPerSecond, Nanoseconds = nanos % NanosPerSecond };
        unsafe
        {
            // EINTR only shortens the sleep; the caller re-reads the clock and sends late, never early by much.
            _ = NanoSleep(&request, null);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    // prctl is variadic in C; the five integer arguments are passed in registers exactly as for a fixed
    // signature on x86_64 and arm64 Linux.
    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int SetTimerSlack(int option, nuint slackNanoseconds, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static unsafe partial int NanoSleep(Timespec* request, Timespec* remaining);
}
