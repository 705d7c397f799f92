"""A stand-in for :class:`appliance.core.Appliance` that follows its interface exactly.

Used to test the API server on its own; the end-to-end tests use the real appliance process.
"""

from __future__ import annotations

from datetime import datetime, timezone

from appliance import errors
from appliance.errors import CommandError

PROGRAMS = {"standard": 30, "short": 20, "long": 45, "traction": 30, "test": 1}
LEVELS = {"off": None, "low": 37.0, "medium": 38.5, "high": 40.0}
FAULTS = {
    "rtd_open": ("medium", "ack"),
    "over_temp": ("high", "ack"),
    "ssr_welded": ("high", "service"),
}


class FakeAppliance:
    def __init__(self, history, pins, mode: str = "simulation"):
        self.mode = mode
        self.history = history
        self.pins = pins
        self.state = "idle"
        self.program = None
        self.level = None
        self.elapsed_s = 0.0
        self.planned_s = 0
        self.mat_c = 22.0
        self.alarms: dict[str, dict] = {}
        self.patient_on = None
        self.ui_clients = 0
        self.session_id = None
        self._settings = {"levels": dict(LEVELS), "programs": dict(PROGRAMS),
                          "unit_name": "Lumbarest", "language": "en", "volume": 5,
                          "brightness": 80, "sleep_min": 10, "max_setpoint_c": 41.0}
        self.calls: list = []

    # -- queries --
    def snapshot(self) -> dict:
        running = self.state in ("running", "paused")
        return {
            "protocol": 1,
            "mode": self.mode,
            "unit_name": self._settings["unit_name"],
            "wall_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "session": {
                "state": self.state, "program": self.program, "level": self.level,
                "phase": ("paused" if self.state == "paused" else "therapy") if running else None,
                "planned_s": self.planned_s, "elapsed_s": self.elapsed_s,
                "remaining_s": max(0.0, self.planned_s - self.elapsed_s) if running else None,
                "outcome": None, "reason": None, "mean_c": None,
            },
            "setpoint_c": LEVELS.get(self.level) if running else None,
            "mat_c": self.mat_c,
            "sensor_ok": True,
            "heating": self.state == "running" and LEVELS.get(self.level) is not None,
            "duty": 0.5 if self.state == "running" else 0.0,
            "relay_closed": self.state == "running",
            "patient_on": self.patient_on,
            "alarms": [dict(a) for a in self.alarms.values()],
            "ui_clients": self.ui_clients,
            "connection": {"clients": 0},
        }

    def catalogue(self) -> dict:
        return {"programs": dict(self._settings["programs"]),
                "levels": dict(self._settings["levels"]),
                "unit_name": self._settings["unit_name"]}

    # -- commands --
    def _not_allowed(self, what):
        raise CommandError(errors.NOT_ALLOWED, f"cannot {what} when the session is {self.state}",
                           {"state": self.state})

    def start_session(self, program: str, level: str) -> None:
        if any(a["needs"] == "service" for a in self.alarms.values()):
            raise CommandError(errors.FAULT_LATCHED, "a fault is latched", {"state": self.state})
        if self.state in ("running", "paused"):
            self._not_allowed("start")
        if program not in PROGRAMS:
            raise CommandError(errors.INVALID_PARAMS,
                               f"Unknown program {program!r}; choose one of {', '.join(PROGRAMS)}.")
        if level not in LEVELS:
            raise CommandError(errors.INVALID_PARAMS,
                               f"Unknown heat level {level!r}; choose one of {', '.join(LEVELS)}.")
        self.state, self.program, self.level = "running", program, level
        self.planned_s = PROGRAMS[program] * 60
        self.elapsed_s = 0.0
        now = datetime.now(timezone.utc)
        self.session_id = self.history.session_started(
            program=program, level=level, planned_min=PROGRAMS[program],
            setpoint_c=LEVELS[level], started_at=now)
        self.calls.append(("start", program, level))

    def pause(self) -> None:
        if self.state != "running":
            self._not_allowed("pause")
        self.state = "paused"

    def resume(self) -> None:
        if self.state != "paused":
            self._not_allowed("resume")
        self.state = "running"

    def stop(self) -> None:
        if self.state not in ("running", "paused"):
            self._not_allowed("stop")
        self.state = "stopped"
        self.history.session_ended(self.session_id, ended_at=datetime.now(timezone.utc),
                                   outcome="stopped", reason="Stopped by the user.",
                                   actual_min=self.elapsed_s / 60, max_c=30.0, mean_c=29.0,
                                   energy_wh=1.0)

    def extend(self) -> None:
        if self.state not in ("running", "paused"):
            self._not_allowed("extend")
        self.planned_s += 300

    def acknowledge(self, code, role) -> list[str]:
        targets = [c for c in self.alarms if code is None or c == code]
        if code is not None and code not in self.alarms:
            raise CommandError(errors.INVALID_PARAMS, f"no active alarm {code!r}")
        for c in targets:
            if self.alarms[c]["needs"] == "service" and role != "service":
                raise CommandError(errors.PIN_REQUIRED, "this fault needs the service PIN")
            if self.alarms[c]["present"]:
                raise CommandError(errors.CONDITION_PRESENT, "the condition is still present")
        for c in targets:
            del self.alarms[c]
            self.history.fault_acknowledged(c, at=datetime.now(timezone.utc), by=role)
        return targets

    def settings(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._settings.items()}

    def apply_settings(self, changes: dict) -> dict:
        ranges = {"volume": (0, 10), "brightness": (10, 100), "sleep_min": (0, 120)}
        for key, value in changes.items():
            if key in ranges:
                lo, hi = ranges[key]
                if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                    raise CommandError(errors.INVALID_PARAMS,
                                       f"{key} must be an integer from {lo} to {hi}",
                                       {"param": key})
            elif key == "unit_name":
                if not isinstance(value, str) or not 1 <= len(value) <= 40:
                    raise CommandError(errors.INVALID_PARAMS, "unit_name is 1 to 40 characters",
                                       {"param": key})
            elif key == "language":
                if value not in ("en",):
                    raise CommandError(errors.INVALID_PARAMS, "language must be en",
                                       {"param": key})
            else:
                raise CommandError(errors.INVALID_PARAMS, f"unknown setting {key!r}",
                                   {"param": key})
        self._settings.update(changes)
        return self.settings()

    def selftest(self) -> dict:
        return {"passed": True, "checks": [{"name": "sensor", "passed": True, "detail": "ok"}]}

    def inject(self, fault: str) -> None:
        if self.mode != "simulation":
            raise CommandError(errors.METHOD_NOT_FOUND, "simulation only")
        if fault not in FAULTS:
            raise CommandError(errors.INVALID_PARAMS, f"unknown fault {fault!r}")
        priority, needs = FAULTS[fault]
        self.alarms[fault] = {"code": fault, "priority": priority, "kind": "technical",
                              "title": fault, "text": fault, "advice": "", "heater_off": True,
                              "present": False, "needs": needs, "since": None}
        self.history.fault_raised(code=fault, priority=priority, at=datetime.now(timezone.utc),
                                  readings={"mat_c": self.mat_c})

    def clear_injected(self) -> None:
        for alarm in self.alarms.values():
            alarm["present"] = False

    def set_patient(self, on: bool) -> None:
        if self.mode != "simulation":
            raise CommandError(errors.METHOD_NOT_FOUND, "simulation only")
        self.patient_on = on

    def set_ui_clients(self, count: int) -> None:
        self.ui_clients = count
        self.calls.append(("ui_clients", count))

    def tick(self) -> None:
        if self.state == "running":
            self.elapsed_s += 0.25
            self.mat_c += 0.01
