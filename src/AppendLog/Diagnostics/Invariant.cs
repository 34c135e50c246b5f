using System.Diagnostics.CodeAnalysis;

namespace AppendLog.Diagnostics;

/// <summary>
/// Always-on assertions for conditions that only a bug can break (STYLE practice 1). A failed assertion
/// throws <see cref="AppendLogInvariantException"/>, which the log catches only at its boundary, where it
/// faults the log. Keep each check cheap and single: two asserts, not one <c>&amp;&amp;</c>.
/// </summary>
internal static class Invariant
{
    /// <summary>Throws <see cref="AppendLogInvariantException"/> when <paramref name="condition"/> is false.</summary>
    /// <param name="condition">The condition that must hold.</param>
    /// <param name="message">What was expected; pass a constant on hot paths so nothing is allocated.</param>
    /// <exception cref="AppendLogInvariantException">The condition is false.</exception>
    public static void Assert([DoesNotReturnIf(false)] bool condition, string message)
    {
        if (!condition)
        {
            Fail(message);
        }
    }

    /// <summary>Throws <see cref="AppendLogInvariantException"/> unconditionally.</summary>
    /// <param name="message">What was expected.</param>
    /// <exception cref="AppendLogInvariantException">Always.</exception>
    [DoesNotReturn]
    public static void Fail(string message) => throw new AppendLogInvariantException(message);
}

/// <summary>
/// An internal invariant of AppendLog does not hold: a bug in AppendLog, never an environment problem.
/// The log treats it as fatal to the instance (it faults), never as a condition to retry.
/// </summary>
internal sealed class AppendLogInvariantException : Exception
{
    /// <summary>Creates the exception with the violated expectation as its message.</summary>
    /// <param name="message">What was expected.</param>
    public AppendLogInvariantException(string message)
        : base("AppendLog invariant violated (this is a bug in AppendLog): " + message)
    {
    }
}
