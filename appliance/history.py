"""Treatment history, faults, counters, audit log and persisted settings in SQLite.

One file, ``history.sqlite3`` in the data directory. Synchronous :mod:`sqlite3`, used only from the
appliance's event-loop thread; writes are rare (session start and end, faults, acknowledgments,
settings, one trace point every 5 s), so none of them is worth a thread.

Durability: WAL mode. Ordinary writes use ``synchronous=NORMAL`` (a process crash loses nothing,
a power cut may lose the last trace points); session ends, faults, acknowledgments, audit entries
and settings are committed with ``synchronous=FULL`` so they survive a power cut as soon as the
call returns.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` is applied in order, each
in its own transaction. No patient names (or any other personal data) are stored anywhere.

Robustness: a write that fails (disk full, I/O error) is logged and swallowed — recording history
must never stop the control loop. A database that cannot be opened or fails ``quick_check`` is
moved aside (``history.sqlite3.corrupt-<time>``) and a fresh one is started.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("lumbarest.history")

FILE_NAME = "history.sqlite3"

SESSION_COLUMNS = ("id", "started_at", "ended_at", "program", "level", "planned_min",
                   "actual_min", "outcome", "reason", "max_c", "mean_c", "energy_wh")
FAULT_COLUMNS = ("id", "code", "priority", "at", "readings", "acknowledged_at", "acknowledged_by")

# Ordered migrations: MIGRATIONS[i] brings the schema from user_version i to i + 1.
MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        program TEXT NOT NULL,
        level TEXT NOT NULL,
        planned_min REAL NOT NULL,
        setpoint_c REAL,
        actual_min REAL,
        outcome TEXT,
        reason TEXT,
        max_c REAL,
        mean_c REAL,
        energy_wh REAL
    );
    CREATE INDEX sessions_open ON sessions(ended_at) WHERE ended_at IS NULL;
    CREATE TABLE session_trace (
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        t_s REAL NOT NULL,
        mat_c REAL,
        setpoint_c REAL,
        duty REAL NOT NULL
    );
    CREATE INDEX session_trace_session ON session_trace(session_id, t_s);
    CREATE TABLE faults (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        code TEXT NOT NULL,
        priority TEXT NOT NULL,
        at TEXT NOT NULL,
        readings TEXT NOT NULL DEFAULT '{}',
        acknowledged_at TEXT,
        acknowledged_by TEXT
    );
    CREATE INDEX faults_code ON faults(code, acknowledged_at);
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value REAL NOT NULL DEFAULT 0
    );
    INSERT INTO counters(name, value) VALUES ('sessions', 0), ('heater_s', 0), ('relay_cycles', 0);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat(timespec="seconds")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class History:
    """The history database. See the module docstring for durability and robustness rules."""

    def __init__(self, path: Path, *, max_bytes: int = 64 * 1024 * 1024):
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("history database %s is unusable (%s); moved aside to %s and starting a "
                      "new one", self.path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    src.rename(Path(str(aside) + suffix))
            self._db = self._open()

    # -- set-up -------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                             timeout=5.0)
        try:
            db.row_factory = sqlite3.Row
            # auto_vacuum only takes effect on a database without tables: new files get it, so
            # prune() can hand freed pages back to the file system.
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                log.warning("history database is in journal mode %s, not WAL", mode)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            # The WAL is checkpointed every 1000 pages and truncated back to 4 MiB afterwards.
            db.execute("PRAGMA journal_size_limit=4194304")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this program's {SCHEMA_VERSION}")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            script = MIGRATIONS[target - 1]
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={target}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            log.info("history schema migrated to version %d", target)

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self._db.close()

    # -- writing ------------------------------------------------------------------------------

    def _write(self, statements: list[tuple[str, tuple]], *, durable: bool = False) -> int | None:
        """Run statements in one transaction; return the last row id, or None if it failed."""
        db = self._db
        try:
            if durable:
                db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                cursor = None
                for sql, args in statements:
                    cursor = db.execute(sql, args)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return cursor.lastrowid if cursor is not None else None
        except sqlite3.Error as exc:
            log.error("history write failed: %s (%s)", exc, statements[0][0].split("(")[0].strip())
            return None
        finally:
            if durable:
                try:
                    db.execute("PRAGMA synchronous=NORMAL")
                except sqlite3.Error:
                    pass

    def mark_interrupted(self, now: datetime) -> list[dict]:
        """Close sessions left open by a process that died; return them (outcome ``interrupted``).

        The end time and the figures are estimated from the session's last trace point (the
        process died some time after it); the reason says when the interruption was detected.
        """
        open_rows = self._db.execute(
            "SELECT id, started_at FROM sessions WHERE ended_at IS NULL ORDER BY id").fetchall()
        statements = []
        for row in open_rows:
            agg = self._db.execute(
                "SELECT MAX(t_s), MAX(mat_c), AVG(mat_c) FROM session_trace WHERE session_id=?",
                (row["id"],)).fetchone()
            last_t = agg[0] or 0.0
            started = _parse(row["started_at"])
            ended = _iso(started + timedelta(seconds=last_t)) if started else _iso(now)
            reason = ("The appliance stopped while this session was running (power cut or "
                      f"crash); found at restart {_iso(now)}.")
            statements.append((
                "UPDATE sessions SET ended_at=?, outcome='interrupted', reason=?, actual_min=?, "
                "max_c=?, mean_c=?, energy_wh=COALESCE(energy_wh, 0) WHERE id=?",
                (ended, reason, round(last_t / 60.0, 2), agg[1],
                 round(agg[2], 2) if agg[2] is not None else None, row["id"])))
        if statements:
            self._write(statements, durable=True)
        return [self.session(row["id"]) for row in open_rows]

    def session_started(self, *, program: str, level: str, planned_min: float,
                        setpoint_c: float | None, started_at: datetime) -> int:
        """Record a new session; return its id (0 if it could not be written)."""
        row_id = self._write([(
            "INSERT INTO sessions(started_at, program, level, planned_min, setpoint_c) "
            "VALUES (?, ?, ?, ?, ?)",
            (_iso(started_at), program, level, float(planned_min), setpoint_c))])
        return row_id or 0

    def session_trace(self, session_id: int, *, t_s: float, mat_c: float | None,
                      setpoint_c: float | None, duty: float) -> None:
        self._write([(
            "INSERT INTO session_trace(session_id, t_s, mat_c, setpoint_c, duty) "
            "SELECT id, ?, ?, ?, ? FROM sessions WHERE id=?",
            (round(float(t_s), 1), _round(mat_c, 2), _round(setpoint_c, 2), round(float(duty), 3),
             session_id))])

    def session_ended(self, session_id: int, *, ended_at: datetime, outcome: str,
                      reason: str | None, actual_min: float, max_c: float | None,
                      mean_c: float | None, energy_wh: float) -> None:
        self._write([(
            "UPDATE sessions SET ended_at=?, outcome=?, reason=?, actual_min=?, max_c=?, "
            "mean_c=?, energy_wh=? WHERE id=?",
            (_iso(ended_at), outcome, reason, round(float(actual_min), 2), _round(max_c, 2),
             _round(mean_c, 2), round(float(energy_wh), 3), session_id))], durable=True)
        if self.size_bytes() > self.max_bytes:
            self.prune()

    def fault_raised(self, *, code: str, priority: str, at: datetime, readings: dict) -> int:
        row_id = self._write([(
            "INSERT INTO faults(code, priority, at, readings) VALUES (?, ?, ?, ?)",
            (code, priority, _iso(at), json.dumps(readings, default=str)))], durable=True)
        return row_id or 0

    def fault_acknowledged(self, code: str, *, at: datetime, by: str) -> None:
        """Mark the newest unacknowledged fault with ``code`` as acknowledged by role ``by``."""
        self._write([(
            "UPDATE faults SET acknowledged_at=?, acknowledged_by=? WHERE id=("
            "SELECT MAX(id) FROM faults WHERE code=? AND acknowledged_at IS NULL)",
            (_iso(at), by, code))], durable=True)

    def add_counters(self, *, sessions: int = 0, heater_s: float = 0.0,
                     relay_cycles: int = 0) -> None:
        statements = [("UPDATE counters SET value = value + ? WHERE name=?", (amount, name))
                      for name, amount in (("sessions", sessions), ("heater_s", heater_s),
                                           ("relay_cycles", relay_cycles)) if amount]
        if statements:
            self._write(statements)

    def audit(self, *, at: datetime, role: str, action: str, details: dict) -> None:
        self._write([("INSERT INTO audit(at, role, action, details) VALUES (?, ?, ?, ?)",
                      (_iso(at), role, action, json.dumps(details, default=str,
                                                          sort_keys=True)))], durable=True)

    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except ValueError:
            log.error("setting %r holds invalid JSON; using the default", key)
            return default

    def set_setting(self, key: str, value: Any) -> None:
        self._write([("INSERT INTO settings(key, value) VALUES (?, ?) "
                      "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                      (key, json.dumps(value)))], durable=True)

    # -- reading ------------------------------------------------------------------------------

    def counters(self) -> dict:
        values = {row["name"]: row["value"] for row in
                  self._db.execute("SELECT name, value FROM counters")}
        return {
            "sessions": int(values.get("sessions", 0)),
            "heater_hours": round(values.get("heater_s", 0.0) / 3600.0, 3),
            "relay_cycles": int(values.get("relay_cycles", 0)),
        }

    @staticmethod
    def _session_dict(row: sqlite3.Row) -> dict:
        return {name: row[name] for name in SESSION_COLUMNS}

    def session(self, session_id: int) -> dict | None:
        row = self._db.execute(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE id=?",
                               (session_id,)).fetchone()
        return self._session_dict(row) if row else None

    def sessions(self, limit: int, offset: int) -> tuple[list[dict], int]:
        """Sessions newest first, and how many there are in all."""
        rows = self._db.execute(
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset)).fetchall()
        total = self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        return [self._session_dict(row) for row in rows], total

    def faults(self, limit: int, offset: int) -> tuple[list[dict], int]:
        """Faults newest first, and how many there are in all."""
        rows = self._db.execute(
            f"SELECT {', '.join(FAULT_COLUMNS)} FROM faults ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset)).fetchall()
        total = self._db.execute("SELECT COUNT(*) FROM faults").fetchone()[0]
        result = []
        for row in rows:
            item = {name: row[name] for name in FAULT_COLUMNS}
            try:
                item["readings"] = json.loads(item["readings"])
            except ValueError:
                item["readings"] = {}
            result.append(item)
        return result, total

    def audit_log(self, limit: int, offset: int) -> tuple[list[dict], int]:
        """Audit entries newest first, and how many there are in all."""
        rows = self._db.execute(
            "SELECT id, at, role, action, details FROM audit ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset)).fetchall()
        total = self._db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        entries = []
        for row in rows:
            try:
                details = json.loads(row["details"])
            except ValueError:
                details = {}
            entries.append({"id": row["id"], "at": row["at"], "role": row["role"],
                            "action": row["action"], "details": details})
        return entries, total

    def trace(self, session_id: int) -> list[list]:
        """``[[t_s, mat_c, setpoint_c], ...]`` for one session, in time order."""
        return [list(row) for row in self._db.execute(
            "SELECT t_s, mat_c, setpoint_c FROM session_trace WHERE session_id=? ORDER BY t_s",
            (session_id,))]

    # -- size ---------------------------------------------------------------------------------

    def size_bytes(self) -> int:
        """Bytes the database's live pages take (free pages and the write-ahead log excluded)."""
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page_size

    def file_bytes(self) -> int:
        """Bytes on disk: the database file plus the write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total

    def prune(self) -> None:
        """Keep the database under ``max_bytes`` (aiming at 90 % of it).

        Deletes the traces of the oldest sessions first, then the oldest finished sessions, then
        the oldest acknowledged faults and audit entries; then returns the freed pages to the
        file system and truncates the write-ahead log.
        """
        target = int(self.max_bytes * 0.9)
        db = self._db
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            steps = 0
            while self.size_bytes() > target and steps < 10000:
                steps += 1
                row = db.execute("SELECT MIN(session_id) FROM session_trace").fetchone()
                if row[0] is not None:
                    # The trace of the oldest session that still has one.
                    self._write([("DELETE FROM session_trace WHERE session_id = ?", (row[0],))])
                    continue
                ids = [r[0] for r in db.execute(
                    "SELECT id FROM sessions WHERE ended_at IS NOT NULL ORDER BY id LIMIT 200")]
                if ids:
                    self._write([(f"DELETE FROM sessions WHERE id IN "
                                  f"({','.join('?' * len(ids))})", tuple(ids))])
                    continue
                ids = [r[0] for r in db.execute(
                    "SELECT id FROM faults WHERE acknowledged_at IS NOT NULL "
                    "ORDER BY id LIMIT 200")]
                if ids:
                    self._write([(f"DELETE FROM faults WHERE id IN "
                                  f"({','.join('?' * len(ids))})", tuple(ids))])
                    continue
                ids = [r[0] for r in db.execute("SELECT id FROM audit ORDER BY id LIMIT 200")]
                if ids:
                    self._write([(f"DELETE FROM audit WHERE id IN "
                                  f"({','.join('?' * len(ids))})", tuple(ids))])
                    continue
                break
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            # executescript steps the pragma to completion (execute() frees only one page)
            db.executescript("PRAGMA incremental_vacuum;")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.error("history pruning failed: %s", exc)


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (the scripts contain no ';' inside literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def integrity_check(path: Path) -> str:
    """``PRAGMA integrity_check`` of a database file (for tests and service tools)."""
    db = sqlite3.connect(str(path))
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
