"""The appliance core: one control period at a time, and the commands clients may ask for.

:meth:`Appliance.tick` is the control loop's body, in the order the safety case relies on::

    read the sensor -> safety rules (latch, decide) -> session time -> control -> heater

Everything is single-threaded and takes time from the injected clock; the only thing another
thread may do is :meth:`Appliance.force_off` (the loop watchdog). The core owns the heater: no
client can set a duty, only ask for a session, and every request goes through the same limits.
"""

import logging
from dataclasses import dataclass, field, replace

from appliance.config import (WEEKDAYS, Config, check_prewarm_plan, mat_params, valid_hhmm,
                              validate_catalogue)
from appliance.control import make_controller
from appliance.errors import (CONDITION_PRESENT, FAULT_LATCHED, INVALID_PARAMS, METHOD_NOT_FOUND,
                              NOT_ALLOWED, PIN_REQUIRED, CommandError)
from appliance.safety import Inputs, SafetySupervisor
from appliance.session import Plan, Session
from appliance.tune import RelayAutotune
from appliance.watchdog import LoopWatchdog
from hw.rtd import RtdSample

log = logging.getLogger(__name__)

PROTOCOL = 1
TRACE_PERIOD_S = 5.0
SIM_FAULTS = ("rtd_open", "rtd_short", "refin", "ovuv", "spi_error", "stale", "noise_spikes",
              "sensor_detached", "heater_open", "ssr_stuck_on", "loop_stall", "ui_disconnect")
LOOP_STALL_S = 10.0
CLINIC_KEYS = ("prewarm_enabled", "prewarm_time", "prewarm_weekdays", "prewarm_lead_min",
               "prewarm_hold_min", "selftest_time", "prune_time")
TUNE_AMPLITUDE_C = 0.3
TUNE_CAP_MARGIN_S = 60.0
PREWARM_LEVEL = "low"

def _int_in(low: int, high: int):
    return lambda value: type(value) is int and low <= value <= high


#: Each editable setting: its check (only ever run on that key's value) and what is allowed.
SETTING_CHECKS = {
    "levels": (lambda v: isinstance(v, dict), "an object of level: °C"),
    "programs": (lambda v: isinstance(v, dict), "an object of program: minutes"),
    "unit_name": (lambda v: isinstance(v, str) and 0 < len(v) <= 60, "1 to 60 characters"),
    "language": (lambda v: v in ("en", "de"), '"en" or "de"'),
    "volume": (_int_in(0, 100), "a whole number 0 to 100"),
    "brightness": (_int_in(10, 100), "a whole number 10 to 100"),
    "sleep_min": (_int_in(1, 120), "whole minutes 1 to 120"),
    "prewarm_enabled": (lambda v: isinstance(v, bool), "true or false"),
    "prewarm_time": (valid_hhmm, 'a local time "HH:MM"'),
    "selftest_time": (valid_hhmm, 'a local time "HH:MM"'),
    "prune_time": (valid_hhmm, 'a local time "HH:MM"'),
    "prewarm_weekdays": (lambda v: isinstance(v, list) and len(set(map(str, v))) == len(v)
                         and all(isinstance(d, str) and d in WEEKDAYS for d in v),
                         "a list of distinct days mon … sun"),
    "prewarm_lead_min": (_int_in(5, 120), "whole minutes 5 to 120"),
    "prewarm_hold_min": (_int_in(5, 30), "whole minutes 5 to 30"),
}
EDITABLE = tuple(SETTING_CHECKS)
MAX_SILENCE_S = 120.0

_MISSING = RtdSample(None, None, None, error="missing")


@dataclass
class Devices:
    """What the shell built: any of them may be missing (then a fault says so)."""

    heater: object | None
    sensor: object | None
    heartbeat: object | None = None
    rig: object | None = None                     # simulation only
    startup_faults: list[str] = field(default_factory=list)
    startup_notes: dict[str, dict] = field(default_factory=dict)   # code -> what went wrong


@dataclass
class _Stats:
    """Per-session figures for the history record."""

    history_id: int | None = None
    max_c: float | None = None
    sum_c: float = 0.0
    count: int = 0
    energy_j: float = 0.0
    next_trace_s: float = 0.0


@dataclass
class _Prewarm:
    """A pre-warm in progress: heat to ``setpoint_c`` until ``until_s`` (monotonic)."""

    started_s: float
    until_s: float
    setpoint_c: float
    by: str
    energy_j: float = 0.0


class Appliance:
    """The controller. See the module docstring for the loop; ``docs/architecture.md`` for why.

    :param config: validated configuration.
    :param devices: heater, sensor and friends (real or simulated).
    :param clock: ``monotonic()`` for control and safety, ``wall()`` for records.
    :param history: an :class:`appliance.history.History`, or ``None`` (scenario runs).
    """

    def __init__(self, config: Config, devices: Devices, clock, history=None, pins=None):
        self.config = config
        self.mode = config.mode
        self.devices = devices
        self.clock = clock
        self.history = history
        self.pins = pins
        now = clock.monotonic()
        self.period_s = config.control.sample_period_s
        self.safety = SafetySupervisor(config.safety, config.model, now)
        self.controller = make_controller(config.control.strategy, config.control, config.model)
        self.session = self._new_session()
        self.watchdog = LoopWatchdog(self.period_s, config.safety.loop_stall_s, now)
        self.settings_values = {"levels": dict(config.levels), "programs": dict(config.programs),
                                "unit_name": config.unit_name, "language": "en", "volume": 70,
                                "brightness": 100, "sleep_min": 5,
                                **config.clinic.settings()}
        self.ui_clients = 0
        self.ui_blocked = False
        self.patient_on: bool | None = False if devices.rig else None
        self.ready = False
        self.heating = False
        self.mat_c: float | None = None
        self.sample: RtdSample = _MISSING
        self.duty = 0.0
        self.state_version = 0
        self.fault_log: list[tuple[str, float]] = []   # (code, detected_at_s), newest last
        self._stats = _Stats()
        self._stall_request_s = 0.0
        self._selftest_until_s = now + config.safety.selftest_observe_s
        self._selftest_first_c: float | None = None
        self._last_tick_s = now
        self._interrupted: dict | None = None
        self._relay_cycles_seen = 0
        self._prewarm: _Prewarm | None = None          # memory only: never resumed after a restart
        self._tuner: RelayAutotune | None = None        # likewise
        self._tune_started_s = 0.0
        self._tune_ended: str | None = None
        self._audio_paused_until_s = 0.0
        self._audio_paused_codes: frozenset[str] = frozenset()
        self.reminders: list[dict] = []                # maintenance reminders (appliance.schedule)
        self.settings_listeners: list = []             # called after every settings change
        self._heater_off()
        self._load_persisted_settings()
        for code in devices.startup_faults:
            self._trip(code, now, {"startup": True, **devices.startup_notes.get(code, {})})
        self._startup_selftest(now)
        self._mark_interrupted()

    # -- construction helpers ----------------------------------------------------------------
    def _new_session(self) -> Session:
        s = self.config.session
        return Session(max_session_s=s.max_session_min * 60, extend_step_s=s.extend_step_min * 60,
                       max_pause_s=s.max_pause_min * 60)

    def _record(self, method: str, *args, **kwargs):
        """Write to the history; a database problem must never stop the control loop."""
        if self.history is None:
            return None
        try:
            return getattr(self.history, method)(*args, **kwargs)
        except Exception:  # noqa: BLE001 - logged; safety does not depend on the record
            log.exception("history.%s failed", method)
            return None

    def _load_persisted_settings(self) -> None:
        model = self._record("get_setting", "model", None)
        if model is not None:
            try:  # the fitted [model] from `lumbarest tune`, validated like the config file's
                self._use_model(vars(mat_params("history: model", "model", model, self.config.model)))
            except ValueError as exc:
                log.warning("ignoring the saved model: %s", exc)
        saved = self._record("get_setting", "settings", None)
        if not isinstance(saved, dict):
            return
        try:
            self._validate_settings({k: v for k, v in saved.items() if k in EDITABLE})
            self.settings_values.update({k: v for k, v in saved.items() if k in EDITABLE})
        except CommandError as exc:
            log.warning("ignoring saved settings: %s", exc.message)

    def _mark_interrupted(self) -> None:
        interrupted = self._record("mark_interrupted", self.clock.wall()) or []
        if interrupted:
            self._interrupted = interrupted[-1]
            self.session.state = "interrupted"
            self._trip("interrupted", self.clock.monotonic(), {"sessions": len(interrupted)})
            self.safety.latch.active["interrupted"].present = False

    def _startup_selftest(self, now_s: float) -> None:
        """Rule 10, first half: the chip's fault-detection cycle; the rest runs in :meth:`tick`."""
        sensor = self.devices.sensor
        if sensor is None:
            return
        bits = sensor.fault_detection()
        if bits:
            self._trip("selftest_failed", now_s, {"fault_bits": list(bits)})

    # -- the heater --------------------------------------------------------------------------
    def _heater_off(self) -> None:
        heater = self.devices.heater
        self.duty = 0.0
        self.heating = False
        if heater is not None:
            heater.off()

    def force_off(self) -> None:
        """Called from the watchdog thread: SSR off, relay open, nothing else."""
        self._heater_off()

    # -- faults ------------------------------------------------------------------------------
    def _trip(self, code: str, now_s: float, readings: dict):
        fault = self.safety.trip(code, now_s, readings)
        if fault is not None:
            self._on_new_fault(fault, now_s)
        return fault

    def _on_new_fault(self, fault, now_s: float) -> None:
        spec = fault.spec
        log.warning("fault %s (%s): %s", fault.code, spec.priority, spec.text)
        self.fault_log = self.fault_log[-99:] + [(fault.code, fault.detected_at_s)]
        self._record("fault_raised", code=fault.code, priority=spec.priority, at=self.clock.wall(),
                     readings=fault.readings)
        if spec.ends_session and self.session.active:
            self.session.fail(now_s, fault.code)
            self._session_ended(now_s)
        self.state_version += 1

    # -- the loop body -----------------------------------------------------------------------
    def tick(self) -> None:
        """One control period."""
        if self._stall_request_s:
            stall, self._stall_request_s = self._stall_request_s, 0.0
            self.clock.sleep(stall)  # simulated fault: the loop blocks; the watchdog must act
        now = self.clock.monotonic()
        dt = now - self._last_tick_s
        self._last_tick_s = now
        stalled_at = self.watchdog.take_trip()
        self.watchdog.beat(now)
        if stalled_at is not None:
            self._trip("loop_stall", stalled_at, {"stalled_s": round(now - stalled_at, 2)})

        sensor = self.devices.sensor
        self.sample = sensor.read() if sensor is not None else _MISSING
        heater = self.devices.heater
        setpoint = self._target_c() if self.heating else None
        verdict = self.safety.evaluate(Inputs(
            now_s=now, sample=self.sample, duty=self.duty,
            relay_closed=heater.relay_closed if heater is not None else False,
            setpoint_c=setpoint, ui_clients=0 if self.ui_blocked else self.ui_clients,
            heater_w=self.config.model.heater_w, regulated=not self._tuning))
        self.mat_c = verdict.mat_c
        for fault in verdict.new_faults:
            self._on_new_fault(fault, now)
        self._selftest_tick(now)
        self._prewarm_tick(now, verdict)
        self._tune_tick(verdict)

        ended = self.session.tick(now, self.mat_c, self.config.session.in_band_c)
        if ended:
            self._session_ended(now)

        self._drive(now, dt, verdict)
        self._account(now, dt)
        if self.devices.heartbeat is not None and self.ready:
            self.devices.heartbeat.beat()

    def _selftest_tick(self, now_s: float) -> None:
        """Rule 10, second half: with SSR and relay off, the mat must not warm up."""
        if self.ready:
            return
        if self.mat_c is not None and self._selftest_first_c is None:
            self._selftest_first_c = self.mat_c
        if now_s < self._selftest_until_s:
            return
        if self._selftest_first_c is not None and self.mat_c is not None and \
                self.mat_c - self._selftest_first_c > self.config.safety.selftest_max_rise_c:
            self._trip("selftest_failed", now_s, {"rise_c": round(self.mat_c - self._selftest_first_c, 2)})
        self.ready = True
        self.state_version += 1

    def _drive(self, now_s: float, dt: float, verdict) -> None:
        heater = self.devices.heater
        target = self._target_c()
        heat = self.ready and target is not None and verdict.heat_allowed and heater is not None
        if heat and self.mat_c is None and self.heating:
            return  # one rejected sample (a spike): hold the output; three in a row trip
        if not heat or self.mat_c is None:
            if self.heating or self.duty:
                self.controller.reset()
            self._heater_off()
            observe_idle = getattr(self.controller, "observe_idle", None)
            if observe_idle is not None and self.mat_c is not None:
                observe_idle(now_s, self.mat_c)
            return
        setpoint = min(target, self.config.safety.max_setpoint_c)
        if not self.heating:
            self.controller.reset()
            heater.close_relay()
        if self._tuning:
            duty = self._tuner.update(now_s, self.mat_c)
        else:
            duty = self.controller.update(now_s, self.mat_c, setpoint)
            ratio = getattr(self.controller, "mismatch_ratio", None)
            if ratio is not None:   # no mat of the envelope: before a heating-effect check blames a part
                self.controller.reset()
                self._trip("mat_mismatch", now_s, {"power_ratio": ratio, "mat_c": round(self.mat_c, 2)})
                self._heater_off()
                return
        heater.set_duty(duty)
        self.duty = heater.duty
        self.heating = True

    def _target_c(self) -> float | None:
        """The temperature heat is wanted for now: the session's, else the pre-warm's or the
        autotune's, else None."""
        if self.session.heat_wanted:
            return self.session.plan.setpoint_c
        if self._tuning:
            return self._tuner.setpoint_c
        if self._prewarm is not None and not self.session.active:
            return self._prewarm.setpoint_c
        return None

    def _account(self, now_s: float, dt: float) -> None:
        stats = self._stats
        if self._prewarm is not None:
            self._prewarm.energy_j += self.duty * self.config.model.heater_w * dt
        if not self.session.active:
            return
        if self.mat_c is not None:
            stats.max_c = self.mat_c if stats.max_c is None else max(stats.max_c, self.mat_c)
            stats.sum_c += self.mat_c
            stats.count += 1
        stats.energy_j += self.duty * self.config.model.heater_w * dt
        if stats.history_id is not None and now_s >= stats.next_trace_s:
            stats.next_trace_s = now_s + TRACE_PERIOD_S
            self._record("session_trace", stats.history_id, t_s=round(self.session.elapsed_s(now_s), 1),
                         mat_c=self.mat_c, setpoint_c=self.session.plan.setpoint_c, duty=self.duty)

    def _session_ended(self, now_s: float) -> None:
        self._heater_off()
        session, stats = self.session, self._stats
        heater = self.devices.heater
        cycles = heater.relay_cycles if heater is not None else 0
        if stats.history_id is not None:
            self._record("session_ended", stats.history_id, ended_at=self.clock.wall(),
                         outcome=session.outcome, reason=session.reason,
                         actual_min=round(session.elapsed_s(now_s) / 60, 2),
                         max_c=stats.max_c, mean_c=self.mean_c,
                         energy_wh=round(stats.energy_j / 3600, 3))
            self._record("add_counters", heater_s=stats.energy_j / self.config.model.heater_w,
                         relay_cycles=cycles - self._relay_cycles_seen)
        self._relay_cycles_seen = cycles
        self.state_version += 1

    @property
    def mean_c(self) -> float | None:
        stats = self._stats
        return round(stats.sum_c / stats.count, 2) if stats.count else None

    # -- commands ------------------------------------------------------------------------------
    def catalogue(self) -> dict:
        return {"programs": dict(self.settings_values["programs"]),
                "levels": dict(self.settings_values["levels"]),
                "unit_name": self.settings_values["unit_name"]}

    def start_session(self, program: str, level: str) -> None:
        programs, levels = self.settings_values["programs"], self.settings_values["levels"]
        if not isinstance(program, str) or program not in programs:
            raise CommandError(INVALID_PARAMS, f"Unknown program {program!r}; "
                               f"choose one of {', '.join(programs)}.")
        if not isinstance(level, str) or level not in levels:
            raise CommandError(INVALID_PARAMS, f"Unknown heat level {level!r}; "
                               f"choose one of {', '.join(levels)}.")
        setpoint = None if program in Config.HEATLESS_PROGRAMS else levels[level]
        if setpoint is not None and setpoint > self.config.safety.max_setpoint_c:
            raise CommandError(INVALID_PARAMS, f"{setpoint:g} °C is above the limit of "
                               f"{self.config.safety.max_setpoint_c:g} °C.")
        if setpoint is not None:
            self._require_heat_possible()
        if self._tuning:
            raise CommandError(NOT_ALLOWED, "An autotune run is heating the mat; stop it first.",
                               {"state": "tuning"})
        now = self.clock.monotonic()
        self.session.start(now, Plan(program, level if setpoint is not None else "off",
                                     programs[program] * 60, setpoint))
        if self._prewarm is not None:
            # The session takes over: the heater stays on (no controller reset) and the session
            # starts its own heating-time count, as any new session does.
            self._end_prewarm(now, "session started")
        self.safety.latch.active.pop("interrupted", None)
        self._interrupted = None
        self.safety.session_started()
        self._stats = _Stats(next_trace_s=now)
        self._stats.history_id = self._record(
            "session_started", program=program, level=self.session.plan.level,
            planned_min=programs[program], setpoint_c=setpoint, started_at=self.clock.wall())
        self._record("add_counters", sessions=1)
        self.state_version += 1

    def _session_command(self, action: str) -> None:
        now = self.clock.monotonic()
        getattr(self.session, action)(now)
        if action == "stop":
            self._session_ended(now)
        elif action == "pause":
            self._heater_off()
        self.state_version += 1

    def pause(self) -> None:
        self._session_command("pause")

    def resume(self) -> None:
        self._session_command("resume")

    def stop(self) -> None:
        self._session_command("stop")

    def extend(self) -> None:
        self._session_command("extend")

    def acknowledge(self, code: str | None, role: str) -> list[str]:
        latch = self.safety.latch
        if code is not None and code not in latch.active:
            raise CommandError(INVALID_PARAMS, f"No active alarm {code!r}.")
        cleared, present, service = latch.acknowledge(code, role)
        if not cleared and present:
            raise CommandError(CONDITION_PRESENT, "The problem is still there: "
                               + ", ".join(present) + ". It can be acknowledged once it is gone.",
                               {"present": present})
        if not cleared and service:
            raise CommandError(PIN_REQUIRED, "Only service can clear: " + ", ".join(service) + ".",
                               {"needs": "service", "faults": service})
        for c in cleared:
            self._record("fault_acknowledged", c, at=self.clock.wall(), by=role)
        if self.session.state == "interrupted" and "interrupted" in cleared:
            self.session.state = "idle"
        self.state_version += 1
        return cleared

    def settings(self) -> dict:
        values = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                  for k, v in self.settings_values.items()}
        values["max_setpoint_c"] = self.config.safety.max_setpoint_c
        return values

    def _validate_settings(self, changes: dict) -> None:
        if not isinstance(changes, dict):
            raise CommandError(INVALID_PARAMS, "changes must be an object.")
        for key, value in changes.items():
            if key not in EDITABLE:
                raise CommandError(INVALID_PARAMS, f"{key!r} cannot be changed; "
                                   f"editable: {', '.join(EDITABLE)}.")
            check, allowed = SETTING_CHECKS[key]
            if not check(value):
                raise CommandError(INVALID_PARAMS, f"{key} = {value!r} is not allowed; use {allowed}.")
        merged = {**self.settings_values, **{k: v for k, v in changes.items() if k in CLINIC_KEYS}}
        try:
            if merged["prewarm_enabled"]:
                check_prewarm_plan(merged["prewarm_time"], merged["prewarm_lead_min"],
                                   merged["prewarm_hold_min"], self.config.safety.max_heating_min,
                                   "settings")
        except ValueError as exc:
            raise CommandError(INVALID_PARAMS, str(exc)) from None
        levels = {**self.settings_values["levels"], **changes.get("levels", {})}
        programs = {**self.settings_values["programs"], **changes.get("programs", {})}
        try:
            validate_catalogue(levels, programs, self.config.safety.max_setpoint_c,
                               self.config.session.max_session_min, "settings")
        except ValueError as exc:
            raise CommandError(INVALID_PARAMS, str(exc)) from None
        for name in ("levels", "programs"):
            default = getattr(self.config, name)
            if set(changes.get(name, {})) - set(default):
                raise CommandError(INVALID_PARAMS, f"Only the existing {name} can be changed: "
                                   f"{', '.join(default)}.")

    def apply_settings(self, changes: dict) -> dict:
        self._validate_settings(changes)
        for key, value in changes.items():
            if isinstance(value, dict):
                self.settings_values[key] = {**self.settings_values[key],
                                             **{k: (float(v) if v is not None else None) for k, v in value.items()}}
            else:
                self.settings_values[key] = value
        self._record("set_setting", "settings", self.settings_values)
        self.state_version += 1
        for listener in list(self.settings_listeners):
            try:
                listener(dict(self.settings_values))
            except Exception:  # noqa: BLE001 - a listener (the scheduler) must not undo a change
                log.exception("settings listener failed")
        return self.settings()

    def selftest(self) -> dict:
        """``system.selftest``: the chip's fault cycle and a plausibility check, while idle."""
        if self.session.active or self._prewarm is not None:
            raise CommandError(NOT_ALLOWED, "The self-test runs only when no session is running "
                               "and the mat is not pre-warming.",
                               {"state": self.session.state, "prewarm": self._prewarm is not None})
        checks = []
        sensor = self.devices.sensor
        bits = sensor.fault_detection() if sensor is not None else ("missing",)
        checks.append({"name": "sensor fault detection", "passed": not bits,
                       "detail": ", ".join(bits) or "no faults"})
        sample = sensor.read() if sensor is not None else _MISSING
        bad = self.safety.sensor.classify(sample, self.clock.monotonic()) if sample.ok else "no reading"
        checks.append({"name": "sensor plausible", "passed": bad is None,
                       "detail": f"{sample.temperature_c:.2f} °C" if sample.ok else (bad or "")})
        heater = self.devices.heater
        off = heater is not None and heater.duty == 0 and (not heater.has_relay or not heater.relay_closed)
        checks.append({"name": "heater and relay off", "passed": off,
                       "detail": "off" if off else "not off or not available"})
        passed = all(c["passed"] for c in checks)
        self._record("audit", at=self.clock.wall(), role="system", action="selftest",
                     details={"passed": passed, "checks": checks})
        self._record("set_setting", "selftest.last",
                     {"at": self.clock.wall().isoformat(timespec="seconds"), "passed": passed})
        return {"passed": passed, "checks": checks}

    def nightly_selftest(self) -> dict:
        """The scheduled self-test (appliance.schedule): as :meth:`selftest`, but a failure
        latches ``selftest_failed`` (MEDIUM, service clears it) so the morning staff see it.
        Skipped, not failed, while a session or a pre-warm runs."""
        if self.session.active or self._prewarm is not None:
            self._record("audit", at=self.clock.wall(), role="system", action="selftest.skipped",
                         details={"reason": "session or pre-warm running"})
            return {"passed": None, "skipped": True, "checks": []}
        result = self.selftest()
        if not result["passed"]:
            failed = [c["name"] for c in result["checks"] if not c["passed"]]
            self._trip("selftest_failed", self.clock.monotonic(),
                       {"scheduled": True, "failed": failed})
        return result

    # -- pre-warm ------------------------------------------------------------------------------
    def _require_heat_possible(self) -> None:
        """Heating may start: no fault latched and the start-up self-test finished."""
        blocking = [f.code for f in self.safety.latch.active.values() if f.code != "interrupted"]
        if blocking:
            raise CommandError(FAULT_LATCHED, "A fault must be cleared before heating: "
                               + ", ".join(blocking) + ".", {"faults": blocking})
        if not self.ready:
            raise CommandError(NOT_ALLOWED, "The controller is still checking itself; "
                               "try again in a few seconds.", {"state": "selftest"})

    # -- autotune (lumbarest tune) -----------------------------------------------------------------
    @property
    def _tuning(self) -> bool:
        return self._tuner is not None and not self._tuner.done and self._tune_ended is None

    def start_tune(self, test_c: float | None = None, by: str = "service") -> dict:
        """Start a relay-feedback test (:class:`appliance.tune.RelayAutotune`) at ``test_c``.

        It heats like a session — every safety rule applies, faults end it — and must start from
        a mat at room temperature. Its result changes nothing until :meth:`apply_tune`.
        """
        if self.session.active or self._prewarm is not None or self._tuning:
            raise CommandError(NOT_ALLOWED, "The mat is in use; autotune needs it idle and cool.",
                               {"state": self.session.state})
        self._require_heat_possible()
        limit_c = self.config.safety.max_setpoint_c - 1.0 - TUNE_AMPLITUDE_C
        if test_c is None:
            test_c = min(self.settings_values["levels"].get(PREWARM_LEVEL) or limit_c, limit_c)
        if isinstance(test_c, bool) or not isinstance(test_c, (int, float)) or not 30.0 <= test_c <= limit_c:
            raise CommandError(INVALID_PARAMS, f"The test temperature must be 30 to {limit_c:g} °C.")
        if self.mat_c is not None and self.mat_c > test_c - 5.0:
            raise CommandError(NOT_ALLOWED, "The mat is still warm; autotune needs it near room "
                               "temperature. Try again when it has cooled.", {"mat_c": self.mat_c})
        # The run gives up a minute before the heating-time cap would trip: a mat too slow to
        # tune is a result ("gave up"), not a latched fault that needs acknowledging.
        cap_s = self.config.safety.max_heating_min * 60.0
        self._tuner = RelayAutotune(self.config.model, float(test_c), amplitude_c=TUNE_AMPLITUDE_C,
                                    max_setpoint_c=self.config.safety.max_setpoint_c,
                                    max_duration_s=max(cap_s - TUNE_CAP_MARGIN_S, cap_s / 2))
        self._tune_started_s = self.clock.monotonic()
        self._tune_ended = None
        self._record("audit", at=self.clock.wall(), role=by, action="tune.start",
                     details={"test_c": test_c})
        self.state_version += 1
        return self.tune_status()

    def stop_tune(self, by: str = "user") -> bool:
        if not self._tuning:
            return False
        self._tune_ended = f"stopped by {by}"
        self._heater_off()
        self.state_version += 1
        return True

    def _tune_tick(self, verdict) -> None:
        if self._tuning and not verdict.heat_allowed:
            self._tune_ended = "ended by a fault"
        elif self._tuner is not None and self._tuner.done and self._tune_ended is None:
            self._tune_ended = "finished" if not self._tuner.gave_up else "gave up (no steady cycles)"
            self.state_version += 1

    def tune_status(self) -> dict:
        tuner = self._tuner
        if tuner is None:
            return {"active": False, "done": False}
        status = {"active": self._tuning, "done": tuner.done, "ended": self._tune_ended,
                  "test_c": tuner.setpoint_c,
                  "elapsed_s": round(self.clock.monotonic() - self._tune_started_s, 1),
                  "cycles": tuner.measured_cycles, "cycles_needed": tuner.cycles}
        if tuner.done:
            status["relay"] = tuner.relay_data()
        return status

    def tune_result(self) -> dict:
        """The fit of the finished run (blocking for ~0.1–1 s: call it off the loop's thread)."""
        if self._tuner is None or not self._tuner.done:
            raise CommandError(NOT_ALLOWED, "No finished autotune run.", self.tune_status())
        result = dict(self._tuner.result())
        result["proposed"] = self._tuner.as_config()
        # the model in use now, for a side-by-side view of what applying would change
        result["current"] = {"model": {k: getattr(self.config.model, k)
                                       for k in result["proposed"].get("model", {})}}
        return result

    def apply_tune(self, by: str = "service") -> dict:
        """Make the fitted ``[model]`` the controller's and the safety checks' model, persisted."""
        result = self.tune_result()
        if not result.get("ok") or "model" not in result["proposed"]:
            raise CommandError(NOT_ALLOWED, "The autotune result is not good enough to use.",
                               {"ok": result.get("ok")})
        if self.session.active or self._prewarm is not None:
            raise CommandError(NOT_ALLOWED, "Apply the result while the mat is idle.")
        model = result["proposed"]["model"]
        self._use_model(model)
        self._record("set_setting", "model", model)
        self._record("audit", at=self.clock.wall(), role=by, action="tune.apply", details=model)
        self._tuner, self._tune_ended = None, None
        self.state_version += 1
        return {"model": model}

    def _use_model(self, changes: dict) -> None:
        """Rebuild the controller and the heat-balance checks around a new model of the mat."""
        self.config = replace(self.config, model=replace(self.config.model, **changes))
        self.controller = make_controller(self.config.control.strategy, self.config.control,
                                          self.config.model)
        self.safety.use_model(self.config.model)

    def start_prewarm(self, duration_s: float, by: str = "system") -> dict:
        """Heat to the ``low`` level (clamped to ``max_setpoint_c``) for ``duration_s`` without a
        session. Every safety rule applies as for a session; it ends by itself on monotonic
        time, on :meth:`stop_prewarm`, on any fault, or when a session takes over."""
        if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)):
            raise CommandError(INVALID_PARAMS, "duration must be a number of seconds.")
        cap_s = self.config.safety.max_heating_min * 60
        if not 60 <= duration_s <= cap_s:
            raise CommandError(INVALID_PARAMS, f"A pre-warm lasts 1 to "
                               f"{self.config.safety.max_heating_min:g} minutes (max_heating_min).")
        if self.session.active:
            raise CommandError(NOT_ALLOWED, "A session is running; it heats the mat already.",
                               {"state": self.session.state})
        level_c = self.settings_values["levels"].get(PREWARM_LEVEL)
        if level_c is None:
            raise CommandError(NOT_ALLOWED, f"The {PREWARM_LEVEL!r} level has no temperature.")
        if self._tuning:
            raise CommandError(NOT_ALLOWED, "An autotune run is heating the mat.", {"state": "tuning"})
        self._require_heat_possible()
        now = self.clock.monotonic()
        setpoint = min(float(level_c), self.config.safety.max_setpoint_c)
        if self._prewarm is None:
            self._prewarm = _Prewarm(now, now + duration_s, setpoint, by)
        else:   # a new end time; the heating-time cap keeps counting from the first start
            self._prewarm.until_s = now + duration_s
        self._record("audit", at=self.clock.wall(), role=by, action="prewarm.start",
                     details={"minutes": round(duration_s / 60, 2), "setpoint_c": setpoint})
        self.state_version += 1
        return self.prewarm_state(now)

    def stop_prewarm(self, by: str = "user") -> bool:
        """End a pre-warm now; returns whether one was running. Always allowed."""
        if self._prewarm is None:
            return False
        self._end_prewarm(self.clock.monotonic(), f"stopped by {by}")
        return True

    def _prewarm_tick(self, now_s: float, verdict) -> None:
        prewarm = self._prewarm
        if prewarm is None:
            return
        if not verdict.heat_allowed:
            codes = [f.code for f in self.safety.latch.active.values() if f.code != "interrupted"]
            self._end_prewarm(now_s, "fault: " + ", ".join(codes))
        elif now_s >= prewarm.until_s:
            self._end_prewarm(now_s, "time up")

    def _end_prewarm(self, now_s: float, reason: str) -> None:
        prewarm, self._prewarm = self._prewarm, None
        if prewarm is None:
            return
        if not self.session.heat_wanted:
            self._heater_off()
        heater = self.devices.heater
        cycles = heater.relay_cycles if heater is not None else 0
        self._record("add_counters", heater_s=prewarm.energy_j / self.config.model.heater_w,
                     relay_cycles=cycles - self._relay_cycles_seen)
        self._relay_cycles_seen = cycles
        self._record("audit", at=self.clock.wall(), role="system", action="prewarm.end",
                     details={"reason": reason, "minutes": round((now_s - prewarm.started_s) / 60, 2),
                              "energy_wh": round(prewarm.energy_j / 3600, 3),
                              "mat_c": round(self.mat_c, 2) if self.mat_c is not None else None})
        log.info("pre-warm ended: %s", reason)
        self.state_version += 1

    def prewarm_state(self, now_s: float | None = None) -> dict:
        now = self.clock.monotonic() if now_s is None else now_s
        p = self._prewarm
        if p is None:
            return {"active": False, "remaining_s": None, "setpoint_c": None, "by": None}
        return {"active": True, "remaining_s": round(max(0.0, p.until_s - now), 1),
                "setpoint_c": p.setpoint_c, "by": p.by}

    @property
    def prewarming(self) -> bool:
        return self._prewarm is not None

    # -- the panel's stop button (appliance.main hands the events over on the loop thread) ----
    def panel_press(self) -> None:
        """A press of the stop button: heat off now — the session pauses, a pre-warm ends."""
        if self.session.state == "running":
            self.pause()
        self.stop_prewarm(by="stop button")
        log.info("stop button pressed")

    def panel_long_press(self) -> None:
        """The stop button held for ``long_press_s``: the session stops, a pre-warm ends."""
        if self.session.active:
            self.stop()
        self.stop_prewarm(by="stop button")
        log.info("stop button held: session stopped")

    # -- audio pause and reminders -------------------------------------------------------------
    def silence(self, seconds: float, by: str = "user") -> dict:
        """Audio paused for up to 120 s: the alarms stay (and stay latched); a new alarm ends
        the pause."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
                not 0 < seconds <= MAX_SILENCE_S:
            raise CommandError(INVALID_PARAMS, f"seconds must be from 1 to {MAX_SILENCE_S:g}.")
        now = self.clock.monotonic()
        self._audio_paused_until_s = now + float(seconds)
        self._audio_paused_codes = frozenset(self.safety.latch.active)
        self._record("audit", at=self.clock.wall(), role=by, action="alarm.silence",
                     details={"seconds": seconds, "alarms": sorted(self._audio_paused_codes)})
        self.state_version += 1
        return self.audio_state(now)

    def audio_state(self, now_s: float | None = None) -> dict:
        now = self.clock.monotonic() if now_s is None else now_s
        remaining = self._audio_paused_until_s - now
        if remaining > 0 and set(self.safety.latch.active) - self._audio_paused_codes:
            remaining = 0.0          # a new alarm condition ends the audio pause
            self._audio_paused_until_s = 0.0
        paused = remaining > 0
        return {"paused": paused, "remaining_s": round(remaining, 1) if paused else None}

    def set_reminders(self, reminders: list[dict]) -> None:
        if reminders != self.reminders:
            self.reminders = list(reminders)
            self.state_version += 1

    def _require_sim(self) -> None:
        if self.devices.rig is None:
            raise CommandError(METHOD_NOT_FOUND, "Only available in simulation.")

    def inject(self, fault: str) -> None:
        self._require_sim()
        if fault not in SIM_FAULTS:
            raise CommandError(INVALID_PARAMS, f"Unknown fault {fault!r}; known: {', '.join(SIM_FAULTS)}.")
        if fault == "loop_stall":
            self._stall_request_s = LOOP_STALL_S
        elif fault == "ui_disconnect":
            self.ui_blocked = True
        else:
            self.devices.rig.inject(fault)

    def clear_injected(self) -> None:
        """Simulation: the injected hardware conditions go away (latched faults stay)."""
        self._require_sim()
        self.devices.rig.clear_faults()
        self.ui_blocked = False

    def set_patient(self, on: bool) -> None:
        self._require_sim()
        if not isinstance(on, bool):
            raise CommandError(INVALID_PARAMS, "on must be true or false.")
        self.devices.rig.set_patient(on)
        self.patient_on = on
        self.state_version += 1

    def set_ui_clients(self, count: int) -> None:
        self.ui_clients = count

    # -- the state object ------------------------------------------------------------------------
    def snapshot(self) -> dict:
        now = self.clock.monotonic()
        session = self.session
        plan = session.plan
        heater = self.devices.heater
        interrupted = self._interrupted if session.state == "interrupted" else None
        alarms = []
        for fault in sorted(self.safety.latch.active.values(),
                            key=lambda f: ("high", "medium", "low", "info").index(f.spec.priority)):
            spec = fault.spec
            alarms.append({
                "code": fault.code, "priority": spec.priority, "kind": spec.kind,
                "title": spec.title, "text": spec.text, "advice": spec.advice,
                "heater_off": not self.heating, "present": fault.present, "needs": fault.needs,
                "since": self._wall_at(fault.detected_at_s, now)})
        if session.state == "done":
            alarms.append({"code": "session_done", "priority": "info", "kind": "information",
                           "title": "Session finished", "text": "The session is over.",
                           "advice": "Take your time: roll onto your side and get up slowly.",
                           "heater_off": True, "present": False, "needs": "none",
                           "since": None})
        sample = self.sample
        return {
            "protocol": PROTOCOL,
            "mode": self.mode,
            "unit_name": self.settings_values["unit_name"],
            "wall_time": self.clock.wall().isoformat(timespec="seconds"),
            "ready": self.ready,
            "session": {
                "state": session.state,
                "program": plan.program if plan else (interrupted or {}).get("program"),
                "level": plan.level if plan else (interrupted or {}).get("level"),
                "phase": session.phase(),
                "planned_s": round(plan.planned_s, 1) if plan else None,
                "elapsed_s": round(session.elapsed_s(now), 1),
                "remaining_s": round(session.remaining_s(now), 1),
                "outcome": session.outcome,
                "reason": session.reason,
                "mean_c": self.mean_c,
            },
            "setpoint_c": plan.setpoint_c if plan and session.active else
            (self._prewarm.setpoint_c if self._prewarm is not None else None),
            "prewarm": self.prewarm_state(now),
            "audio": self.audio_state(now),
            "reminders": [dict(r) for r in self.reminders],
            "notices": self._notices(),
            "mat_c": round(self.mat_c, 2) if self.mat_c is not None else None,
            "sensor_ok": self.mat_c is not None,
            "heating": self.heating and self.duty > 0,
            "duty": round(self.duty, 3),
            "relay_closed": bool(heater.relay_closed) if heater is not None else False,
            "patient_on": self.patient_on,
            "alarms": alarms,
            "ui_clients": self.ui_clients,
            "sensor": {"resistance_ohm": round(sample.resistance_ohm, 3) if sample.resistance_ohm else None,
                       "code": sample.code, "fault_bits": list(sample.fault_bits),
                       "bad_reads": self.safety.sensor.bad_in_row},
        }

    def _notices(self) -> list[dict]:
        """LOW notices: information during a session, never a fault and never an overlay."""
        holding_c = self.safety.effect.reach.holding_c
        plan = self.session.plan
        if holding_c is None or not self.heating or plan is None:
            return []
        # A working mat that cannot reach the level (docs/safety.md, "Operating envelope").
        return [{"code": "cannot_reach", "priority": "low",
                 "params": {"level": plan.level, "holding_c": holding_c},
                 "text": f"The mat cannot reach {plan.level.capitalize()}; it holds "
                         f"{holding_c:.1f} °C. The session goes on."}]

    def _wall_at(self, at_s: float, now_s: float) -> str:
        from datetime import timedelta
        return (self.clock.wall() - timedelta(seconds=now_s - at_s)).isoformat(timespec="seconds")

    def shutdown(self) -> None:
        """Heater off and the open session recorded as stopped by the shutdown."""
        self._heater_off()
        if self._prewarm is not None:
            self._end_prewarm(self.clock.monotonic(), "controller shut down")
        if self.session.active:
            self.session.stop(self.clock.monotonic(), "controller shut down")
            self._session_ended(self.clock.monotonic())
