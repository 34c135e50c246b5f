using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace AppendLog.KafkaBench;

/// <summary>
/// Blocks of consecutive TCP ports that were free when checked, for child processes that must know one another's
/// ports before they start (a Raft group's members). They are taken below the kernel's ephemeral range
/// (<c>/proc/sys/net/ipv4/ip_local_port_range</c>, 32768–60999 by default), where no outgoing connection can take one
/// between the check and the child's bind; the caller still retries, as another program may bind one meanwhile.
/// </summary>
internal static class Ports
{
    /// <summary>The lowest port used: above the registered services most machines run.</summary>
    private const int Lowest = 10_000;

    /// <summary>Blocks tried before giving up.</summary>
    private const int AttemptsMax = 200;

    /// <summary><paramref name="count"/> disjoint blocks of <paramref name="length"/> free ports; their first ports.</summary>
    /// <exception cref="InvalidOperationException">No such blocks were found.</exception>
    public static int[] FreeBlocks(int count, int length)
    {
        var (ephemeralLow, ephemeralHigh) = EphemeralRange();
        var ranges = new List<(int From, int To)>();
        if (ephemeralLow - Lowest >= count * length)
        {
            ranges.Add((Lowest, ephemeralLow)); // [From, To)
        }

        if (IPEndPoint.MaxPort - ephemeralHigh >= count * length)
        {
            ranges.Add((ephemeralHigh + 1, IPEndPoint.MaxPort + 1));
        }

        if (ranges.Count == 0)
        {
            throw new InvalidOperationException($"no room for {count} blocks of {length} ports outside the ephemeral range");
        }

        var blocks = new List<int>(count);
        for (int attempt = 0; attempt < AttemptsMax && blocks.Count < count; attempt++)
        {
            var (from, to) = ranges[Random.Shared.Next(ranges.Count)];
            int start = Random.Shared.Next(from, to - length + 1);
            bool overlaps = blocks.Exists(b => start < b + length && b < start + length);
            if (!overlaps && AllFree(start, length))
            {
                blocks.Add(start);
            }
        }

        return blocks.Count == count
            ? [.. blocks]
            : throw new InvalidOperationException($"found {blocks.Count} of {count} blocks of {length} free ports");
    }

    private static bool AllFree(int start, int length)
    {
        for (int port = start; port < start + length; port++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            }
            catch (SocketException)
            {
                return false;
            }
        }

        return true;
    }

    private static (int Low, int High) EphemeralRange()
    {
        const string path = "/proc/sys/net/ipv4/ip_local_port_range";
        if (File.Exists(path))
        {
            var parts = File.ReadAllText(path).Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2
                && int.TryParse(parts[0], CultureInfo.InvariantCulture, out int low)
                && int.TryParse(parts[1], CultureInfo.InvariantCulture, out int high))
            {
                return (low, high);
            }
        }

        return (32768, 60999); // Linux's default
    }
}
