using System.Diagnostics;
using System.Runtime.InteropServices;

namespace AppendLog.LoadGen.Measurement;

/// <summary>
/// Sleeps a producer thread until a timestamp. Thread.Sleep and timers round to whole milliseconds, which
/// would add up to 1 ms to every open-loop latency; nanosleep(2) wakes within the thread's timer slack
/// (50 µs by default on Linux, prctl(2) PR_SET_TIMERSLACK). The null engine's row shows what is left.
/// </summary>
internal static partial class PreciseSleep
{
    private const long NanosPerSecond = 1_000_000_000;

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

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static unsafe partial int NanoSleep(Timespec* request, Timespec* remaining);
}
