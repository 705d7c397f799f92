"""Every unit the broker knows: the board behind ``lumbarest fleet`` and the kiosk's Rooms screen.

:class:`FleetView` is pure: it is fed ``(topic, payload)`` pairs and answers with rows, alarm rows
first (by priority), then by name. :class:`FleetWatcher` is the I/O: a paho client subscribed to
every unit's ``state`` and ``availability`` (both retained, so a new viewer sees everything at
once).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Callable

from bridge.config import BridgeConfig
from bridge.mqtt import connect_error, connect_in_background, make_client
from bridge.payloads import OFFLINE, ONLINE, PRIORITIES


@dataclass(frozen=True)
class UnitRow:
    unit_id: str
    name: str
    state: str
    mat_c: float | None
    remaining_s: int | None
    alarm: str | None              # the highest priority present, or None
    alarms: tuple[dict, ...]
    online: bool | None            # None: no availability message seen yet
    heating: bool

    @property
    def sort_key(self) -> tuple:
        rank = PRIORITIES.index(self.alarm) if self.alarm in PRIORITIES else len(PRIORITIES)
        return (rank, self.name.lower(), self.unit_id)


class FleetView:
    """The latest state and availability of each unit, from the retained messages."""

    def __init__(self, config: BridgeConfig):
        self.config = config
        self._states: dict[str, dict] = {}
        self._online: dict[str, bool] = {}

    def feed(self, topic: str, payload: bytes) -> bool:
        """Take one message; True if it changed what the board shows."""
        split = self.config.split_topic(topic)
        if split is None:
            return False
        unit_id, leaf = split
        if leaf == "availability":
            text = payload.decode("utf-8", "replace").strip()
            if text not in (ONLINE, OFFLINE):
                return False
            changed = self._online.get(unit_id) != (text == ONLINE)
            self._online[unit_id] = text == ONLINE
            return changed
        if leaf == "state":
            if not payload:                      # a retained state deleted: the unit is gone
                return self._states.pop(unit_id, None) is not None
            try:
                state = json.loads(payload)
            except ValueError:
                return False
            if not isinstance(state, dict):
                return False
            changed = self._states.get(unit_id) != state
            self._states[unit_id] = state
            return changed
        return False

    def rows(self) -> list[UnitRow]:
        rows = []
        for unit_id in set(self._states) | set(self._online):
            state = self._states.get(unit_id, {})
            session = state.get("session") or {}
            alarms = tuple(a for a in state.get("alarms") or [] if isinstance(a, dict))
            alarm = state.get("alarm") if state.get("alarm") in PRIORITIES else None
            rows.append(UnitRow(
                unit_id=unit_id, name=str(state.get("unit_name") or unit_id),
                state=str(session.get("state") or "unknown"), mat_c=state.get("mat_c"),
                remaining_s=session.get("remaining_s"), alarm=alarm, alarms=alarms,
                online=self._online.get(unit_id), heating=bool(state.get("heating"))))
        return sorted(rows, key=lambda r: r.sort_key)


def _mmss(seconds: int | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def format_row(row: UnitRow) -> str:
    """One line: name, state, mat °C, time left, alarms, online."""
    mark = "!" if row.alarm in ("high", "medium", "low") else " "
    mat = "—" if row.mat_c is None else f"{row.mat_c:.1f} °C"
    alarms = ", ".join(f"{(a.get('priority') or '').upper()} {a.get('code')}"
                       for a in row.alarms) or "no alarms"
    online = {True: "online", False: "OFFLINE", None: "unknown"}[row.online]
    name = f"{row.name} ({row.unit_id})" if row.name != row.unit_id else row.name
    return (f"{mark} {name:<28} {row.state:<11} {mat:>8}  {_mmss(row.remaining_s):>6} left  "
            f"{alarms:<30} {online}")


def format_board(rows: list[UnitRow]) -> str:
    if not rows:
        return "No units on this broker yet."
    return "\n".join(format_row(row) for row in rows)


class FleetWatcher:
    """A viewer's subscription to every unit; ``on_change`` runs on paho's thread."""

    def __init__(self, config: BridgeConfig, on_change: Callable[[], None] | None = None):
        self.config = config
        self.view = FleetView(config)
        self.on_change = on_change
        self.connected = threading.Event()
        self.error: str | None = None
        self._lock = threading.Lock()
        self._last_message_s = time.monotonic()
        self.client = make_client(config)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = lambda *_: setattr(self, "error", connect_error())
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.error = f"the broker refused the connection: {reason_code}"
            return
        self.error = None
        with self._lock:
            self._last_message_s = time.monotonic()
        client.subscribe([(self.config.fleet_pattern("state"), 1),
                          (self.config.fleet_pattern("availability"), 1)])
        self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self._last_message_s = time.monotonic()
            changed = self.view.feed(message.topic, message.payload)
        if changed and self.on_change is not None:
            self.on_change()

    def start(self) -> None:
        connect_in_background(self.client, self.config)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def rows(self) -> list[UnitRow]:
        with self._lock:
            return self.view.rows()

    def settle(self, timeout_s: float = 5.0, quiet_s: float = 0.3) -> bool:
        """Wait for the connection and the retained messages (until ``quiet_s`` without one)."""
        deadline = time.monotonic() + timeout_s
        if not self.connected.wait(timeout_s):
            return False
        while time.monotonic() < deadline:
            with self._lock:
                quiet = time.monotonic() - self._last_message_s
            if quiet >= quiet_s:
                return True
            time.sleep(0.05)
        return True
