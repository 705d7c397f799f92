"""What the mat allows: bounds on issue 12's control figures that no controller can beat.

    python -m bench.control_bounds [--runs N] [--seed S] [--jobs J]

For the first N fault-free scenarios of the envelope sweep (those of the control report,
``appliance.sweep.draw``), the noise-free mat of each scenario (:class:`hw.sim.plant.MatModel`,
the simulator's own physics, with the scenario's patient events) answers three questions. The
controller has no part in the answers; where one exceeds an issue-12 target on some mats of the
envelope, that target cannot be met there by any control law, only by another mat or another
target (``docs/performance.md``).

* **Time to the band** (cold starts, the report's ``time_ratio`` population). Full power until a
  cut, then nothing: the latest cut whose reading stays within ``setpoint + overshoot_c`` from
  the band on, and the time its reading enters the ±0.5 °C band, over full power's time. Heat
  given later arrives later on this positive system, so among controls that meet the overshoot
  this one-switch shape is the fastest there is (not proved here; no trial control beat it).
  Computed for the overshoot targets' 0.2 °C (p95) and 0.3 °C (max).
* **Lie-down recovery** (mats that can hold the setpoint with the patient on). The mat holds the
  setpoint at equilibrium; the patient lies down and the heater goes to full power that instant,
  the most any controller that cannot see the future can do: seconds until the reading is back
  inside the band (0 if it never left).
* **Get-up floor** (sessions with a get-up). The mat holds the setpoint at equilibrium with the
  patient on; she gets up and the heater is cut that instant: how far the element's stored heat
  takes the surface past the setpoint (``getup_floor_c``), and how far below the setpoint the
  mat must be held while she lies for that to stay within setpoint + 0.6 °C and 41 °C
  (``getup_reserve_c``). The report counts that reserve as steady-state error.

Pauses are left out: a bound for the mat and the patient. A table and one JSON object; not part
of ``make bench`` (the control report is).
"""

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from appliance import sweep
from appliance.config import Config
from appliance.control_report import TARGETS, can_hold
from appliance.sim import BAND_C, GETUP_WINDOW_S
from bench import sweep_parser
from hw.sim.plant import MatModel, MatParams

SAMPLE_S = Config().control.sample_period_s   # the controller's sample period
#: Issue 12's targets (``control_report.TARGETS``) that the bounds are held against.
_TARGETS = {key: dict(pairs) for key, pairs in TARGETS.items()}
OVERSHOOT_TARGETS_C = (_TARGETS["overshoot_c"]["p95"], _TARGETS["overshoot_c"]["max"])
RATIO_MAX = _TARGETS["time_ratio"]["max"]
RECOVERY_TARGET_S = _TARGETS["liedown_recovery_s"]["p95"]
GETUP_EXCESS_C = _TARGETS["getup_excess_c"]["max"]
GETUP_SURFACE_C = _TARGETS["getup_surface_c"]["max"]
RMS_TARGET_C = _TARGETS["rms_c"]["p95"]


def mat_params(plant: dict) -> MatParams:
    return replace(MatParams(), **plant)


def at_hold(params: MatParams, surface_c: float, patient_on: bool) -> MatModel:
    """The mat at equilibrium with its surface (and sensor) at ``surface_c``, the heater giving
    the power that holds it there."""
    p = params
    load_w = p.surface_to_ambient_w_per_k * (surface_c - p.ambient_c)
    if patient_on:
        load_w += p.patient_w_per_k * (surface_c - p.patient_c)
    mat = MatModel(p, relay_fitted=False)
    mat.set_patient(0.0, patient_on)
    mat.surface_c = mat.sensor_c = surface_c
    mat.element_c = surface_c + load_w / p.element_to_surface_w_per_k
    mat.set_ssr(0.0, max(0.0, load_w) / p.heater_w)
    return mat


def _settled(mat: MatModel) -> bool:
    """Heater off, no heat left in the element, the reading falling: nothing further lifts the
    reading above what it was or 36 °C (no body or room of the envelope is warmer)."""
    return mat.ssr_duty == 0.0 and mat.element_c <= mat.surface_c <= mat.sensor_c


def warmup(params: MatParams, events: list[dict], setpoint_c: float, cut_s: float,
           horizon_s: float = 3600.0) -> tuple[float | None, float]:
    """A cold start at full power from 0 until ``cut_s``, then off, with the patient events
    (``at_s`` may be before Start: the mat is at room temperature at the first of them): the
    first time the reading is within the band, and the highest reading from Start on."""
    start_s = min([0.0] + [e["at_s"] for e in events])
    mat = MatModel(params, start_s=start_s, relay_fitted=False)
    # (when, order at the same moment, what, value): the cut comes after Start's switch-on
    changes = sorted([(e["at_s"], 0, "patient", e["action"] == "patient_on") for e in events]
                     + [(0.0, 0, "duty", 1.0), (cut_s, 1, "duty", 0.0)])
    band_s, peak_c, t_s = None, float("-inf"), start_s
    while t_s < horizon_s:
        t_s += SAMPLE_S
        while changes and changes[0][0] <= t_s:
            at_s, _, what, value = changes.pop(0)
            if what == "duty":
                mat.set_ssr(at_s, value)
            else:
                mat.set_patient(at_s, value)
        reading = mat.sensor_at(t_s)
        if t_s >= 0.0:
            peak_c = max(peak_c, reading)
            if band_s is None and abs(reading - setpoint_c) <= BAND_C:
                band_s = t_s
            if t_s >= cut_s and _settled(mat):
                break
    return band_s, peak_c


def fastest_band_s(params: MatParams, events: list[dict], setpoint_c: float,
                   overshoot_c: float) -> tuple[float | None, float | None]:
    """(full power's time to the band, the one-switch bound: the latest cut whose reading never
    passes ``setpoint + overshoot_c``, and when its reading enters the band); (None, None) where
    full power never gets there. The peak rises with the cut, so the cut is bisected."""
    full_s, _ = warmup(params, events, setpoint_c, float("inf"))
    if full_s is None:
        return None, None
    low, high = 0.0, full_s
    while high - low > SAMPLE_S / 4:
        cut_s = (low + high) / 2
        _, peak_c = warmup(params, events, setpoint_c, cut_s)
        low, high = (cut_s, high) if peak_c <= setpoint_c + overshoot_c else (low, cut_s)
    band_s, _ = warmup(params, events, setpoint_c, low)
    return full_s, band_s


def liedown_recovery_s(params: MatParams, setpoint_c: float, horizon_s: float = 1800.0) -> float:
    """From a hold at the setpoint, a patient lies down and the heater goes to full power at
    once: seconds until the reading is back within the band (0 if it never leaves it)."""
    mat = at_hold(params, setpoint_c, patient_on=False)
    mat.set_patient(0.0, True)
    mat.set_ssr(0.0, 1.0)
    left = False
    t_s = 0.0
    while t_s < horizon_s:
        t_s += SAMPLE_S
        reading = mat.sensor_at(t_s)
        if reading < setpoint_c - BAND_C:
            left = True
        elif left:
            return t_s
        elif reading > mat.surface_c:   # still falling towards the surface
            continue
        else:
            return 0.0
    return float("inf")


def getup_peak_c(params: MatParams, hold_c: float) -> float:
    """The mat held at ``hold_c`` with the patient on; she gets up and the heater is cut at
    once: the highest true surface within the get-up window."""
    mat = at_hold(params, hold_c, patient_on=True)
    mat.set_patient(0.0, False)
    mat.set_ssr(0.0, 0.0)
    peak_c, t_s = mat.surface_c, 0.0
    while t_s < GETUP_WINDOW_S:
        t_s += SAMPLE_S
        mat.advance_to(t_s)
        peak_c = max(peak_c, mat.surface_c)
        if mat.element_c <= mat.surface_c:
            break
    return peak_c


def getup_reserve_c(params: MatParams, setpoint_c: float) -> float:
    """How far below the setpoint the mat must be held while the patient lies on it so that,
    the heater cut when she gets up, the surface stays within the get-up targets."""
    limit_c = min(setpoint_c + GETUP_EXCESS_C, GETUP_SURFACE_C)
    if getup_peak_c(params, setpoint_c) <= limit_c:
        return 0.0
    low, high = setpoint_c - 10.0, setpoint_c     # the peak rises with the hold temperature
    while high - low > 0.005:
        mid = (low + high) / 2
        low, high = (mid, high) if getup_peak_c(params, mid) <= limit_c else (low, mid)
    return setpoint_c - low


def bounds_of(job: tuple[int, int]) -> dict | None:
    """Every bound for scenario ``index`` of ``seed``; None for a session without heat."""
    index, seed = job
    scenario = sweep.draw(index, seed, fault=False)
    config = Config()
    setpoint_c = config.levels.get(scenario["run"]["level"])
    if setpoint_c is None or scenario["run"]["program"] in config.HEATLESS_PROGRAMS:
        return None
    params = mat_params(scenario["plant"])
    patients = [e for e in scenario["event"] if e["action"] in ("patient_on", "patient_off")]
    out = {"index": index, "setpoint_c": setpoint_c}
    if not scenario["run"]["prewarm_s"]:
        for overshoot_c in OVERSHOOT_TARGETS_C:
            full_s, best_s = fastest_band_s(params, patients, setpoint_c, overshoot_c)
            if full_s:
                out[f"ratio_{overshoot_c}"] = round(best_s / full_s, 4)
    lies_down = any(e["action"] == "patient_on" and e["at_s"] > 0 for e in patients)
    if lies_down and can_hold(scenario["plant"], setpoint_c, True):
        out["liedown_recovery_s"] = liedown_recovery_s(params, setpoint_c)
    if any(e["action"] == "patient_off" for e in patients):
        out["getup_floor_c"] = round(getup_peak_c(params, setpoint_c) - setpoint_c, 3)
        out["getup_reserve_c"] = round(getup_reserve_c(params, setpoint_c), 3)
    return out


def summarise(rows: list[dict]) -> dict:
    """Per bound: n, p50, p95, max, and how many scenarios no controller can bring within the
    issue's target (``beyond_target``)."""
    def stats(key: str, target: float) -> dict:
        values = sorted(r[key] for r in rows if key in r)
        if not values:
            return {"n": 0}
        return {"n": len(values), "p50": sweep.percentile(values, 0.5),
                "p95": sweep.percentile(values, 0.95), "max": values[-1],
                "beyond_target": sum(v > target for v in values), "target": target}
    out = {f"ratio_{x}": stats(f"ratio_{x}", RATIO_MAX) for x in OVERSHOOT_TARGETS_C}
    out["liedown_recovery_s"] = stats("liedown_recovery_s", RECOVERY_TARGET_S)
    out["getup_floor_c"] = stats("getup_floor_c", GETUP_EXCESS_C)
    out["getup_reserve_c"] = stats("getup_reserve_c", RMS_TARGET_C)
    return out


def table(summary: dict) -> str:
    low, high = OVERSHOOT_TARGETS_C
    ratio = "time to band / full power's, overshoot ≤ {:g} °C"
    rows = [(ratio.format(low), f"ratio_{low}", f"> {RATIO_MAX:g}"),
            (ratio.format(high), f"ratio_{high}", f"> {RATIO_MAX:g}"),
            ("lie-down recovery at full power, s", "liedown_recovery_s",
             f"> {RECOVERY_TARGET_S:g} s"),
            ("get-up floor (surface − sp, heater cut at once), °C", "getup_floor_c",
             f"> {GETUP_EXCESS_C:g}"),
            ("hold below sp needed for the get-up targets, °C", "getup_reserve_c",
             f"> {RMS_TARGET_C:g}")]
    lines = ["| bound | n | p50 | p95 | max | beyond |", "|---|---|---|---|---|---|"]
    for label, key, beyond in rows:
        s = summary[key]
        if s["n"]:
            lines.append(f"| {label} | {s['n']} | {s['p50']:g} | {s['p95']:g} | {s['max']:g} | "
                         f"{s['beyond_target']} {beyond} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = sweep_parser(__doc__, runs=500, seed=1)
    args = parser.parse_args(argv or [])
    jobs = [(i, args.seed) for i in range(args.runs)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = [r for r in pool.map(bounds_of, jobs, chunksize=8) if r is not None]
    summary = {"runs": args.runs, "seed": args.seed, "bounds": summarise(rows)}
    print(table(summary["bounds"]), flush=True)
    return summary


if __name__ == "__main__":
    print(json.dumps(main(__import__("sys").argv[1:])))
