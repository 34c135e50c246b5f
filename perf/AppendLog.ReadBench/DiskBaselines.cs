using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace AppendLog.ReadBench;

/// <summary>
/// What the disk gives a plain reader of the same segment files, measured beside AppendLog in the same run:
/// O_DIRECT sequential reads written in C# (block size × requests in flight, on dedicated threads), and fio with libaio
/// when fio is installed. The seq mode prints AppendLog's rates against the best of these.
/// </summary>
internal static class DiskBaselines
{

    public static readonly int[] BlockSizes = [64 * 1024, 1024 * 1024];

    public static readonly int[] Depths = [1, 4, 8, 16];

    /// <summary>
    /// Reads every file front to back with O_DIRECT: <paramref name="depth"/> threads each take the next
    /// <paramref name="blockSize"/> block of the current file (so up to depth requests are in flight); MB/s.
    /// </summary>
    public static unsafe double DirectSequential(string[] files, int blockSize, int depth)
    {
        long total = 0;
        var clock = Stopwatch.StartNew();
        foreach (string path in files)
        {
            using SafeFileHandle handle = OpenDirect(path);
            EnsureDirect(handle, path);
            long length = RandomAccess.GetLength(handle);
            long blocks = (length + blockSize - 1) / blockSize;
            long next = -1;
            var threads = Enumerable.Range(0, depth).Select(_ => new Thread(() =>
            {
                void* buffer = NativeMemory.AlignedAlloc((nuint)blockSize, 4096);
                try
                {
                    var span = new Span<byte>(buffer, blockSize);
                    long b;
                    while ((b = Interlocked.Increment(ref next)) < blocks)
                    {
                        int n = RandomAccess.Read(handle, span, b * blockSize);
                        Interlocked.Add(ref total, n);
                    }
                }
                finally
                {
                    NativeMemory.AlignedFree(buffer);
                }
            }) { IsBackground = true }).ToArray();
            foreach (var t in threads)
            {
                t.Start();
            }

            foreach (var t in threads)
            {
                t.Join();
            }
        }

        return total / 1e6 / clock.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// open(2) with O_RDONLY | O_DIRECT | O_CLOEXEC through libc: .NET's FileOptions have no O_DIRECT on Linux (its
    /// no-buffering flag is ignored there, which would measure the page cache).
    /// </summary>
    private static SafeFileHandle OpenDirect(string path)
    {
        const int ReadOnly = 0, Direct = 0x4000, CloseOnExec = 0x80000; // x86_64 and arm64 values
        int fd = LibCOpen(path, ReadOnly | Direct | CloseOnExec);
        if (fd < 0)
        {
            throw new IOException($"open(O_DIRECT) of {path} failed: errno {Marshal.GetLastPInvokeError()}");
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int LibCOpen([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    /// <summary>Checks in /proc/self/fdinfo that the handle really has O_DIRECT (octal 040000 on x86_64 and arm64).</summary>
    private static void EnsureDirect(SafeFileHandle handle, string path)
    {
        string flagsLine = File.ReadLines($"/proc/self/fdinfo/{handle.DangerousGetHandle()}").First(l => l.StartsWith("flags:", StringComparison.Ordinal));
        long flags = Convert.ToInt64(flagsLine["flags:".Length..].Trim(), 8);
        if ((flags & 0x4000) == 0)
        {
            throw new InvalidOperationException($"{path} was not opened with O_DIRECT (fdinfo flags {flagsLine}): the baseline would measure the page cache");
        }
    }

    /// <summary>fio's sequential O_DIRECT read rate (libaio) of <paramref name="file"/>, in MB/s; null when fio is not installed or fails.</summary>
    public static double? Fio(string file, int blockSize, int depth)
    {
        try
        {
            var start = new ProcessStartInfo("fio")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (string a in new[]
            {
                "--name=seq", $"--filename={file}", "--rw=read", $"--bs={blockSize}", $"--iodepth={depth}",
                "--ioengine=libaio", "--direct=1", "--readonly", "--output-format=json",
            })
            {
                start.ArgumentList.Add(a);
            }

            using var fio = Process.Start(start);
            if (fio is null)
            {
                return null;
            }

            string output = fio.StandardOutput.ReadToEnd();
            fio.WaitForExit();
            if (fio.ExitCode != 0)
            {
                return null;
            }

            using var json = JsonDocument.Parse(output[output.IndexOf('{', StringComparison.Ordinal)..]);
            long bytesPerSecond = json.RootElement.GetProperty("jobs")[0].GetProperty("read").GetProperty("bw_bytes").GetInt64();
            return bytesPerSecond / 1e6;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // not installed
        }
    }

    public static string Label(int blockSize, int depth) =>
        (blockSize >= 1024 * 1024 ? $"{blockSize >> 20} MiB" : $"{blockSize >> 10} KiB") + " × " + depth.ToString(CultureInfo.InvariantCulture);
}
