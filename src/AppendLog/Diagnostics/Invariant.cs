using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace AppendLog.Diagnostics;

/// <summary>
/// Always-on assertions for cheap, safety-critical invariants (watermark chains, alignment, state
/// transitions). A failed check throws <see cref="AppendLogInvariantException"/>, which the log treats as
/// fatal: it faults the instance (never <c>Environment.FailFast</c>, we live in someone else's process).
/// Use <c>Debug.Assert</c> only for checks too costly for release builds.
/// </summary>
internal static class Invariant
{
    /// <summary>Throws <see cref="AppendLogInvariantException"/> when <paramref name="condition"/> is false.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Assert(
        [DoesNotReturnIf(false)] bool condition,
        string message,
        [CallerArgumentExpression(nameof(condition))] string? expression = null)
    {
        if (!condition)
        {
            Fail(message, expression);
        }
    }

    /// <summary>Throws <see cref="AppendLogInvariantException"/> unconditionally.</summary>
    [DoesNotReturn]
    public static void Fail(string message) => throw new AppendLogInvariantException(message);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Fail(string message, string? expression) =>
        throw new AppendLogInvariantException($"{message} ({expression})");
}

/// <summary>A broken internal invariant: a bug in AppendLog. The log instance that saw it is faulted.</summary>
internal sealed class AppendLogInvariantException : Exception
{
    public AppendLogInvariantException(string message)
        : base("AppendLog invariant violated (this is a bug in AppendLog): " + message)
    {
    }
}
