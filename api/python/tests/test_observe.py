"""Statistics and events: the event stream's framing without a daemon, then
stats(), events() and a background process's usage against a real one."""

from __future__ import annotations

import unittest

import _fixture
from _fixture import USER, new_id, wait_for

import sandboxd
from sandboxd.observe import EventStream


class _Conn:
    def __init__(self) -> None:
        self.closed = False

    def shutdown(self) -> None:
        self.closed = True


class _Resp:
    """A response whose body comes in the given chunks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def read1(self, n: int = -1) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        pass


class EventStreamTest(unittest.TestCase):
    def test_lines_split_anywhere_and_unknown_fields(self):
        conn = _Conn()
        stream = EventStream(conn, _Resp(
            b'{"seq":1,"time":"2025-06-01T12:00:00Z","type":"session_created","user_id":"u","session_id":"s"}\n{"seq":2,',
            b'"type":"exec_timed_out","command":"sleep 9","outcome":{"exit_code":137,"timed_out":true,"duration_ms":1000},"new":1}\n',
            b"\n",
        ))
        evs = list(stream)
        self.assertEqual([(e.seq, e.type) for e in evs], [(1, "session_created"), (2, "exec_timed_out")])
        self.assertEqual((evs[0].user_id, evs[0].session_id, evs[0].time.year), ("u", "s", 2025))
        self.assertEqual((evs[1].command, evs[1].outcome.exit_code, evs[1].outcome.timed_out), ("sleep 9", 137, True))
        self.assertIsNone(evs[0].outcome)
        self.assertTrue(conn.closed, "the end of the stream closes the connection")

    def test_a_dropped_stream_raises(self):
        stream = EventStream(_Conn(), _Resp(
            b'{"seq":1,"type":"session_created"}\n{"seq":7,"type":"dropped","reason":"fell behind"}\n',
        ))
        self.assertEqual(next(stream).type, "session_created")
        with self.assertRaises(sandboxd.EventsDropped) as cm:
            next(stream)
        self.assertEqual(cm.exception.event.seq, 7)
        self.assertIn("fell behind", str(cm.exception))
        self.assertRaises(StopIteration, next, stream)

    def test_a_bad_line_is_an_error(self):
        stream = EventStream(_Conn(), _Resp(b"not json\n"))
        self.assertRaises(sandboxd.InternalError, next, stream)


class DaemonTest(unittest.TestCase):
    """Against a real daemon (started for this class)."""

    @classmethod
    def setUpClass(cls):
        cls.d = _fixture.start_daemon()
        cls.c = cls.d.client

    @classmethod
    def tearDownClass(cls):
        _fixture.stop_daemon(cls.d)

    def session(self) -> str:
        sid = new_id("o")
        self.c.create_session(USER, sid)
        self.addCleanup(self._delete, sid)
        return sid

    def _delete(self, sid: str) -> None:
        try:
            self.c.delete_session(sid)
        except sandboxd.NotFound:
            pass

    def test_stats_react_to_work(self):
        sid = self.session()
        fresh = self.c.stats(sid)
        self.assertEqual((fresh.id, fresh.user_id, fresh.status, fresh.execs), (sid, USER, "running", 0))
        self.assertGreater(fresh.pids_limit, 0)
        self.assertIsNotNone(fresh.last_activity)
        # The test daemon enforces disk quotas (loop mode): the user's disk is reported.
        self.assertIsNotNone(fresh.disk)
        self.assertGreater(fresh.disk.limit_bytes, 0)
        self.assertGreater(fresh.disk.limit_files, 0)

        burn = self.c.exec(sid, command="python3 -c 'x = 0\nfor i in range(2 * 10**6): x += i'", timeout=60)
        self.assertEqual(burn.exit_code, 0, burn.stderr)
        alloc = self.c.exec(sid, command="python3 -c 'b = bytearray(64 * 1024 * 1024)'", timeout=60)
        self.assertEqual(alloc.exit_code, 0, alloc.stderr)
        st = self.c.stats(sid)
        self.assertEqual(st.execs, 2)
        self.assertGreaterEqual(st.cpu_ms, burn.cpu_ms, "the session's CPU time holds its commands'")
        self.assertGreater(burn.cpu_ms, 50, "a CPU burner's time is counted")
        self.assertGreater(st.memory_peak_bytes, 64 << 20, "an allocation raises the peak")
        self.assertGreater(st.last_activity, fresh.last_activity, "commands are activity")
        self.assertRaises(sandboxd.NotFound, self.c.stats, "no-such-session")

    def test_events_follow_a_sessions_life(self):
        sid = new_id("o")
        with self.c.events(session_id=sid, timeout=60) as events:
            self.c.create_session(USER, sid)
            self.addCleanup(self._delete, sid)
            res = self.c.exec(sid, command="sleep 5", timeout=1)
            self.assertTrue(res.timed_out)
            self.c.delete_session(sid)
            got = []
            for ev in events:
                self.assertEqual((ev.user_id, ev.session_id), (USER, sid))
                got.append(ev)
                if ev.type == "session_deleted":
                    break
        self.assertEqual([e.type for e in got], ["session_created", "exec_timed_out", "exec_finished", "session_deleted"])
        self.assertEqual(got[1].command, "sleep 5")
        self.assertTrue(got[1].outcome.timed_out)
        self.assertEqual(sorted(e.seq for e in got), [e.seq for e in got], "numbered in order")

    def test_background_process_reports_its_usage(self):
        sid = self.session()
        p = self.c.start_process(sid, command="python3 -c 'x = 0\nfor i in range(2 * 10**6): x += i'")
        ended = wait_for(lambda: [q for q in self.c.list_processes(sid) if q.id == p.id and q.status != "running"], timeout=60)
        self.assertTrue(ended, "the process ended")
        self.assertEqual(ended[0].exit_code, 0)
        self.assertGreater(ended[0].cpu_ms, 50)
        self.assertGreater(ended[0].peak_memory_bytes, 0)
        self.assertFalse(ended[0].oom_killed)


if __name__ == "__main__":
    unittest.main()
