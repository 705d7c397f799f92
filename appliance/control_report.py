"""The control report of the envelope sweep (issue 12): every controller on the same random mats.

``lumbarest-sim --sweep N --seed S --control-report [--jobs J] [--out DIR] [--json]``

For each of the N fault-free scenarios that :func:`appliance.sweep.draw` gives for seed S, every
controller of :data:`CONTROLLERS` runs the **same** session (same mat, room, patient, events and
noise seed) with the heating-effect checks blinded (:func:`blind_safety`): a false trip of
``heating_while_off``, ``no_heating_effect`` or ``sensor_detached`` would end the session and cut
a controller's figure short, and that is the safety's business (``lumbarest-sim --sweep``), not
the controller's. Every other rule (over-temperature, sensor faults, the heating time cap) stays.

The measures (:func:`measure`, pure over one run's trace) and the targets of the issue:

========================  =====================================================  ==============
key                       what                                                   target
========================  =====================================================  ==============
``time_ratio``            time to the ±0.5 °C band / ``full_power``'s, cold       p95 ≤ 1.10,
                          starts only (no pre-warm)                               max ≤ 1.20
``overshoot_c``           reading − setpoint after the band, sessions where       p95 ≤ 0.2,
                          nobody gets up                                          max ≤ 0.3
``patient_on_excess_c``   true surface − setpoint while a patient lies on it      ≤ 0.3 always
``getup_excess_c``        true surface − setpoint within 10 min after a get-up    ≤ 0.6 always
``getup_surface_c``       true surface within 10 min after a get-up               ≤ 41.0 always
``rms_c``                 reading − setpoint, steady state (below)                p95 ≤ 0.10
``liedown_recovery_s``    after a lie-down on a mat in the band, until the        p95 ≤ 60
                          reading is back inside ±0.5 °C for good
========================  =====================================================  ==============

"Reading" is the 2 s moving average of the trusted reading (:func:`appliance.sim.smoothed`), as
in every other control figure. Steady state: from 5 min after the band was reached, leaving out
the 5 min after every lie-down, get-up and resume, and only while the element can hold the
setpoint under the load of that moment (:func:`can_hold`) — a mat too weak for its level is a
notice (``cannot_reach``), not a control error. The same holds for lie-down recoveries.
"""

import json
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields
from pathlib import Path

from appliance.config import SafetyConfig
from appliance.sim import BAND_C, GETUP_WINDOW_S, smoothed
from appliance.sweep import percentile, run_drawn, to_toml
from hw.sim.plant import MatParams

CONTROLLERS = ("ours", "full_power", "kiln_pid", "bang_bang")
#: The issue's targets: (statistic, bound) per measure.
TARGETS = {
    "time_ratio": (("p95", 1.10), ("max", 1.20)),
    "overshoot_c": (("p95", 0.2), ("max", 0.3)),
    "patient_on_excess_c": (("max", 0.3),),
    "getup_excess_c": (("max", 0.6),),
    "getup_surface_c": (("max", 41.0),),
    "rms_c": (("p95", 0.10),),
    "liedown_recovery_s": (("p95", 60.0),),
}
STEADY_AFTER_S = 300.0      # steady state begins this long after the band, a patient event, a resume
#: The element must be able to give this much more than the load at the setpoint to "hold" it:
#: at 100 % a controller has no authority left to correct anything.
HOLD_MARGIN = 1.2
PREWARM_LEVEL = "low"

#: The checks that judge the heating effect, and which end of its allowed range makes each of
#: their keys unable to trip on any mat (``max`` = the upper bound, ``min`` = the lower).
BLIND_KEYS = {
    # heating_while_off: needs 5 °C of rise over a window with the heater off, more than 5 °C
    # over the setpoint (past the 42 °C trip) or off for 15 min above 38.5 °C.
    "stuck_min_rise_c": "max", "stuck_margin_c": "max", "stuck_settle_s": "max",
    "envelope_patient_max_c": "max", "envelope_room_max_c": "max",
    # no_heating_effect: more than 500 W missing, and all of the model's inflow, at 100 % duty.
    "missing_heat_w": "max", "missing_heat_ratio": "max", "missing_min_duty": "max",
    # sensor_detached: a fall 5 °C faster than a 30 W/K patient at 25 °C on the lightest mat in
    # a 0 °C room could cause.
    "fall_margin_c": "max", "envelope_scale_max": "max", "envelope_scale_min": "min",
    "envelope_room_min_c": "min", "envelope_patient_min_c": "min",
    "envelope_patient_max_w_per_k": "max",
    # and each must persist for a minute.
    "balance_confirm_s": "max",
}


def blind_safety() -> dict:
    """``[safety]`` overrides that keep the heating-effect checks from tripping, each key at the
    end of its allowed range (read from :class:`SafetyConfig`, so it stays a valid config)."""
    ranges = {f.name: f.metadata["range"] for f in fields(SafetyConfig)}
    return {key: float(ranges[key][1] if end == "max" else ranges[key][0])
            for key, end in BLIND_KEYS.items()}


def can_hold(plant: dict, setpoint_c: float, patient_on: bool, margin: float = HOLD_MARGIN) -> bool:
    """Whether the element can hold ``setpoint_c`` at the surface, with ``margin``, under the
    room's and (``patient_on``) the patient's load: ``heater_w ≥ margin × (G_sa (sp − room) +
    G_p (sp − T_p))``. In steady state the element passes all of its power to the surface."""
    p = {**MatParams().__dict__, **plant}
    load_w = p["surface_to_ambient_w_per_k"] * (setpoint_c - p["ambient_c"])
    if patient_on:
        load_w += p["patient_w_per_k"] * (setpoint_c - p["patient_c"])
    return p["heater_w"] >= margin * load_w


def targets_of(trace: list[tuple], prewarm_setpoint_c: float | None) -> list[float | None]:
    """The setpoint each trace row answers to: the session's; the pre-warm's before the session
    starts (the trace has none then); after the session the last one (the mat is still warm)."""
    out, last = [], None
    for t, _, _, sp, *_ in trace:
        if sp is not None:
            last = sp
        elif t < 0:
            last = prewarm_setpoint_c
        out.append(last if sp is None else sp)
    return out


def _transitions(trace: list[tuple]) -> tuple[list[float], list[float], list[float]]:
    """Times of lie-downs, get-ups and resumes in the trace."""
    downs, ups, resumes = [], [], []
    for prev, row in zip(trace, trace[1:]):
        if row[7] and not prev[7]:
            downs.append(row[0])
        elif prev[7] and not row[7]:
            ups.append(row[0])
        if prev[6] == "paused" and row[6] == "running":
            resumes.append(row[0])
    return downs, ups, resumes


def measure(trace: list[tuple], plant: dict, setpoint_c: float | None,
            prewarm_setpoint_c: float | None = None) -> dict | None:
    """The control figures of one run (see the module docstring); ``None`` for a session
    without heat. ``trace`` rows are :attr:`appliance.sim.ScenarioRun.trace`'s."""
    if setpoint_c is None or not trace:
        return None
    downs, ups, resumes = _transitions(trace)
    if trace[0][7]:
        downs.insert(0, trace[0][0])
    running = [row[0] for row in trace if row[6] == "running"]
    heat_end = running[-1] if running else 0.0
    readings = smoothed([(row[0], row[1]) for row in trace if row[1] is not None])
    in_session = [(t, c) for t, c in readings if 0.0 <= t <= heat_end]
    band_s = next((t for t, c in in_session if abs(c - setpoint_c) <= BAND_C), None)

    overshoot = None
    if band_s is not None and not any(t <= heat_end for t in ups):
        overshoot = max(0.0, max(c - setpoint_c for t, c in in_session if t >= band_s))

    targets = targets_of(trace, prewarm_setpoint_c)
    on_excess = [row[2] - sp for row, sp in zip(trace, targets) if row[7] and sp is not None]
    getup_excess, getup_surface = [], []
    for up in ups:
        # against the setpoint of each moment: a get-up in a pre-warm is followed by the
        # session's own, higher setpoint, which is no excess
        window = [(row[2], sp) for row, sp in zip(trace, targets)
                  if up <= row[0] <= up + GETUP_WINDOW_S and not row[7]]
        if window:
            getup_surface.append(max(surface for surface, _ in window))
            excess = [surface - sp for surface, sp in window if sp is not None]
            if excess:
                getup_excess.append(max(excess))

    patient_at = {row[0]: row[7] for row in trace}
    heating_at = {row[0]: row[6] == "running" for row in trace}
    events = sorted(downs + ups + resumes)
    rms = None
    if band_s is not None:
        # a pause is not control: the heater is off by the user's choice
        errors = [(c - setpoint_c) ** 2 for t, c in in_session
                  if heating_at[t] and t >= band_s + STEADY_AFTER_S
                  and not any(0.0 <= t - e <= STEADY_AFTER_S for e in events)
                  and can_hold(plant, setpoint_c, patient_at[t])]
        rms = math.sqrt(sum(errors) / len(errors)) if errors else None

    recoveries = []
    if band_s is not None and can_hold(plant, setpoint_c, True):
        for down in downs:
            if not band_s <= down < heat_end:
                continue
            before = [c for t, c in in_session if t <= down]
            if not before or abs(before[-1] - setpoint_c) > BAND_C:
                continue   # not lying down on a mat at its setpoint
            until = min([e for e in events + [heat_end] if e > down]
                        + [t for t in _pauses(trace) if t > down], default=heat_end)
            outside = [t for t, c in in_session if down <= t <= until and abs(c - setpoint_c) > BAND_C]
            recoveries.append(outside[-1] - down if outside else 0.0)

    return {
        "setpoint_c": setpoint_c,
        "time_to_band_s": band_s,
        "overshoot_c": _r(overshoot),
        "patient_on_excess_c": _r(max(on_excess, default=None)),
        "getup_excess_c": _r(max(getup_excess, default=None)),
        "getup_surface_c": _r(max(getup_surface, default=None)),
        "rms_c": _r(rms, 4),
        "liedown_recovery_s": [round(r, 2) for r in recoveries],
    }


def _pauses(trace: list[tuple]) -> list[float]:
    return [row[0] for prev, row in zip(trace, trace[1:]) if prev[6] == "running" and row[6] == "paused"]


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _measure_one(job: tuple) -> tuple[int, str, dict, dict | None, list]:
    index, seed, controller = job
    scenario, runner, result = run_drawn(index, seed, fault=False, controller=controller,
                                         overrides={"safety": blind_safety()})
    levels = runner.core.settings_values["levels"]
    prewarm_c = levels.get(PREWARM_LEVEL) if scenario["run"]["prewarm_s"] else None
    if prewarm_c is not None:
        prewarm_c = min(prewarm_c, runner.config.safety.max_setpoint_c)
    figures = measure(runner.trace, scenario["plant"], result["setpoint_c"], prewarm_c)
    faults = [f["code"] for f in result["faults"]]
    return index, controller, scenario, figures, faults


def run_report(count: int, seed: int, *, jobs: int = 2,
               controllers: tuple[str, ...] = CONTROLLERS) -> list[dict]:
    """Run every controller on the first ``count`` fault-free scenarios of ``seed``; one row per
    (scenario, controller): ``{index, controller, scenario, figures, faults}``, ``figures`` None
    for a session without heat."""
    work = [(i, seed, c) for i in range(count) for c in controllers]
    if jobs <= 1:
        done = list(map(_measure_one, work))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            done = list(pool.map(_measure_one, work, chunksize=max(1, len(work) // (jobs * 8))))
    return [{"index": i, "controller": c, "scenario": s, "figures": f, "faults": faults}
            for i, c, s, f, faults in done]


def with_ratios(rows: list[dict]) -> list[dict]:
    """Add ``time_ratio`` to each row's figures: its time to the band over ``full_power``'s on
    the same scenario, for cold starts (no pre-warm) where ``full_power`` reached the band after
    t = 0. ``inf`` where the controller never reached a band that full power reached."""
    bound = {r["index"]: r["figures"]["time_to_band_s"] for r in rows
             if r["controller"] == "full_power" and r["figures"]}
    for r in rows:
        if not r["figures"]:
            continue
        fp = bound.get(r["index"])
        mine = r["figures"]["time_to_band_s"]
        cold = not r["scenario"]["run"]["prewarm_s"]
        if not cold or not fp:
            r["figures"]["time_ratio"] = None
        else:
            r["figures"]["time_ratio"] = round(mine / fp, 4) if mine is not None else math.inf
    return rows


def _stat(values: list[float], which: str) -> float | None:
    if not values:
        return None
    value = max(values) if which == "max" else percentile(values, 0.5 if which == "p50" else 0.95)
    return None if math.isinf(value) else round(value, 4)


def summarise(rows: list[dict], controller: str) -> dict:
    """Every figure of one controller over the sweep."""
    mine = [r for r in rows if r["controller"] == controller]
    heated = [r["figures"] for r in mine if r["figures"]]

    def values(key: str) -> list[float]:
        out = []
        for f in heated:
            v = f.get(key)
            out += v if isinstance(v, list) else ([] if v is None else [v])
        return out

    ratios = values("time_ratio")
    over = values("overshoot_c")
    on = values("patient_on_excess_c")
    up = values("getup_excess_c")
    up_c = values("getup_surface_c")
    rms = values("rms_c")
    rec = values("liedown_recovery_s")
    codes: dict[str, int] = {}
    for r in mine:
        for code in r["faults"]:
            codes[code] = codes.get(code, 0) + 1
    return {
        "runs": len(mine), "heated": len(heated),
        "time_ratio": {"n": len(ratios), "p50": _stat(ratios, "p50"), "p95": _stat(ratios, "p95"),
                       "max": _stat(ratios, "max"), "never": sum(math.isinf(v) for v in ratios)},
        "overshoot_c": {"n": len(over), "p95": _stat(over, "p95"), "max": _stat(over, "max")},
        "patient_on_excess_c": {"n": len(on), "max": _stat(on, "max"),
                                "over_0_3": sum(v > 0.3 for v in on)},
        "getup_excess_c": {"n": len(up), "max": _stat(up, "max"), "over_0_6": sum(v > 0.6 for v in up)},
        "getup_surface_c": {"n": len(up_c), "max": _stat(up_c, "max"),
                            "over_41_0": sum(v > 41.0 for v in up_c)},
        "rms_c": {"n": len(rms), "p95": _stat(rms, "p95")},
        "liedown_recovery_s": {"n": len(rec), "p95": _stat(rec, "p95")},
        "faults": {"runs": sum(bool(r["faults"]) for r in mine), "codes": codes},
    }


def misses(figures: dict) -> list[str]:
    """Which of the issue's bounds one run's figures break (for naming the worst scenarios)."""
    out = []
    for key, bounds in TARGETS.items():
        value = figures.get(key)
        worst = max(value, default=None) if isinstance(value, list) else value
        if worst is not None and worst > max(b for _, b in bounds):
            out.append(f"{key} {worst if not math.isinf(worst) else 'never'} > {max(b for _, b in bounds):g}")
    return out


def badness(figures: dict) -> float:
    """How far one run is from the targets: the largest value / bound over its measures (the
    absolute surface counts by how far it is above the setpoint's bound instead)."""
    scores = []
    for key, bounds in TARGETS.items():
        value = figures.get(key)
        worst = max(value, default=None) if isinstance(value, list) else value
        if worst is None:
            continue
        bound = max(b for _, b in bounds)
        if key == "getup_surface_c":
            scores.append(1.0 + (worst - bound) / 0.6)
        else:
            scores.append(worst / bound)
    return max(scores, default=0.0)


def report(rows: list[dict], seed: int, out_dir: Path | None, worst: int = 5) -> dict:
    """The JSON object: per controller every figure, the targets, and ``ours``'s worst scenarios
    (written to ``out_dir`` as TOML files that ``lumbarest-sim FILE`` re-runs)."""
    rows = with_ratios(rows)
    ours = sorted((r for r in rows if r["controller"] == "ours" and r["figures"]),
                  key=lambda r: badness(r["figures"]), reverse=True)[:worst]
    named = []
    for r in ours:
        why = misses(r["figures"]) or [f"within the targets (score {badness(r['figures']):.2f})"]
        path = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"control-{seed}-{r['index']}.toml"
            path.write_text(f"# control report seed {seed}, scenario {r['index']}, ours: "
                            f"{'; '.join(why)}\n" + to_toml(r["scenario"]))
        named.append({"index": r["index"], "why": why, "score": round(badness(r["figures"]), 3),
                      "figures": {k: (None if isinstance(v, float) and math.isinf(v) else v)
                                  for k, v in r["figures"].items()},
                      "file": str(path) if path else None})
    controllers = sorted({r["controller"] for r in rows}, key=lambda c: (CONTROLLERS + (c,)).index(c))
    summary = {"seed": seed, "scenarios": len({r["index"] for r in rows}),
               "targets": {k: dict(v) for k, v in TARGETS.items()},
               "blinded_safety": blind_safety(), "hold_margin": HOLD_MARGIN,
               "controllers": {c: summarise(rows, c) for c in controllers},
               "worst_ours": named}
    summary["ours_meets_targets"] = meets(summary["controllers"].get("ours"))
    return summary


def meets(figures: dict | None) -> bool | None:
    """Whether one controller's summary meets every target of the issue."""
    if figures is None:
        return None
    for key, bounds in TARGETS.items():
        for stat, bound in bounds:
            value = figures[key][stat]
            if key == "time_ratio" and figures[key]["never"]:
                return False
            if value is not None and value > bound:
                return False
    return True


COLUMNS = (("time_ratio", "time to band / full power p50 · p95 · max", ("p50", "p95", "max")),
           ("overshoot_c", "overshoot °C, nobody gets up p95 · max", ("p95", "max")),
           ("patient_on_excess_c", "surface − sp, patient on max (n > 0.3)", ("max", "over_0_3")),
           ("getup_excess_c", "surface − sp after get-up max (n > 0.6)", ("max", "over_0_6")),
           ("getup_surface_c", "surface after get-up max °C (n > 41.0)", ("max", "over_41_0")),
           ("rms_c", "steady rms °C p95", ("p95",)),
           ("liedown_recovery_s", "lie-down recovery s p95", ("p95",)))


def table(summary: dict) -> str:
    """One markdown table: a row per controller, the issue's targets as the first row."""
    def cell(entry: dict, stats: tuple[str, ...]) -> str:
        parts = []
        for stat in stats:
            value = entry[stat]
            text = "-" if value is None else f"{value:g}"
            if value is None and entry.get("never") and stat in ("p95", "max"):
                text = "∞"   # the statistic falls on a run that never reached the band
            parts.append(f"({text})" if stat.startswith("over_") else text)
        if entry.get("never"):
            parts.append(f"never {entry['never']}")
        return " · ".join(parts)

    head = "| controller | " + " | ".join(title for _, title, _ in COLUMNS) + " | faults |"
    lines = [f"control report, sweep seed {summary['seed']}, {summary['scenarios']} fault-free "
             f"scenarios, heating-effect checks blinded", "", head, "|---" * (len(COLUMNS) + 2) + "|"]
    target = {"time_ratio": "≤ 1.10 (p95) · ≤ 1.20", "overshoot_c": "≤ 0.2 · ≤ 0.3",
              "patient_on_excess_c": "≤ 0.3 (0)", "getup_excess_c": "≤ 0.6 (0)",
              "getup_surface_c": "≤ 41.0 (0)", "rms_c": "≤ 0.10", "liedown_recovery_s": "≤ 60"}
    lines.append("| *target* | " + " | ".join(target[k] for k, _, _ in COLUMNS) + " | 0 |")
    for name, entry in summary["controllers"].items():
        faults = entry["faults"]
        lines.append(f"| {name} | " + " | ".join(cell(entry[k], stats) for k, _, stats in COLUMNS)
                     + f" | {faults['runs']} {faults['codes'] or ''} |")
    lines += ["", "n per measure (ours): " + ", ".join(
        f"{k} {v['n']}" for k, v in summary["controllers"].get("ours", {}).items()
        if isinstance(v, dict) and "n" in v)]
    for w in summary["worst_ours"]:
        lines.append(f"WORST #{w['index']}: {'; '.join(w['why'])} -> {w['file']}")
    return "\n".join(lines)


def main(count: int, seed: int, *, jobs: int, out_dir: str | None, as_json: bool) -> int:
    """The CLI (``lumbarest-sim --sweep N --control-report``): 0 if ``ours`` meets every target."""
    rows = run_report(count, seed, jobs=jobs)
    summary = report(rows, seed, Path(out_dir) if out_dir else None)
    if not as_json:
        print(table(summary))
    print(json.dumps(summary))
    return 0 if summary["ours_meets_targets"] else 1
