using System.Runtime.InteropServices;

namespace AppendLog.LoadGen.Measurement;

/// <summary>The facts printed above every table, so a figure is never read without its machine.</summary>
internal sealed record MachineInfo(
    int ProcessorCount, string Kernel, string CpuModel, long MemoryTotalBytes, string FileSystem, string Device,
    string MountPoint, string DataDirectory, string Runtime, string DateUtc, string LoadAverageAtStart)
{
    public static MachineInfo Collect(string dataDirectory, TimeProvider time)
    {
        string fullPath = Path.GetFullPath(dataDirectory);
        (string device, string mountPoint, string fileSystem) = FindMount(fullPath);
        return new MachineInfo(
            Environment.ProcessorCount,
            ReadFirstLine("/proc/sys/kernel/osrelease") ?? RuntimeInformation.OSDescription,
            ReadField("/proc/cpuinfo", "model name") ?? RuntimeInformation.ProcessArchitecture.ToString(),
            ParseKib(ReadField("/proc/meminfo", "MemTotal")),
            fileSystem,
            device,
            mountPoint,
            fullPath,
            RuntimeInformation.FrameworkDescription,
            time.GetUtcNow().ToString("yyyy-MM-dd HH:mm:ss 'UTC'", System.Globalization.CultureInfo.InvariantCulture),
            ReadFirstLine("/proc/loadavg") ?? "n/a");
    }

    public string HeaderLine =>
        $"nproc {ProcessorCount}, {CpuModel}, {MemoryTotalBytes / (1L << 30)} GiB; kernel {Kernel}; " +
        $"--dir {DataDirectory} on {FileSystem} ({Device} at {MountPoint}); {Runtime}; {DateUtc}; " +
        $"loadavg at start {LoadAverageAtStart}";

    /// <summary>The mount whose mount point is the longest prefix of <paramref name="path"/> (/proc/self/mounts).</summary>
    private static (string Device, string MountPoint, string FileSystem) FindMount(string path)
    {
        (string, string, string) best = ("n/a", "n/a", "n/a");
        int bestLength = -1;
        try
        {
            foreach (string line in File.ReadLines("/proc/self/mounts"))
            {
                string[] fields = line.Split(' ');
                if (fields.Length < 3)
                {
                    continue;
                }
                string mountPoint = fields[1].Replace("\\040", " ", StringComparison.Ordinal);
                bool contains = mountPoint == "/"
                    || path == mountPoint
                    || path.StartsWith(mountPoint + "/", StringComparison.Ordinal);
                if (contains && mountPoint.Length >= bestLength)
                {
                    best = (fields[0], mountPoint, fields[2]);
                    bestLength = mountPoint.Length;
                }
            }
        }
        catch (IOException)
        {
        }
        return best;
    }

    private static string? ReadFirstLine(string path)
    {
        try
        {
            return File.ReadLines(path).FirstOrDefault()?.Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string? ReadField(string path, string key)
    {
        try
        {
            string? line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
            return line?[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static long ParseKib(string? text) =>
        text is not null && long.TryParse(text.Split(' ')[0], out long kib) ? kib * 1024 : 0;
}
