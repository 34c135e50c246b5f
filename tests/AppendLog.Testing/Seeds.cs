using System.Globalization;
using System.Runtime.CompilerServices;

namespace AppendLog.Testing;

/// <summary>
/// One seed per random test run, printed so that any failure can be replayed exactly (STYLE practice 16).
/// The seed comes from the <c>APPENDLOG_SEED</c> environment variable when it is set, else a fixed default, so
/// a plain <c>dotnet test</c> is deterministic and a soak run varies it from outside.
/// </summary>
internal static class Seeds
{
    /// <summary>The environment variable that overrides the seed.</summary>
    public const string EnvironmentVariable = "APPENDLOG_SEED";

    /// <summary>The seed used when the environment variable is not set.</summary>
    public const int DefaultSeed = 424242;

    /// <summary>Returns the run's seed and prints it with the command that replays it.</summary>
    /// <param name="testName">The calling test, filled in by the compiler.</param>
    /// <returns>The seed.</returns>
    public static int Get([CallerMemberName] string testName = "")
    {
        string? text = Environment.GetEnvironmentVariable(EnvironmentVariable);
        int seed = string.IsNullOrWhiteSpace(text)
            ? DefaultSeed
            : int.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);
        Console.WriteLine(
            $"seed={seed} (replay: {EnvironmentVariable}={seed} dotnet test --filter \"Name~{testName}\")");
        return seed;
    }

    /// <summary>
    /// The <paramref name="index"/>-th seed derived from <paramref name="seed"/>, for runs over many seeds.
    /// A fixed mix (SplitMix64's finalizer), not <see cref="HashCode"/>, which is randomized per process.
    /// </summary>
    /// <param name="seed">The run's seed.</param>
    /// <param name="index">Which derived seed.</param>
    /// <returns>A seed that depends only on the two inputs.</returns>
    public static int Derive(int seed, int index)
    {
        ulong z = unchecked(((ulong)(uint)seed << 32) + (uint)index + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return unchecked((int)(z ^ (z >> 31)));
    }
}
