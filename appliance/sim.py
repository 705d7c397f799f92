"""``lumbarest-sim``: run the whole appliance stack against the simulated mat, in virtual time.

The real Adafruit driver talks to the register-level MAX31865, gpiozero drives mock pins, the mat
model closes the loop, and the core runs its safety rules, sessions and control exactly as in the
appliance process — only the clock is virtual, so a 45-minute session takes a few seconds.

Scenario file (TOML)::

    [plant]                 # any mat model parameter; omitted = reference value
    ambient_c = 18.0
    [run]
    duration_s = 3000       # may run past the session end to watch the cool-down
    program = "standard"
    level = "high"
    seed = 1                # noise seed
    relay = true            # a series relay is fitted (default true)
    controller = "ours"     # or --controller
    prewarm_s = 0           # a pre-warm runs this long before the session starts (default none)
    [[event]]
    at_s = 300
    action = "patient_on"   # patient_on | patient_off | pause | resume | extend | stop | fault | clear_fault | ack
    [[event]]
    at_s = 1500
    action = "fault"
    fault = "rtd_open"

Any other configuration section (``[safety]``, ``[control]``, ``[model]``, ``[levels]``, …) is
applied on top of the defaults. Times in the output count from the session start; an event may
have a negative ``at_s`` (a patient lying down before Start, or during the pre-warm): the runner
then begins that much earlier with the unit idle (or pre-warming).

``lumbarest-sim --sweep N --seed S [--faults] [--jobs J]`` draws N random scenarios from the
declared operating envelope instead (:mod:`appliance.sweep`); with ``--control-report`` it runs
every controller on the same fault-free scenarios and reports the control figures
(:mod:`appliance.control_report`).
"""

import argparse
import csv
import json
import math
import sys
import time
import tomllib
from dataclasses import dataclass, field

from appliance.config import ConfigError, from_dict
from appliance.control import CONTROLLERS
from appliance.core import SIM_FAULTS, Appliance
from appliance.errors import CommandError
from appliance.wiring import build_simulated
from hw.clock import VirtualClock

ACTIONS = ("patient_on", "patient_off", "pause", "resume", "extend", "stop", "fault", "clear_fault",
           "ack")
BAND_C = 0.5
SETTLE_S = 120.0
LOAD_EXCLUDE_S = 300.0
WATCHDOG_STEP_S = 0.1
STALL_S = 10.0
SMOOTH_SAMPLES = 8  # 2 s at 4 Hz
GETUP_WINDOW_S = 600.0


@dataclass
class Scenario:
    config_data: dict
    duration_s: float
    program: str
    level: str
    seed: int
    events: list = field(default_factory=list)
    prewarm_s: float = 0.0

    @property
    def lead_s(self) -> float:
        """How long before the session start the run begins."""
        return max([self.prewarm_s] + [-e["at_s"] for e in self.events])


def parse_scenario(data: dict, source: str, controller: str | None = None) -> Scenario:
    """Validate a scenario dict; raise ConfigError naming the bad key."""
    data = dict(data)
    run = data.pop("run", {})
    events = data.pop("event", [])
    if not isinstance(run, dict):
        raise ConfigError(f"{source}: [run] must be a table.")
    known = {"duration_s", "program", "level", "seed", "relay", "controller", "prewarm_s"}
    for key in run:
        if key not in known:
            raise ConfigError(f"{source}: run.{key} is not a known key; known: {', '.join(sorted(known))}.")
    config_data = {"mode": "simulation", **data}
    hardware = dict(config_data.get("hardware", {}))
    if run.get("relay", True) is False:
        hardware["relay_pin"] = False
    config_data["hardware"] = hardware
    strategy = controller or run.get("controller")
    if strategy:
        if strategy not in CONTROLLERS:
            raise ConfigError(f"{source}: controller {strategy!r} is not known; use one of {', '.join(CONTROLLERS)}.")
        config_data["control"] = {**config_data.get("control", {}), "strategy": strategy}
    duration = run.get("duration_s", 3000)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration <= 86400:
        raise ConfigError(f"{source}: run.duration_s = {duration!r} is not allowed; use seconds from 1 to 86400.")
    checked = []
    for index, event in enumerate(events):
        where = f"{source}: event {index + 1}"
        if not isinstance(event, dict) or "at_s" not in event or "action" not in event:
            raise ConfigError(f"{where} needs at_s and action.")
        if event["action"] not in ACTIONS:
            raise ConfigError(f"{where}: action {event['action']!r} is not known; use one of {', '.join(ACTIONS)}.")
        if event["action"] == "fault" and event.get("fault") not in SIM_FAULTS:
            raise ConfigError(f"{where}: fault {event.get('fault')!r} is not known; use one of {', '.join(SIM_FAULTS)}.")
        checked.append(event)
    checked.sort(key=lambda e: e["at_s"])
    prewarm = run.get("prewarm_s", 0)
    if isinstance(prewarm, bool) or not isinstance(prewarm, (int, float)) or not 0 <= prewarm <= 7200:
        raise ConfigError(f"{source}: run.prewarm_s = {prewarm!r} is not allowed; use seconds from 0 to 7200.")
    if 0 < prewarm < 60:
        raise ConfigError(f"{source}: run.prewarm_s = {prewarm!r} is not allowed; a pre-warm lasts at least 60 s.")
    from_dict(config_data, source)  # validate now, with the file's name in any error
    return Scenario(config_data, float(duration), run.get("program", "standard"),
                    run.get("level", "high"), int(run.get("seed", 0)), checked, float(prewarm))


def smoothed(readings: list[tuple[float, float]], span: int = SMOOTH_SAMPLES) -> list[tuple[float, float]]:
    """Moving average over ``span`` readings: the metrics judge temperature, not sensor noise."""
    out, total = [], 0.0
    for index, (t, c) in enumerate(readings):
        total += c
        if index >= span:
            total -= readings[index - span][1]
        out.append((t, total / min(index + 1, span)))
    return out


class ScenarioRun:
    """One run; :meth:`run` returns the result dict (see ``docs/simulation.md``)."""

    def __init__(self, scenario: Scenario, source: str = "scenario"):
        self.scenario = scenario
        self.config = from_dict(scenario.config_data, source)
        self.clock = VirtualClock()
        self.devices = build_simulated(self.config, self.clock, seed=scenario.seed)
        self.core = Appliance(self.config, self.devices, self.clock)
        self.core.set_ui_clients(1)  # the kiosk, until a ui_disconnect event
        self.trace: list[tuple] = []
        self.injections: list[tuple[float, str]] = []
        self.patient_events: list[float] = []
        self.t0 = 0.0
        self.heating_end_s: float | None = None

    def _t(self) -> float:
        return self.clock.monotonic() - self.t0

    def _apply(self, event: dict) -> None:
        core, action = self.core, event["action"]
        try:
            if action in ("patient_on", "patient_off"):
                core.set_patient(action == "patient_on")
                self.patient_events.append(self._t())
            elif action in ("pause", "resume", "extend", "stop"):
                getattr(core, action)()
            elif action == "ack":
                core.acknowledge(None, event.get("role", "user"))
            elif action == "clear_fault":
                core.clear_injected()
            elif action == "fault":
                self.injections.append((self._t(), event["fault"]))
                if event["fault"] == "loop_stall":
                    self._stall()
                else:
                    core.inject(event["fault"])
        except CommandError as exc:
            print(f"event at {event['at_s']} s ({action}): {exc.message}", file=sys.stderr)

    def _start_session(self) -> None:
        try:
            self.core.start_session(self.scenario.program, self.scenario.level)
        except CommandError as exc:  # e.g. a fault latched during the pre-warm: as at the panel
            print(f"start at 0 s: {exc.message}", file=sys.stderr)

    def _stall(self) -> None:
        """The control loop blocks: only the watchdog runs, on its own 100 ms period."""
        end = self.clock.monotonic() + STALL_S
        while self.clock.monotonic() < end - 1e-9:
            self.clock.advance_to(self.clock.monotonic() + WATCHDOG_STEP_S)
            if self.core.watchdog.check(self.clock.monotonic()):
                self.core.force_off()
            self._record()

    def _record(self) -> None:
        core, mat = self.core, self.devices.rig.mat
        sp = core.session.plan.setpoint_c if core.session.plan else None
        mat.advance_to(self.clock.monotonic())
        self.trace.append((round(self._t(), 3), core.mat_c, mat.surface_c, sp, core.duty,
                           bool(mat.relay_closed), core.session.state, mat.patient_on))

    def run(self) -> dict:
        scenario, core, clock = self.scenario, self.core, self.clock
        period = self.config.control.sample_period_s
        wall_start = time.perf_counter()
        while not core.ready:
            core.tick()
            clock.advance_to(clock.monotonic() + period)
        lead_ticks = math.ceil(scenario.lead_s / period - 1e-9)
        self.t0 = clock.monotonic() + lead_ticks * period
        start_tick = clock.monotonic()
        if scenario.prewarm_s:
            core.start_prewarm(scenario.prewarm_s + 60.0, by="scenario")
        events = list(scenario.events)
        tick_index = 0
        started = False
        while True:
            t = self._t()
            if t > scenario.duration_s + 1e-9:
                break
            if not started and t >= -1e-9:
                self._start_session()
                started = True
            while events and events[0]["at_s"] <= t + 1e-9:
                self._apply(events.pop(0))
            core.tick()
            if started and self.heating_end_s is None and not core.session.heat_wanted:
                self.heating_end_s = self._t()
            self._record()
            tick_index += 1
            clock.advance_to(start_tick + tick_index * period)
        wall_s = time.perf_counter() - wall_start
        return self._result(wall_s)

    # -- metrics -------------------------------------------------------------------------------
    def _power_zero_from(self, t_abs: float) -> float | None:
        """Start of the zero-power interval that contains ``t_abs``, else of the next one."""
        start = None
        for when, watts in self.devices.rig.mat.power_log:
            if when > t_abs and start is not None:
                return start
            start = when if watts == 0 else None
            if start is not None and when > t_abs:
                return start
        return start

    def _result(self, wall_s: float) -> dict:
        scenario, core, mat = self.scenario, self.core, self.devices.rig.mat
        setpoint = core.settings_values["levels"].get(scenario.level)
        if scenario.program in self.config.HEATLESS_PROGRAMS:
            setpoint = None
        heat_end = self.heating_end_s if self.heating_end_s is not None else self._t()
        readings = smoothed([(t, c) for t, c, *_ in self.trace if c is not None and t >= 0])
        time_to_band = None
        if setpoint is not None:
            time_to_band = next((t for t, c in readings if abs(c - setpoint) <= BAND_C), None)
        overshoot = 0.0
        rms = None
        recovery = []
        if time_to_band is not None:
            overshoot = max(0.0, max(c - setpoint for t, c in readings if t >= time_to_band))
            errors = [(c - setpoint) ** 2 for t, c in readings
                      if time_to_band + SETTLE_S <= t <= heat_end
                      and not any(0 <= t - p <= LOAD_EXCLUDE_S for p in self.patient_events)]
            rms = math.sqrt(sum(errors) / len(errors)) if errors else None
            for index, p in enumerate(self.patient_events):
                until = self.patient_events[index + 1] if index + 1 < len(self.patient_events) else heat_end
                outside = [t for t, c in readings if p <= t <= until and abs(c - setpoint) > BAND_C]
                recovery.append(round(outside[-1] - p, 1) if outside else 0.0)
        faults = []
        for code, detected_abs in core.fault_log:
            off_abs = self._power_zero_from(detected_abs)
            faults.append({"code": code, "detected_at_s": round(detected_abs - self.t0, 3),
                           "heater_off_at_s": round(off_abs - self.t0, 3) if off_abs is not None else None})
        outcome = core.session.outcome or ("running" if core.session.active else core.session.state)
        on_surface = [row[2] for row in self.trace if row[7]]
        return {
            "setpoint_c": setpoint,
            "time_to_band_s": round(time_to_band, 2) if time_to_band is not None else None,
            "overshoot_c": round(overshoot, 3),
            "max_surface_c": round(mat.max_surface_c, 3),
            "max_sensor_c": round(max((c for _, c in readings), default=float("nan")), 3),
            "max_surface_patient_on_c": round(max(on_surface), 3) if on_surface else None,
            "max_surface_after_getup_c": self._max_after_getup(),
            "rms_error_c": round(rms, 4) if rms is not None else None,
            "load_recovery_s": recovery,
            "heater_energy_wh": round(mat.energy_j / 3600, 3),
            "outcome": outcome,
            "faults": faults,
            "injected": [{"at_s": round(t, 3), "fault": f} for t, f in self.injections],
            "fault_effect_at_s": (round(mat.fault_effect_at_s - self.t0, 3)
                                  if mat.fault_effect_at_s is not None else None),
            "duration_s": scenario.duration_s,
            "wall_s": round(wall_s, 3),
            "sim_speed": round(scenario.duration_s / wall_s, 1) if wall_s > 0 else None,
        }

    def _max_after_getup(self, window_s: float = GETUP_WINDOW_S) -> float | None:
        """Highest true surface within ``window_s`` after a patient got up (the element's stored
        heat arrives then), or ``None`` if nobody got up."""
        peaks, was_on, until = [], False, None
        for row in self.trace:
            if was_on and not row[7]:
                until = row[0] + window_s
            was_on = row[7]
            if until is not None and row[0] <= until and not row[7]:
                peaks.append(row[2])
        return round(max(peaks), 3) if peaks else None

    def write_trace(self, path: str) -> None:
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["t_s", "sensor_c", "surface_c", "setpoint_c", "duty", "relay_closed", "state",
                             "patient_on"])
            for t, sensor, surface, sp, duty, relay, state, patient in self.trace:
                writer.writerow([t, "" if sensor is None else round(sensor, 3), round(surface, 3),
                                 "" if sp is None else sp, round(duty, 4), int(relay), state, int(patient)])


def run_file(path: str, controller: str | None = None) -> tuple[dict, ScenarioRun]:
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    scenario = parse_scenario(data, path, controller)
    runner = ScenarioRun(scenario, path)
    return runner.run(), runner


def _human(result: dict) -> str:
    lines = [f"outcome {result['outcome']}, setpoint {result['setpoint_c']} °C",
             f"time to band {result['time_to_band_s']} s, overshoot {result['overshoot_c']} °C, "
             f"max surface {result['max_surface_c']} °C, rms error {result['rms_error_c']} °C",
             f"energy {result['heater_energy_wh']} Wh, simulated {result['duration_s']:g} s "
             f"in {result['wall_s']} s ({result['sim_speed']}x)"]
    for fault in result["faults"]:
        lines.append(f"fault {fault['code']} detected at {fault['detected_at_s']} s, "
                     f"heater off at {fault['heater_off_at_s']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lumbarest-sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", help="scenario TOML file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--trace", metavar="FILE.csv", help="write the per-sample trace")
    parser.add_argument("--controller", choices=CONTROLLERS, help="override the control strategy")
    sweep = parser.add_argument_group("envelope sweep (docs/safety.md)")
    sweep.add_argument("--sweep", type=int, metavar="N", help="run N random scenarios from the envelope")
    sweep.add_argument("--seed", type=int, default=1, metavar="S", help="the sweep's seed (default 1)")
    sweep.add_argument("--faults", action="store_true", help="inject one random fault in each")
    sweep.add_argument("--jobs", type=int, default=2, metavar="J", help="parallel processes (default 2)")
    sweep.add_argument("--out", metavar="DIR", default="sweep-failures",
                       help="where failing (or, with --control-report, the worst) scenarios are "
                            "written (default ./sweep-failures)")
    sweep.add_argument("--control-report", action="store_true",
                       help="run every controller on the same fault-free scenarios and report "
                            "the control figures (docs/performance.md)")
    args = parser.parse_args(argv)
    if args.control_report and args.sweep is None:
        parser.error("--control-report needs --sweep N")
    if args.sweep is not None:
        if args.scenario or args.trace:
            parser.error("--sweep runs drawn scenarios; give no scenario file or --trace")
        if args.control_report:
            if args.faults or args.controller:
                parser.error("--control-report runs every controller on fault-free scenarios; "
                             "give no --faults or --controller")
            from appliance import control_report
            return control_report.main(args.sweep, args.seed, jobs=args.jobs, out_dir=args.out,
                                       as_json=args.json)
        from appliance import sweep as sweeper
        return sweeper.main(args.sweep, args.seed, faults=args.faults, jobs=args.jobs,
                            controller=args.controller, out_dir=args.out, as_json=args.json)
    if not args.scenario:
        parser.error("give a scenario file, or --sweep N")
    try:
        result, runner = run_file(args.scenario, args.controller)
    except (OSError, tomllib.TOMLDecodeError, ConfigError) as exc:
        print(f"lumbarest-sim: {exc}", file=sys.stderr)
        return 2
    if args.trace:
        runner.write_trace(args.trace)
    print(json.dumps(result) if args.json else _human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
