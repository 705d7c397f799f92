"""Unit tests of the history database."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from appliance.history import SCHEMA_VERSION, History, integrity_check

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def hist(tmp_path):
    h = History(tmp_path / "history.sqlite3")
    yield h
    h.close()


def start(h, **kw):
    args = dict(program="standard", level="high", planned_min=30, setpoint_c=40.0, started_at=T0)
    args.update(kw)
    return h.session_started(**args)


def test_new_database_is_migrated_and_in_wal(tmp_path):
    h = History(tmp_path / "h.sqlite3")
    assert h.schema_version == SCHEMA_VERSION
    h.close()
    db = sqlite3.connect(tmp_path / "h.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "session_trace", "faults", "counters", "audit", "settings"} <= tables
    db.close()
    # reopening does not migrate again
    h = History(tmp_path / "h.sqlite3")
    assert h.counters() == {"sessions": 0, "heater_hours": 0.0, "relay_cycles": 0}
    h.close()


def test_migrations_from_an_empty_file(tmp_path):
    path = tmp_path / "h.sqlite3"
    path.touch()
    h = History(path)
    assert h.schema_version == SCHEMA_VERSION
    h.close()


def test_newer_or_corrupt_database_is_moved_aside(tmp_path):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    h = History(path)
    assert h.schema_version == SCHEMA_VERSION
    h.close()
    assert list(tmp_path.glob("h.sqlite3.corrupt-*"))


def test_session_round_trip(hist):
    sid = start(hist)
    for i in range(5):
        hist.session_trace(sid, t_s=i * 5.0, mat_c=30.0 + i, setpoint_c=40.0, duty=0.5)
    hist.session_ended(sid, ended_at=T0 + timedelta(minutes=30), outcome="done", reason=None,
                       actual_min=30.0, max_c=40.2, mean_c=39.1, energy_wh=55.0)
    rows, total = hist.sessions(10, 0)
    assert total == 1
    assert rows[0] == {"id": sid, "started_at": "2026-11-26T09:00:00+00:00",
                       "ended_at": "2026-11-26T09:30:00+00:00", "program": "standard",
                       "level": "high", "planned_min": 30.0, "actual_min": 30.0,
                       "outcome": "done", "reason": None, "max_c": 40.2, "mean_c": 39.1,
                       "energy_wh": 55.0}
    assert hist.trace(sid) == [[i * 5.0, 30.0 + i, 40.0] for i in range(5)]
    assert hist.trace(999) == []
    hist.session_trace(999, t_s=1, mat_c=1, setpoint_c=1, duty=0)     # ignored, no error


def test_mark_interrupted(tmp_path):
    path = tmp_path / "h.sqlite3"
    h = History(path)
    done = start(h)
    h.session_ended(done, ended_at=T0, outcome="stopped", reason="x", actual_min=1,
                    max_c=None, mean_c=None, energy_wh=0)
    open_id = start(h, started_at=T0 + timedelta(hours=1))
    for i in range(4):
        h.session_trace(open_id, t_s=60.0 * i, mat_c=35.0 + i, setpoint_c=40.0, duty=1.0)
    # the process dies: no session_ended, no close()
    h._db.close()
    h = History(path)
    now = T0 + timedelta(hours=5)
    marked = h.mark_interrupted(now)
    assert [m["id"] for m in marked] == [open_id]
    m = marked[0]
    assert m["outcome"] == "interrupted" and m["actual_min"] == 3.0
    assert m["ended_at"] == "2026-11-26T10:03:00+00:00" and m["max_c"] == 38.0
    assert "restart" in m["reason"]
    assert h.mark_interrupted(now) == []
    rows, _ = h.sessions(10, 0)
    assert {r["id"]: r["outcome"] for r in rows} == {done: "stopped", open_id: "interrupted"}
    h.close()


def test_faults_and_ack(hist):
    a = hist.fault_raised(code="rtd_open", priority="medium", at=T0, readings={"raw": 32767})
    b = hist.fault_raised(code="rtd_open", priority="medium", at=T0 + timedelta(seconds=5),
                          readings={})
    hist.fault_acknowledged("rtd_open", at=T0 + timedelta(minutes=1), by="clinic")
    rows, total = hist.faults(10, 0)
    assert total == 2 and [r["id"] for r in rows] == [b, a]
    assert rows[0]["acknowledged_by"] == "clinic" and rows[1]["acknowledged_by"] is None
    assert rows[1]["readings"] == {"raw": 32767}
    hist.fault_acknowledged("rtd_open", at=T0 + timedelta(minutes=2), by="user")
    hist.fault_acknowledged("nothing", at=T0, by="user")
    rows, _ = hist.faults(10, 0)
    assert [r["acknowledged_by"] for r in rows] == ["clinic", "user"]


def test_counters_settings_audit(hist):
    hist.add_counters(sessions=1, heater_s=1800, relay_cycles=2)
    hist.add_counters(heater_s=1800)
    assert hist.counters() == {"sessions": 1, "heater_hours": 1.0, "relay_cycles": 2}
    assert hist.get_setting("volume", 5) == 5
    hist.set_setting("volume", 7)
    hist.set_setting("levels", {"high": 40.0})
    assert hist.get_setting("volume") == 7 and hist.get_setting("levels") == {"high": 40.0}
    hist.audit(at=T0, role="clinic", action="settings.set", details={"changes": {"volume": 7}})
    entries, total = hist.audit_log(10, 0)
    assert total == 1 and entries[0]["role"] == "clinic"
    assert entries[0]["details"] == {"changes": {"volume": 7}}


def test_prune_keeps_under_max_bytes(tmp_path):
    path = tmp_path / "h.sqlite3"
    max_bytes = 400 * 1024
    h = History(path, max_bytes=max_bytes)
    ids = []
    for n in range(60):
        sid = start(h, started_at=T0 + timedelta(hours=n))
        h._db.execute("BEGIN")
        h._db.executemany(
            "INSERT INTO session_trace(session_id, t_s, mat_c, setpoint_c, duty) "
            "VALUES (?, ?, ?, ?, ?)", [(sid, i * 5.0, 38.123456, 40.0, 0.5) for i in range(360)])
        h._db.execute("COMMIT")
        h.session_ended(sid, ended_at=T0 + timedelta(hours=n, minutes=30), outcome="done",
                        reason=None, actual_min=30, max_c=40.0, mean_c=39.0, energy_wh=50)
        ids.append(sid)
        # session_ended prunes by itself (the WAL is bounded separately by checkpoints)
        assert path.stat().st_size <= max_bytes * 1.1
    h.prune()
    assert h.file_bytes() <= max_bytes
    # the newest traces survive, the oldest went first; the sessions themselves survive
    assert h.trace(ids[-1]) and not h.trace(ids[0])
    assert h.sessions(1000, 0)[1] == 60
    h.close()
    assert integrity_check(path) == "ok"


def test_prune_deletes_oldest_sessions_when_traces_are_gone(tmp_path):
    h = History(tmp_path / "h.sqlite3", max_bytes=256 * 1024)
    for n in range(4000):
        sid = start(h, started_at=T0 + timedelta(minutes=n))
        h._db.execute("UPDATE sessions SET ended_at=?, outcome='done', reason=? WHERE id=?",
                      (T0.isoformat(), "r" * 50, sid))
    h.prune()
    rows, total = h.sessions(5000, 0)
    assert 0 < total < 4000 and rows[0]["id"] == 4000
    assert h.file_bytes() <= 256 * 1024
    h.close()
