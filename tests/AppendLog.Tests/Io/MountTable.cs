namespace AppendLog.Tests.Io;

/// <summary>Reads /proc/self/mounts to learn a path's file system type independently of the code under test.</summary>
internal static class MountTable
{
    public static string? FileSystemTypeOf(string path)
    {
        if (!File.Exists("/proc/self/mounts"))
        {
            return null;
        }

        string full = Path.GetFullPath(path);
        string? bestMount = null;
        string? bestType = null;
        foreach (string line in File.ReadLines("/proc/self/mounts"))
        {
            string[] fields = line.Split(' ');
            if (fields.Length < 3)
            {
                continue;
            }

            // Octal escapes (\040 for space) do not occur in the mount points we compare against.
            string mount = fields[1];
            bool covers = full == mount || full.StartsWith(mount.TrimEnd('/') + "/", StringComparison.Ordinal);
            if (covers && (bestMount is null || mount.Length >= bestMount.Length))
            {
                bestMount = mount;
                bestType = fields[2];
            }
        }

        return bestType;
    }
}
