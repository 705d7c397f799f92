"""The treatment session: a pure state machine with time passed in.

::

    idle ──start──> running ──pause──> paused ──resume──> running
                      │  └──(time up)──> done              │
                      │                                     └──(pause > max_pause_min)──> stopped
                      ├──stop──> stopped
                      └──(safety trip that ends the session)──> fault

``done``, ``stopped`` and ``fault`` are final for that session: the next start begins a new one.
Nothing here touches the heater; the core asks :attr:`Session.heat_wanted`.
Invalid transitions raise :class:`~appliance.errors.CommandError` and change nothing.
"""

from dataclasses import dataclass

from appliance.errors import NOT_ALLOWED, CommandError

FINAL_STATES = ("idle", "done", "stopped", "fault", "interrupted")


@dataclass
class Plan:
    program: str
    level: str
    planned_s: float
    setpoint_c: float | None      # None: traction without heat


class Session:
    """One session at a time. ``max_session_s`` caps the planned time including extensions."""

    def __init__(self, *, max_session_s: float, extend_step_s: float, max_pause_s: float):
        self.max_session_s = max_session_s
        self.extend_step_s = extend_step_s
        self.max_pause_s = max_pause_s
        self.state = "idle"
        self.plan: Plan | None = None
        self.outcome: str | None = None
        self.reason: str | None = None
        self._started_s = 0.0
        self._paused_total_s = 0.0
        self._paused_at_s: float | None = None
        self._ended_s: float | None = None
        self.reached_setpoint = False

    # -- queries ----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.state in ("running", "paused")

    @property
    def heat_wanted(self) -> bool:
        return self.state == "running" and self.plan is not None and self.plan.setpoint_c is not None

    def elapsed_s(self, now_s: float) -> float:
        if self.plan is None:
            return 0.0
        end = self._ended_s if self._ended_s is not None else now_s
        paused = self._paused_total_s
        if self._paused_at_s is not None:
            paused += end - self._paused_at_s
        return max(0.0, end - self._started_s - paused)

    def remaining_s(self, now_s: float) -> float:
        if self.plan is None:
            return 0.0
        return max(0.0, self.plan.planned_s - self.elapsed_s(now_s))

    def phase(self) -> str | None:
        if self.state == "paused":
            return "paused"
        if self.state != "running":
            return None
        if self.plan.setpoint_c is None or self.reached_setpoint:
            return "therapy"
        return "warming"

    # -- commands ---------------------------------------------------------------------------
    def _require(self, *states: str) -> None:
        if self.state not in states:
            raise CommandError(NOT_ALLOWED, f"Not possible now: the session is {self.state}.",
                               {"state": self.state})

    def start(self, now_s: float, plan: Plan) -> None:
        self._require(*FINAL_STATES)
        self.state = "running"
        self.plan = plan
        self.outcome = self.reason = None
        self._started_s = now_s
        self._paused_total_s = 0.0
        self._paused_at_s = None
        self._ended_s = None
        self.reached_setpoint = False

    def pause(self, now_s: float) -> None:
        self._require("running")
        self.state = "paused"
        self._paused_at_s = now_s

    def resume(self, now_s: float) -> None:
        self._require("paused")
        self._paused_total_s += now_s - self._paused_at_s
        self._paused_at_s = None
        self.state = "running"

    def extend(self, now_s: float) -> None:
        self._require("running", "paused")
        if self.plan.planned_s + self.extend_step_s > self.max_session_s + 1e-9:
            raise CommandError(NOT_ALLOWED, f"The session cannot be longer than "
                               f"{self.max_session_s / 60:g} minutes.", {"state": self.state})
        self.plan.planned_s += self.extend_step_s

    def stop(self, now_s: float, reason: str = "stopped by user") -> None:
        self._require("running", "paused")
        self._end(now_s, "stopped", reason)

    def fail(self, now_s: float, code: str) -> None:
        """A safety trip ends the session."""
        if self.active:
            self._end(now_s, "fault", code)

    def _end(self, now_s: float, outcome: str, reason: str | None) -> None:
        if self._paused_at_s is not None:
            self._paused_total_s += now_s - self._paused_at_s
            self._paused_at_s = None
        self._ended_s = now_s
        self.state = outcome
        self.outcome = outcome if outcome != "done" else "completed"
        self.reason = reason

    def tick(self, now_s: float, mat_c: float | None, band_c: float) -> str | None:
        """Advance time; returns the new state if the session ended by itself."""
        if self.state == "running":
            sp = self.plan.setpoint_c
            if sp is not None and mat_c is not None and abs(mat_c - sp) <= band_c:
                self.reached_setpoint = True
            if self.remaining_s(now_s) <= 0:
                self._end(now_s, "done", "completed")
                return "done"
        elif self.state == "paused" and now_s - self._paused_at_s > self.max_pause_s:
            self._end(now_s, "stopped", "paused too long")
            return "stopped"
        return None
