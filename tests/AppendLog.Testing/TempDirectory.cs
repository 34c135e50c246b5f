namespace AppendLog.Testing;

/// <summary>
/// A fresh, uniquely named directory under the system temp path (<see cref="System.IO.Path.GetTempPath"/>),
/// deleted with its contents on dispose. Whether O_DIRECT works there depends on the file system: tests ask
/// the probe rather than assume (tmpfs, overlay and network file systems differ).
/// </summary>
internal sealed class TempDirectory : IDisposable
{
    /// <summary>Creates the directory.</summary>
    /// <param name="prefix">A readable prefix for the directory name.</param>
    public TempDirectory(string prefix = "appendlog-test")
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        _ = Directory.CreateDirectory(Path);
    }

    /// <summary>The directory's absolute path.</summary>
    public string Path { get; }

    /// <summary>A path inside the directory.</summary>
    /// <param name="name">A file name.</param>
    /// <returns>The combined path.</returns>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Deletes the directory and everything in it. Idempotent.</summary>
    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}
