using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace AppendLog.LoadGen.Measurement;

/// <summary>CPU time, context switches and peak resident memory of this process, read from the OS.</summary>
internal static partial class ProcessMeter
{
    /// <summary>getrusage(2) who: the calling process, all its threads, exited ones included.</summary>
    private const int RusageSelf = 0;

    /// <summary>
    /// Voluntary plus involuntary context switches of every thread of the process so far, threads that already
    /// exited included: getrusage(RUSAGE_SELF)'s ru_nvcsw + ru_nivcsw. (/proc/self/status counts the main thread
    /// only, and summing /proc/self/task/*/status misses threads that ended inside the window.) Null where
    /// getrusage is not available.
    /// </summary>
    public static long? ContextSwitches()
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            return null;
        }
        Rusage usage;
        unsafe
        {
            if (GetRusage(RusageSelf, &usage) != 0)
            {
                return null;
            }
        }
        return usage.VoluntaryContextSwitches + usage.InvoluntaryContextSwitches;
    }

    /// <summary>struct rusage of 64-bit Linux: two timevals, then fourteen longs (getrusage(2)).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Rusage
    {
        public long UserSeconds, UserMicros, SystemSeconds, SystemMicros;
        public long MaxRss, SharedText, UnsharedData, UnsharedStack, MinorFaults, MajorFaults, Swaps;
        public long BlockInputs, BlockOutputs, MessagesSent, MessagesReceived, Signals;
        public long VoluntaryContextSwitches, InvoluntaryContextSwitches;
    }

    [LibraryImport("libc", EntryPoint = "getrusage")]
    private static unsafe partial int GetRusage(int who, Rusage* usage);

    public static TimeSpan CpuTime()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime;
    }

    /// <summary>
    /// Resets the kernel's peak-RSS mark (VmHWM) so the next reading belongs to the next run only. Writing
    /// "5" to /proc/self/clear_refs does that (Linux ≥ 4.0, proc(5)). Returns false where it is not possible;
    /// the peak then covers the whole process so far and the report says so.
    /// </summary>
    public static bool TryResetPeakRss()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>VmHWM from /proc/self/status in bytes, or <see cref="Process.PeakWorkingSet64"/> elsewhere.</summary>
    public static long PeakRssBytes()
    {
        if (TryReadStatusKib("VmHWM:") is long kib)
        {
            return kib * 1024;
        }
        using var process = Process.GetCurrentProcess();
        return process.PeakWorkingSet64;
    }

    /// <summary>VmRSS from /proc/self/status in bytes, or <see cref="Process.WorkingSet64"/> elsewhere.</summary>
    public static long RssBytes()
    {
        if (TryReadStatusKib("VmRSS:") is long kib)
        {
            return kib * 1024;
        }
        using var process = Process.GetCurrentProcess();
        return process.WorkingSet64;
    }

    private static long? TryReadStatusKib(string key)
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith(key, StringComparison.Ordinal))
                {
                    // "VmHWM:	  123456 kB"
                    string kib = line[key.Length..].Trim().Split(' ')[0];
                    return long.Parse(kib, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }
        return null;
    }
}
