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

    /// <summary>
    /// Context switches (voluntary + involuntary) of each live thread so far, by thread id, with the thread's
    /// name (/proc/self/task/*/status: Name, the first 15 bytes of the name). Threads that exit are missing, so
    /// this is for the breakdown by kind of thread; <see cref="ContextSwitches"/> is the total. Empty where
    /// /proc is not available.
    /// </summary>
    public static Dictionary<int, (string Name, long Switches)> ThreadContextSwitches()
    {
        var threads = new Dictionary<int, (string Name, long Switches)>();
        string[] tasks;
        try
        {
            tasks = Directory.GetDirectories("/proc/self/task");
        }
        catch (IOException)
        {
            return threads;
        }
        catch (UnauthorizedAccessException)
        {
            return threads;
        }
        foreach (string task in tasks)
        {
            if (!int.TryParse(Path.GetFileName(task), NumberStyles.None, CultureInfo.InvariantCulture, out int tid))
            {
                continue;
            }
            try
            {
                string name = "?";
                long switches = 0;
                foreach (string line in File.ReadLines(Path.Combine(task, "status")))
                {
                    if (line.StartsWith("Name:", StringComparison.Ordinal))
                    {
                        name = line["Name:".Length..].Trim();
                    }
                    else if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal)
                        || line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                    {
                        switches += long.Parse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim(),
                            CultureInfo.InvariantCulture);
                    }
                }
                threads[tid] = (name, switches);
            }
            catch (IOException)
            {
                // The thread exited between the listing and the read.
            }
        }
        return threads;
    }

    /// <summary>
    /// Context switches between two <see cref="ThreadContextSwitches"/> samples, summed by kind of thread: the
    /// name without a trailing number ("producer-3" → "producer"); threads born inside count from zero.
    /// </summary>
    public static Dictionary<string, long> ContextSwitchesByThreadKind(
        Dictionary<int, (string Name, long Switches)> before, Dictionary<int, (string Name, long Switches)> after)
    {
        var byKind = new Dictionary<string, long>();
        foreach ((int tid, (string name, long switches)) in after)
        {
            long start = before.TryGetValue(tid, out (string Name, long Switches) b) && b.Name == name ? b.Switches : 0;
            string kind = name.TrimEnd('0', '1', '2', '3', '4', '5', '6', '7', '8', '9').TrimEnd('-', ' ', '_');
            byKind[kind] = byKind.GetValueOrDefault(kind) + (switches - start);
        }
        return byKind;
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
