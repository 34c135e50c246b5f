namespace DiskProbe;

/// <summary>
/// The block device under a directory and its queue settings from sysfs. The mount is found in
/// /proc/self/mountinfo (longest mount point that prefixes the path; its third field is the device's major:minor),
/// the device in /sys/dev/block/MAJOR:MINOR; a partition's queue settings live in its parent device's queue/.
/// An overlay mount (containers) has no device of its own: the probe follows its upperdir= option once.
/// </summary>
internal sealed record BlockDevice(
    string MountPoint,
    string FileSystem,
    string Source,
    string? DeviceName,
    IReadOnlyDictionary<string, string> Queue,
    string? Note)
{
    /// <summary>The queue attributes the recommendation and the kernel suggestions read.</summary>
    public static readonly string[] QueueAttributes =
        ["scheduler", "nomerges", "write_cache", "fua", "logical_block_size", "physical_block_size", "rotational", "max_sectors_kb", "nr_requests"];

    public static BlockDevice Find(string directory)
    {
        string path = Path.GetFullPath(directory);
        var mount = FindMount(path);
        if (mount is null)
        {
            return new BlockDevice("?", "?", "?", null, new Dictionary<string, string>(), "/proc/self/mountinfo is not readable (not Linux?)");
        }

        var (mountPoint, device, fsType, source, superOptions) = mount.Value;
        string? note = null;
        if (fsType == "overlay" && Option(superOptions, "upperdir") is { } upper && FindMount(upper) is { } under)
        {
            note = $"overlay: measured files land in upperdir {upper}, on {under.Source} ({under.FsType})";
            device = under.Device;
        }

        string sys = $"/sys/dev/block/{device}";
        if (!Directory.Exists(sys))
        {
            return new BlockDevice(mountPoint, fsType, source, null, new Dictionary<string, string>(),
                note ?? $"device {device} is not a block device (e.g. tmpfs or a network file system): no queue settings");
        }

        string real = new DirectoryInfo(sys).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? sys;
        string name = Path.GetFileName(real);
        string queueDir = File.Exists(Path.Combine(real, "partition")) ? Path.Combine(Path.GetDirectoryName(real)!, "queue") : Path.Combine(real, "queue");
        var queue = new Dictionary<string, string>();
        foreach (string attribute in QueueAttributes)
        {
            string file = Path.Combine(queueDir, attribute);
            if (File.Exists(file))
            {
                queue[attribute] = File.ReadAllText(file).Trim();
            }
        }

        string slaves = Path.Combine(real, "slaves");
        if (Directory.Exists(slaves) && Directory.GetFileSystemEntries(slaves) is { Length: > 0 } under2)
        {
            note = (note is null ? "" : note + "; ") + $"stacked device over {string.Join(", ", under2.Select(Path.GetFileName))} (their queues may differ)";
        }

        return new BlockDevice(mountPoint, fsType, source, name, queue, note);
    }

    private static (string MountPoint, string Device, string FsType, string Source, string SuperOptions)? FindMount(string path)
    {
        const string mountinfo = "/proc/self/mountinfo";
        if (!File.Exists(mountinfo))
        {
            return null;
        }

        (string, string, string, string, string)? best = null;
        int bestLength = -1;
        foreach (string line in File.ReadLines(mountinfo))
        {
            string[] f = line.Split(' ');
            int dash = Array.IndexOf(f, "-");
            if (f.Length < 10 || dash < 6 || dash + 3 >= f.Length)
            {
                continue;
            }

            string mountPoint = Unescape(f[4]);
            bool contains = mountPoint == "/" || path == mountPoint || path.StartsWith(mountPoint + "/", StringComparison.Ordinal);
            if (contains && mountPoint.Length >= bestLength)
            {
                // >= : a later mount on the same point shadows the earlier one.
                best = (mountPoint, f[2], f[dash + 1], Unescape(f[dash + 2]), f[dash + 3]);
                bestLength = mountPoint.Length;
            }
        }

        return best;
    }

    private static string? Option(string options, string key) =>
        options.Split(',').Select(o => o.Split('=', 2)).FirstOrDefault(kv => kv.Length == 2 && kv[0] == key)?[1];

    /// <summary>mountinfo escapes space, tab, newline and backslash as octal (\040 …).</summary>
    private static string Unescape(string s) =>
        s.Replace("\\040", " ").Replace("\\011", "\t").Replace("\\012", "\n").Replace("\\134", "\\");

    public string Get(string attribute) => Queue.TryGetValue(attribute, out string? v) ? v : "n/a";
}
