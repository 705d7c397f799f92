"""A small fake appliance API for the kiosk tests and the kiosk benchmark.

A threaded Unix-socket JSON-RPC 2.0 server (one JSON object per line, docs/protocol.md) that
records every request, keeps a simple session state machine and pushes ``state`` notifications to
subscribers. It has no heater and no safety logic: it only answers like the appliance does.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
import time
from pathlib import Path

PROGRAMS = {"quick": 20.0, "standard": 30.0, "deep": 45.0, "traction": 30.0}
LEVELS = {"off": None, "low": 36.0, "medium": 38.0, "high": 40.0}
PINS = {"clinic": "1234", "service": "7391"}


def idle_state() -> dict:
    return {
        "protocol": 1, "mode": "simulation", "unit_name": "Fake Room",
        "wall_time": "2026-11-26T10:00:00+00:00", "ready": True,
        "session": {"state": "idle", "program": None, "level": None, "phase": None,
                    "planned_s": None, "elapsed_s": 0.0, "remaining_s": 0.0, "outcome": None,
                    "reason": None, "mean_c": None},
        "setpoint_c": None, "mat_c": 22.5, "sensor_ok": True, "heating": False, "duty": 0.0,
        "relay_closed": False, "patient_on": None, "alarms": [], "ui_clients": 0,
        "sensor": {"resistance_ohm": 108.7, "code": 8276, "fault_bits": [], "bad_reads": 0},
        "connection": {"clients": 0}, "audio": {"paused": False, "remaining_s": None},
    }


class RpcFail(Exception):
    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class FakeAppliance:
    def __init__(self, path: str | Path, push_hz: float = 5.0):
        self.path = Path(path)
        self.push_hz = push_hz
        self.lock = threading.RLock()
        self.requests: list[tuple[str, dict | None]] = []
        self.state = idle_state()
        self.settings = {"levels": dict(LEVELS), "programs": dict(PROGRAMS),
                         "unit_name": "Fake Room", "language": "en", "volume": 70,
                         "brightness": 100, "sleep_min": 5, "max_setpoint_c": 40.0}
        self.wrong = {"clinic": 0, "service": 0}
        self.locked_until = {"clinic": 0.0, "service": 0.0}
        self.started_at = None
        self._conns: list[socket.socket] = []
        self._subs: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._running = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "FakeAppliance":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(8)
        self._running = True
        for target in (self._accept_loop, self._push_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Go away like a crashed appliance: close everything, remove the socket."""
        self._running = False
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self.lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()
            self._subs.clear()
        for t in self._threads:
            t.join(timeout=2)
        self._threads.clear()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    # -- test helpers -------------------------------------------------------------------------

    def methods(self) -> list[str]:
        with self.lock:
            return [m for m, _ in self.requests]

    def calls(self, method: str) -> list:
        with self.lock:
            return [p for m, p in self.requests if m == method]

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def mutate(self, fn) -> None:
        with self.lock:
            fn(self.state)
        self.push()

    def subscribers(self) -> int:
        with self.lock:
            return len(self._subs)

    # -- socket handling ----------------------------------------------------------------------

    def _accept_loop(self):
        while self._running:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()

    def _send(self, conn, message) -> bool:
        try:
            conn.sendall(json.dumps(message).encode() + b"\n")
            return True
        except OSError:
            return False

    def _serve(self, conn):
        reader = conn.makefile("rb")
        try:
            for line in reader:
                try:
                    msg = json.loads(line)
                except ValueError:
                    self._send(conn, {"jsonrpc": "2.0", "id": None,
                                      "error": {"code": -32700, "message": "parse error"}})
                    continue
                method, params, rid = msg.get("method"), msg.get("params"), msg.get("id")
                with self.lock:
                    self.requests.append((method, copy.deepcopy(params)))
                try:
                    result = self._handle(conn, method, params or {})
                    reply = {"jsonrpc": "2.0", "id": rid, "result": result}
                except RpcFail as exc:
                    error = {"code": exc.code, "message": exc.message}
                    if exc.data is not None:
                        error["data"] = exc.data
                    reply = {"jsonrpc": "2.0", "id": rid, "error": error}
                with self.lock:
                    self._send(conn, reply)
                if method and method.startswith(("session.", "fault.")):
                    self.push()
        except (OSError, ValueError):
            pass
        finally:
            with self.lock:
                if conn in self._subs:
                    self._subs.remove(conn)
                if conn in self._conns:
                    self._conns.remove(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _push_loop(self):
        while self._running:
            time.sleep(1.0 / self.push_hz)
            self.tick()
            self.push()

    def push(self):
        with self.lock:
            state = self.snapshot()
            for conn in list(self._subs):
                if not self._send(conn, {"jsonrpc": "2.0", "method": "state", "params": state}):
                    self._subs.remove(conn)

    def snapshot(self) -> dict:
        with self.lock:
            state = copy.deepcopy(self.state)
            state["ui_clients"] = len(self._subs)
            return state

    def tick(self):
        with self.lock:
            s = self.state["session"]
            if s["state"] == "running" and self.started_at is not None:
                s["elapsed_s"] = round(time.monotonic() - self.started_at, 1)
                s["remaining_s"] = max(0.0, s["planned_s"] - s["elapsed_s"])

    # -- methods ------------------------------------------------------------------------------

    def _handle(self, conn, method, params):
        s = self.state["session"]
        if method == "status":
            state = self.snapshot()
            state.update(programs=dict(PROGRAMS), levels=dict(LEVELS))
            return state
        if method == "subscribe":
            with self.lock:
                if conn not in self._subs:
                    self._subs.append(conn)
            threading.Timer(0.01, self.push).start()
            return {"subscribed": True}
        if method == "session.start":
            if s["state"] in ("running", "paused"):
                raise RpcFail(-32001, "a session is already running", {"state": s["state"]})
            if any(a.get("present") or a.get("needs") != "none" for a in self.state["alarms"]):
                raise RpcFail(-32002, "a fault is latched: acknowledge it first")
            program, level = params.get("program"), params.get("level")
            if program not in PROGRAMS or level not in LEVELS:
                raise RpcFail(-32602, "unknown program or level")
            with self.lock:
                s.update(state="running", program=program, level=level,
                         phase="therapy" if LEVELS[level] is None else "warming",
                         planned_s=PROGRAMS[program] * 60, elapsed_s=0.0,
                         remaining_s=PROGRAMS[program] * 60, outcome=None, reason=None)
                self.state["setpoint_c"] = LEVELS[level]
                self.state["heating"] = LEVELS[level] is not None
                self.started_at = time.monotonic()
            return self.snapshot()
        if method in ("session.pause", "session.resume", "session.stop", "session.extend"):
            want = {"session.pause": ("running",), "session.resume": ("paused",),
                    "session.stop": ("running", "paused"),
                    "session.extend": ("running", "paused")}[method]
            if s["state"] not in want:
                raise RpcFail(-32001, f"not allowed while {s['state']}", {"state": s["state"]})
            with self.lock:
                if method == "session.pause":
                    s.update(state="paused", phase="paused")
                    self.state["heating"] = False
                elif method == "session.resume":
                    s.update(state="running", phase="therapy")
                elif method == "session.stop":
                    s.update(state="stopped", phase=None, outcome="stopped",
                             reason="stopped by user", mean_c=37.5)
                    self.state["heating"] = False
                    self.state["setpoint_c"] = None
                else:
                    s["planned_s"] += 300
                    s["remaining_s"] += 300
            return self.snapshot()
        if method == "fault.acknowledge":
            pin = params.get("pin")
            if pin is not None:
                self._check_pin("service", pin)
            code = params.get("code")
            cleared = []
            with self.lock:
                keep = []
                for alarm in self.state["alarms"]:
                    if code in (None, alarm["code"]):
                        if alarm.get("present"):
                            raise RpcFail(-32004, "the condition is still present")
                        if alarm.get("needs") == "service" and pin is None:
                            raise RpcFail(-32003, "this fault needs the service PIN")
                        cleared.append(alarm["code"])
                    else:
                        keep.append(alarm)
                self.state["alarms"] = keep
            return {"cleared": cleared}
        if method == "auth.check":
            self._check_pin(params.get("role"), params.get("pin"))
            return {"ok": True, "role": params.get("role")}
        if method == "settings.get":
            return copy.deepcopy(self.settings)
        if method == "settings.set":
            self._check_pin("clinic", params.get("pin"))
            changes = params.get("changes") or {}
            for name, value in (changes.get("levels") or {}).items():
                if value is not None and value > self.settings["max_setpoint_c"]:
                    raise RpcFail(-32602, f"level {name}: {value} °C is above the maximum of "
                                          f"{self.settings['max_setpoint_c']} °C")
            for key, value in changes.items():
                if isinstance(value, dict):
                    self.settings[key].update(value)
                else:
                    self.settings[key] = value
            return copy.deepcopy(self.settings)
        if method == "history.sessions":
            rows = [{"id": 2, "started_at": "2026-11-26T09:00:00+00:00", "program": "standard",
                     "level": "medium", "planned_min": 30.0, "actual_min": 30.0,
                     "outcome": "done", "mean_c": 37.9, "max_c": 38.3},
                    {"id": 1, "started_at": "2026-11-25T09:00:00+00:00", "program": "quick",
                     "level": "high", "planned_min": 20.0, "actual_min": 5.0,
                     "outcome": "stopped", "mean_c": 36.0, "max_c": 39.0}]
            return {"sessions": rows, "total": len(rows)}
        if method == "history.faults":
            return {"faults": [{"id": 1, "code": "rtd_open", "priority": "medium",
                                "at": "2026-11-25T09:03:00+00:00",
                                "acknowledged_at": None, "acknowledged_by": None}], "total": 1}
        if method == "history.trace":
            return {"session_id": params.get("session_id"),
                    "points": [[i * 5.0, 25 + min(13, i * 0.2), 38.0] for i in range(360)]}
        if method == "alarm.silence":
            with self.lock:
                self.state["audio"] = {"paused": True,
                                       "remaining_s": float(params.get("seconds", 120))}
            return self.snapshot()
        if method == "system.selftest":
            return {"passed": True, "checks": [{"name": "sensor", "passed": True,
                                                "detail": "ok"}]}
        raise RpcFail(-32601, f"unknown method {method!r}")

    def _check_pin(self, role, pin):
        now = time.monotonic()
        if now < self.locked_until.get(role, 0):
            raise RpcFail(-32003, "too many wrong PINs",
                          {"locked_s": int(self.locked_until[role] - now) + 1})
        if pin == PINS.get(role) or (role == "clinic" and pin == PINS["service"]):
            self.wrong[role] = 0
            return
        self.wrong[role] += 1
        if self.wrong[role] >= 5:
            self.wrong[role] = 0
            self.locked_until[role] = now + 300
            raise RpcFail(-32003, "wrong PIN: locked for 300 s", {"locked_s": 300})
        raise RpcFail(-32003, "wrong PIN")
