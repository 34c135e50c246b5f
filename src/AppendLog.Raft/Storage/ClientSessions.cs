using System.Buffers.Binary;
using AppendLog.Raft.Core;

namespace AppendLog.Raft.Storage;

/// <summary>What applying a session record does (see <see cref="ClientSessions.Check"/>).</summary>
internal enum SessionOutcome
{
    /// <summary>A new sequence of a live session: apply it and <see cref="ClientSessions.Record"/> the response.</summary>
    Apply,

    /// <summary>The session's latest sequence again (a retry): skip it; the response is the one recorded.</summary>
    Duplicate,

    /// <summary>The session is unknown (never opened, or evicted) or the sequence is older than its latest: skip it, fail the caller.</summary>
    Expired,
}

/// <summary>
/// The client session table of exactly-once proposals (Raft thesis §6.3), part of the replicated state: every member
/// applies the same records in the same order, so every member holds the same table, and it travels in snapshots.
/// A session is opened by a record whose offset becomes its id; each later record of the session carries a sequence
/// number. The table keeps, per session, the latest sequence applied and the state machine's response to it, so a retry
/// of that sequence (after a timeout or a leader change put the record in the log twice) is skipped and answered with
/// the recorded response. A client keeps one record in flight per session: a sequence older than the latest is refused.
/// <para>
/// Bounded (STYLE.md 2): at most <c>sessionsMax</c> sessions; opening one more evicts the session least recently used
/// (lowest offset of its opening or last applied record), deterministic on every member. A retry on an evicted session
/// is refused as expired rather than applied again, which is why sessions are opened explicitly: an id the table does not
/// know is always one that expired, never a new client.
/// </para>
/// </summary>
internal sealed class ClientSessions
{
    /// <summary>The most bytes of response kept per session (the state machine's answer to its latest sequence).</summary>
    public const int ResponseBytesMax = 64 * 1024;

    private readonly int _sessionsMax;
    private readonly Dictionary<long, Session> _sessions = [];

    public ClientSessions(int sessionsMax)
    {
        Invariant.Assert(sessionsMax >= 1, "the table holds at least one session");
        _sessionsMax = sessionsMax;
    }

    public int Count => _sessions.Count;

    /// <summary>Opens the session <paramref name="sessionId"/> (the offset of its opening record), evicting the least recently used when full.</summary>
    public void Open(long sessionId)
    {
        Invariant.Assert(!_sessions.ContainsKey(sessionId), "a session id (an offset) is opened once");
        if (_sessions.Count >= _sessionsMax)
        {
            var victim = _sessions.MinBy(s => s.Value.LastUsedOffset).Key;
            _sessions.Remove(victim);
        }

        _sessions[sessionId] = new Session { LastUsedOffset = sessionId };
    }

    /// <summary>What to do with the record of <paramref name="sessionId"/> numbered <paramref name="sequence"/>.</summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="sequence">The record's sequence number (from 1).</param>
    /// <param name="offset">For a duplicate: the offset of the record first applied.</param>
    /// <param name="response">For a duplicate: the response recorded then.</param>
    public SessionOutcome Check(long sessionId, long sequence, out long offset, out ReadOnlyMemory<byte> response)
    {
        offset = -1;
        response = ReadOnlyMemory<byte>.Empty;
        if (!_sessions.TryGetValue(sessionId, out var session) || sequence < session.LastSequence || sequence < 1)
        {
            return SessionOutcome.Expired;
        }

        if (sequence == session.LastSequence)
        {
            offset = session.LastOffset;
            response = session.Response;
            return SessionOutcome.Duplicate;
        }

        return SessionOutcome.Apply;
    }

    /// <summary>The record (<paramref name="sessionId"/>, <paramref name="sequence"/>) at <paramref name="offset"/> was applied with <paramref name="response"/>.</summary>
    /// <exception cref="InvalidOperationException">The response is longer than <see cref="ResponseBytesMax"/>.</exception>
    public void Record(long sessionId, long sequence, long offset, ReadOnlySpan<byte> response)
    {
        if (response.Length > ResponseBytesMax)
        {
            throw new InvalidOperationException(
                $"The state machine's response to a session record is {response.Length} bytes; at most {ResponseBytesMax} are kept.");
        }

        var session = _sessions[sessionId];
        Invariant.Assert(sequence > session.LastSequence, "a session's applied sequences increase");
        Invariant.Assert(offset > session.LastUsedOffset, "a session's records are applied in offset order");
        session.LastSequence = sequence;
        session.LastOffset = offset;
        session.LastUsedOffset = offset;
        session.Response = response.ToArray();
    }

    /// <summary>Bytes <see cref="WriteTo"/> writes.</summary>
    public int EncodedSize => 4 + _sessions.Values.Sum(s => SessionFixedBytes + s.Response.Length);

    /// <summary>Layout: count i32, then per session in id order: id, last sequence, last offset, last used offset (i64 each), response length i32, response.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteInt32LittleEndian(destination, _sessions.Count);
        var position = 4;
        foreach (var (id, s) in _sessions.OrderBy(s => s.Key))
        {
            BinaryPrimitives.WriteInt64LittleEndian(destination[position..], id);
            BinaryPrimitives.WriteInt64LittleEndian(destination[(position + 8)..], s.LastSequence);
            BinaryPrimitives.WriteInt64LittleEndian(destination[(position + 16)..], s.LastOffset);
            BinaryPrimitives.WriteInt64LittleEndian(destination[(position + 24)..], s.LastUsedOffset);
            BinaryPrimitives.WriteInt32LittleEndian(destination[(position + 32)..], s.Response.Length);
            s.Response.CopyTo(destination[(position + SessionFixedBytes)..]);
            position += SessionFixedBytes + s.Response.Length;
        }

        Invariant.Assert(position == EncodedSize, "the session table is written in exactly its computed size");
    }

    /// <summary>Replaces the table with one written by <see cref="WriteTo"/>; returns the bytes read.</summary>
    /// <exception cref="InvalidDataException">The bytes do not hold a session table.</exception>
    public int ReadFrom(ReadOnlySpan<byte> source)
    {
        _sessions.Clear();
        if (source.Length < 4)
        {
            throw new InvalidDataException("A snapshot's session table is truncated.");
        }

        var count = BinaryPrimitives.ReadInt32LittleEndian(source);
        var position = 4;
        for (var i = 0; i < count; i++)
        {
            if (source.Length - position < SessionFixedBytes)
            {
                throw new InvalidDataException("A snapshot's session table is truncated.");
            }

            var id = BinaryPrimitives.ReadInt64LittleEndian(source[position..]);
            var length = BinaryPrimitives.ReadInt32LittleEndian(source[(position + 32)..]);
            if (length < 0 || length > ResponseBytesMax || source.Length - position - SessionFixedBytes < length)
            {
                throw new InvalidDataException("A snapshot's session table holds a response of an impossible length.");
            }

            _sessions[id] = new Session
            {
                LastSequence = BinaryPrimitives.ReadInt64LittleEndian(source[(position + 8)..]),
                LastOffset = BinaryPrimitives.ReadInt64LittleEndian(source[(position + 16)..]),
                LastUsedOffset = BinaryPrimitives.ReadInt64LittleEndian(source[(position + 24)..]),
                Response = source.Slice(position + SessionFixedBytes, length).ToArray(),
            };
            position += SessionFixedBytes + length;
        }

        return position;
    }

    /// <summary>
    /// Replaces the table with one written by <see cref="WriteTo"/> at the start of <paramref name="source"/> (a snapshot
    /// image streamed from disk), reading no further than the table; returns the bytes read.
    /// </summary>
    /// <exception cref="InvalidDataException">The stream does not start with a session table.</exception>
    public int ReadFrom(Stream source)
    {
        using var table = new MemoryStream();
        var fixedBytes = new byte[SessionFixedBytes];
        ReadExactly(source, fixedBytes.AsSpan(0, 4));
        table.Write(fixedBytes, 0, 4);
        var count = BinaryPrimitives.ReadInt32LittleEndian(fixedBytes);
        if (count < 0)
        {
            throw new InvalidDataException("A snapshot's session table has a negative count.");
        }

        for (var i = 0; i < count; i++)
        {
            ReadExactly(source, fixedBytes);
            table.Write(fixedBytes);
            var length = BinaryPrimitives.ReadInt32LittleEndian(fixedBytes.AsSpan(32));
            if (length < 0 || length > ResponseBytesMax)
            {
                throw new InvalidDataException("A snapshot's session table holds a response of an impossible length.");
            }

            var response = new byte[length];
            ReadExactly(source, response);
            table.Write(response);
        }

        return ReadFrom(table.GetBuffer().AsSpan(0, (int)table.Length));
    }

    private static void ReadExactly(Stream source, Span<byte> destination)
    {
        try
        {
            source.ReadExactly(destination);
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("A snapshot's session table is truncated.", ex);
        }
    }

    public void Clear() => _sessions.Clear();

    private const int SessionFixedBytes = (4 * 8) + 4;

    private sealed class Session
    {
        /// <summary>The latest sequence applied (0: none yet).</summary>
        public long LastSequence { get; set; }

        /// <summary>The offset of the record of <see cref="LastSequence"/>.</summary>
        public long LastOffset { get; set; } = -1;

        /// <summary>The offset of the opening record or of the latest applied record: the eviction order.</summary>
        public long LastUsedOffset { get; set; }

        public byte[] Response { get; set; } = [];
    }
}
