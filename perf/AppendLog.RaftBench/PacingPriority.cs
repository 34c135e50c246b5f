using System.Runtime.InteropServices;

namespace AppendLog.RaftBench;

/// <summary>
/// Lifts the open loop's pacing thread above the machine's other work, so that it wakes at its intended send times even
/// when every core is busy. On a shared 2-core machine at load average 10 a normal thread woken from nanosleep(2) waited
/// for a core for milliseconds: the send lag's p99 was 4-11 ms, above the 5 ms bound being judged, at 1,000 sends/s. The
/// thread sleeps almost all the time and its sends are short (the engine's work happens on its own threads), so a
/// real-time policy costs the engines nothing but the moments of the sends themselves. Latency is still counted from the
/// intended send time, so whatever lag remains is still charged to the engine under test, as before.
/// Tried in order: SCHED_FIFO at priority 10 (needs CAP_SYS_NICE), nice −20 for this thread, nothing.
/// </summary>
internal static partial class PacingPriority
{
    /// <summary>sched(7): the first-in first-out real-time policy.</summary>
    private const int SchedFifo = 1;

    /// <summary>getpriority(2): "which" for a process, or with who = 0 on Linux, the calling thread.</summary>
    private const int PrioProcess = 0;

    /// <summary>Raises the calling thread; returns what it obtained ("SCHED_FIFO 10", "nice -20" or "normal").</summary>
    public static string TryRaiseCurrentThread()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "normal";
        }

        var param = 10;
        unsafe
        {
            // pid 0: the calling thread (sched_setscheduler(2) acts on a thread id on Linux).
            if (SchedSetScheduler(0, SchedFifo, &param) == 0)
            {
                return "SCHED_FIFO 10";
            }
        }

        return SetPriority(PrioProcess, 0, -20) == 0 ? "nice -20" : "normal";
    }

    [LibraryImport("libc", EntryPoint = "sched_setscheduler")]
    private static unsafe partial int SchedSetScheduler(int pid, int policy, int* param);

    [LibraryImport("libc", EntryPoint = "setpriority")]
    private static partial int SetPriority(int which, uint who, int priority);
}
