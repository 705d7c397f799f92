"""The envelope sweep: random sessions on random mats, with or without one injected fault.

``lumbarest-sim --sweep N --seed S [--faults] [--jobs J] [--controller NAME] [--out DIR]``

Each scenario is drawn from :data:`ENVELOPE` — the declared operating envelope of
``docs/safety.md``, relative to the configured ``[model]`` — with its own seeded random stream
(scenario *i* of seed *S* is the same on every machine), run through the whole simulated stack
(:class:`appliance.sim.ScenarioRun`), and judged:

* fault-free: any latched fault is a **false trip**; a true surface above
  :data:`FAULT_FREE_SURFACE_C` is a **surface** failure;
* faulted: the injected fault must be caught by one of its codes within its deadline
  (:data:`FAULT_RULES`) — else a **miss** —, nothing may trip before it (a false trip), and the
  true surface stays within the fault's limit. A welded SSR that never takes the surface more
  than :data:`STUCK_HARMLESS_C` above the setpoint (an element that full power cannot overheat
  here) is not counted as a miss; heater faults are not drawn for sessions without heat.

Every failing scenario is written to ``--out`` as a TOML file that ``lumbarest-sim FILE`` re-runs
alone. The report is a table and one JSON object (``--json`` prints only the JSON).
"""

import contextlib
import io
import json
import logging
import math
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hw.sim.plant import MatParams

#: Multipliers on the ``[model]`` value, or absolute ranges, of every mat and room parameter.
ENVELOPE = {
    "heater_w": ("scale", 0.6, 2.0),
    "element_j_per_k": ("scale", 0.6, 1.4),
    "surface_j_per_k": ("scale", 0.6, 1.4),
    "element_to_surface_w_per_k": ("scale", 0.6, 1.4),
    "surface_to_ambient_w_per_k": ("scale", 0.6, 1.4),
    "ambient_c": ("range", 15.0, 32.0),
    "sensor_tau_s": ("range", 4.0, 40.0),
    "sensor_noise_c": ("range", 0.0, 0.1),
    "patient_w_per_k": ("range", 2.0, 6.0),
    "patient_c": ("range", 32.0, 36.0),
}
PROGRAMS = ("quick", "standard", "deep", "traction")
PROGRAM_WEIGHTS = (3, 4, 3, 1)
LEVELS = ("low", "medium", "high")
FAULT_FREE_SURFACE_C = 41.0


@dataclass(frozen=True)
class FaultRule:
    codes: tuple[str, ...]     # latched codes that count as catching it
    deadline_s: float          # from injection
    max_surface_c: float       # true surface limit over the whole run


FAULT_RULES = {
    "rtd_open": FaultRule(("rtd_open",), 1.0, 41.0),
    "rtd_short": FaultRule(("rtd_short",), 1.0, 41.0),
    "refin": FaultRule(("refin",), 1.0, 41.0),
    "ovuv": FaultRule(("ovuv",), 1.0, 41.0),
    "spi_error": FaultRule(("spi_error",), 1.0, 41.0),
    "stale": FaultRule(("sensor_frozen", "sensor_stale", "sensor_dead"), 15.0, 41.0),
    "loop_stall": FaultRule(("loop_stall",), 1.0, 41.0),
    "ui_disconnect": FaultRule(("ui_lost",), 31.0, 41.0),
    "heater_open": FaultRule(("no_heating_effect",), 90.0, 41.0),
    "sensor_detached": FaultRule(("sensor_detached", "no_heating_effect"), 90.0, 41.0),
    "ssr_stuck_on": FaultRule(("heating_while_off", "over_temperature"), 120.0, 42.0),
}


#: Faults in the power path: they show only once the power delivered differs from the power asked.
POWER_FAULTS = ("heater_open", "ssr_stuck_on")
#: Faults that only show, and only matter, while the heater is wanted.
HEAT_FAULTS = ("heater_open", "ssr_stuck_on", "sensor_detached", "ui_disconnect")
#: A welded SSR that never takes the mat this far above the setpoint is harmless and cannot be
#: told from a working mat: not catching it within its deadline is then no miss.
STUCK_HARMLESS_C = 1.0


def _uniform(rng: random.Random, low: float, high: float, digits: int = 3) -> float:
    return round(rng.uniform(low, high), digits)


def draw_plant(rng: random.Random, model: MatParams) -> dict:
    plant = {}
    for name, (kind, low, high) in ENVELOPE.items():
        value = rng.uniform(low, high)
        plant[name] = round(getattr(model, name) * value if kind == "scale" else value, 4)
    return plant


def draw_patient_events(rng: random.Random, first_s: float | None, start_s: float,
                        end_s: float) -> list[dict]:
    """A patient lying down and getting up, alternately, at any moment (up to three times).

    ``first_s``: she is already lying down at that time (before Start), else the first lie-down
    is drawn like the rest between ``start_s`` and ``end_s``.
    """
    times = sorted(rng.uniform(start_s, end_s) for _ in range(rng.choice((1, 2, 2, 3, 4, 5))))
    if first_s is not None:
        times = [first_s] + times
    return [{"at_s": round(t, 2), "action": "patient_on" if i % 2 == 0 else "patient_off"}
            for i, t in enumerate(times)]


def draw(index: int, seed: int, *, fault: bool, model: MatParams | None = None) -> dict:
    """Scenario ``index`` of the sweep ``seed``, as a scenario dict (``docs/simulation.md``)."""
    rng = random.Random(f"lumbarest-sweep/{seed}/{index}/{'faults' if fault else 'clean'}")
    model = model or MatParams()
    program = rng.choices(PROGRAMS, PROGRAM_WEIGHTS)[0]
    minutes = {"quick": 20, "standard": 30, "deep": 45, "traction": 30}[program]
    planned_s = minutes * 60.0
    level = rng.choice(LEVELS)
    prewarm_s = round(rng.uniform(300, 1800)) if rng.random() < 0.2 else 0
    before_s = rng.uniform(1, 300) if rng.random() < 0.25 else 0.0   # patient on before Start
    start_s = -max(prewarm_s, before_s)
    events = draw_patient_events(rng, -before_s if before_s else None, start_s + 1.0, planned_s)
    fault_at = None
    fault_name = None
    if fault:
        # A session without heat cannot show a heater fault (and is not hurt by one).
        names = sorted(n for n in FAULT_RULES if program != "traction" or n not in HEAT_FAULTS)
        fault_name = rng.choice(names)
        rule = FAULT_RULES[fault_name]
        fault_at = round(rng.uniform(5.0, planned_s - rule.deadline_s - 30.0), 2)
        events.append({"at_s": fault_at, "action": "fault", "fault": fault_name})
    latest_pause = (fault_at - 30.0) if fault_at is not None else planned_s - 60
    if rng.random() < 0.15 and latest_pause > 60:
        at = rng.uniform(10, latest_pause - 30)
        resume = min(at + rng.uniform(10, 300), latest_pause)
        events += [{"at_s": round(at, 2), "action": "pause"},
                   {"at_s": round(resume, 2), "action": "resume"}]
    if rng.random() < 0.15:
        events.append({"at_s": round(rng.uniform(60, planned_s - 30), 2), "action": "extend"})
    events.sort(key=lambda e: e["at_s"])
    extended = any(e["action"] == "extend" for e in events)
    duration_s = planned_s + (300.0 if extended else 0.0) + 120.0
    if fault_name is not None and fault_name != "ssr_stuck_on":
        duration_s = min(duration_s, fault_at + FAULT_RULES[fault_name].deadline_s + 120.0)
    return {"plant": draw_plant(rng, model),
            "run": {"duration_s": round(duration_s, 2), "program": program, "level": level,
                    "seed": rng.randrange(1 << 30), "prewarm_s": prewarm_s},
            "event": events}


def judge(result: dict, scenario: dict) -> dict:
    """What the sweep counts for one run."""
    injected = next((e for e in scenario["event"] if e["action"] == "fault"), None)
    out = {"false_trips": [], "missed": None, "detect_s": None, "fault": None,
           "surface_c": result["max_surface_c"], "surface_failed": False}
    if injected is None:
        out["false_trips"] = [f["code"] for f in result["faults"]]
        out["surface_failed"] = result["max_surface_c"] > FAULT_FREE_SURFACE_C
        return out
    name, at_s = injected["fault"], injected["at_s"]
    rule = FAULT_RULES[name]
    out["fault"] = name
    out["false_trips"] = [f["code"] for f in result["faults"] if f["detected_at_s"] < at_s - 1e-6]
    caught = [f for f in result["faults"] if f["code"] in rule.codes and f["detected_at_s"] >= at_s - 1e-6]
    # A power fault is latent until the power delivered differs from the power asked for: a welded
    # SSR during a full-power warm-up, an open heater while the heater is off. Its deadline runs
    # from its first effect; one that never had any cannot be missed.
    effect_s = at_s
    if name in POWER_FAULTS:
        effect = result.get("fault_effect_at_s")
        out["latent_s"] = round(effect - at_s, 3) if effect is not None else None
        if effect is None:
            out["missed"] = False
            out["surface_failed"] = result["max_surface_c"] > rule.max_surface_c
            return out
        effect_s = max(at_s, effect)
    if caught:
        out["detect_s"] = round(caught[0]["detected_at_s"] - effect_s, 3)
    out["missed"] = not caught or out["detect_s"] > rule.deadline_s
    if name == "ssr_stuck_on" and out["missed"] and result["setpoint_c"] is not None:
        out["missed"] = result["max_surface_c"] > result["setpoint_c"] + STUCK_HARMLESS_C
    out["surface_failed"] = result["max_surface_c"] > rule.max_surface_c
    return out


def run_drawn(index: int, seed: int, *, fault: bool, controller: str | None = None,
              overrides: dict | None = None):
    """Draw scenario ``index`` of ``seed``, apply ``controller`` and ``overrides`` (configuration
    sections merged into it) and run it; returns (scenario, runner, result). The scenario returned
    is exactly what ran: ``to_toml`` of it re-runs the same session."""
    scenario = draw(index, seed, fault=fault)
    if controller:
        scenario["run"]["controller"] = controller
    for section, values in (overrides or {}).items():
        scenario[section] = {**scenario.get(section, {}), **values}
    runner, result = run_scenario(scenario, f"sweep {seed}/{index}")
    return scenario, runner, result


def run_scenario(scenario: dict, source: str):
    """Run a scenario dict quietly; returns (runner, result)."""
    from appliance.sim import ScenarioRun, parse_scenario
    logging.disable(logging.WARNING)  # the faults are in the result; thousands of log lines are not
    runner = ScenarioRun(parse_scenario(scenario, source))
    with contextlib.redirect_stderr(io.StringIO()):  # refused events of a faulted session
        return runner, runner.run()


def _run_one(job: tuple) -> tuple[int, dict, dict]:
    index, seed, fault, controller, overrides = job
    scenario, _, result = run_drawn(index, seed, fault=fault, controller=controller,
                                    overrides=overrides)
    return index, scenario, result


def run_sweep(count: int, seed: int, *, faults: bool, jobs: int = 2, controller: str | None = None,
              overrides: dict | None = None) -> list[tuple[int, dict, dict, dict]]:
    """Run ``count`` scenarios; returns (index, scenario, result, verdict) for each.

    ``overrides``: configuration sections merged into every scenario (``{"safety": {...}}``).
    """
    work = [(i, seed, faults, controller, overrides) for i in range(count)]
    if jobs <= 1:
        done = map(_run_one, work)
        return [(i, s, r, judge(r, s)) for i, s, r in done]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(_run_one, work, chunksize=max(1, count // (jobs * 8))))
    return [(i, s, r, judge(r, s)) for i, s, r in done]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def to_toml(scenario: dict) -> str:
    """The scenario as a TOML file (tables of scalars and ``[[event]]`` arrays only)."""
    def scalar(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        return repr(v)

    lines = []
    for name, table in scenario.items():
        if name == "event":
            continue
        lines.append(f"[{name}]")
        lines += [f"{k} = {scalar(v)}" for k, v in table.items()]
        lines.append("")
    for event in scenario.get("event", []):
        lines.append("[[event]]")
        lines += [f"{k} = {scalar(v)}" for k, v in event.items()]
        lines.append("")
    return "\n".join(lines)


def report(runs: list, seed: int, faults: bool, out_dir: Path | None) -> dict:
    """Summarise a sweep; write each failing scenario to ``out_dir``."""
    false_codes: dict[str, int] = {}
    per_fault: dict[str, dict] = {}
    failures = []
    for index, scenario, result, verdict in runs:
        for code in verdict["false_trips"]:
            false_codes[code] = false_codes.get(code, 0) + 1
        if verdict["fault"]:
            entry = per_fault.setdefault(verdict["fault"], {"runs": 0, "misses": 0, "times": []})
            entry["runs"] += 1
            entry["misses"] += bool(verdict["missed"])
            if verdict["detect_s"] is not None:
                entry["times"].append(verdict["detect_s"])
        failed = verdict["false_trips"] or verdict["missed"] or verdict["surface_failed"]
        if failed:
            why = (["false trip " + ",".join(verdict["false_trips"])] if verdict["false_trips"] else []) + \
                  ([f"missed {verdict['fault']}"] if verdict["missed"] else []) + \
                  ([f"surface {verdict['surface_c']}"] if verdict["surface_failed"] else [])
            path = None
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                path = out_dir / f"sweep-{seed}-{'faults' if faults else 'clean'}-{index}.toml"
                path.write_text(f"# {'; '.join(why)}\n" + to_toml(scenario))
            failures.append({"index": index, "why": why, "file": str(path) if path else None})
    fault_table = {}
    for name, entry in sorted(per_fault.items()):
        times = entry["times"]
        fault_table[name] = {"runs": entry["runs"], "misses": entry["misses"],
                             "detect_p50_s": percentile(times, 0.5),
                             "detect_p99_s": percentile(times, 0.99),
                             "detect_max_s": max(times) if times else None,
                             "deadline_s": FAULT_RULES[name].deadline_s}
    surfaces = [r["max_surface_c"] for _, _, r, _ in runs]
    return {
        "seed": seed, "faults": faults, "runs": len(runs),
        "false_trips": {"count": sum(bool(v["false_trips"]) for *_, v in runs), "codes": false_codes},
        "misses": sum(bool(v["missed"]) for *_, v in runs),
        "surface_failures": sum(v["surface_failed"] for *_, v in runs),
        "max_surface_c": max(surfaces) if surfaces else None,
        "per_fault": fault_table,
        "failures": failures,
        "wall_s_total": round(sum(r["wall_s"] for _, _, r, _ in runs), 1),
    }


def table(summary: dict) -> str:
    lines = [f"sweep seed {summary['seed']}, {'one fault each' if summary['faults'] else 'fault-free'}: "
             f"{summary['runs']} runs, false trips {summary['false_trips']['count']} "
             f"{summary['false_trips']['codes'] or ''}, misses {summary['misses']}, "
             f"surface failures {summary['surface_failures']}, highest true surface "
             f"{summary['max_surface_c']} °C"]
    if summary["per_fault"]:
        lines += ["", "| fault | runs | misses | p50 s | p99 s | max s | deadline s |",
                  "|---|---|---|---|---|---|---|"]
        for name, e in summary["per_fault"].items():
            lines.append(f"| {name} | {e['runs']} | {e['misses']} | {e['detect_p50_s']} | "
                         f"{e['detect_p99_s']} | {e['detect_max_s']} | {e['deadline_s']:g} |")
    for failure in summary["failures"][:20]:
        lines.append(f"FAILED #{failure['index']}: {'; '.join(failure['why'])} -> {failure['file']}")
    if len(summary["failures"]) > 20:
        lines.append(f"... and {len(summary['failures']) - 20} more")
    return "\n".join(lines)


def main(count: int, seed: int, *, faults: bool, jobs: int, controller: str | None,
         out_dir: str | None, as_json: bool) -> int:
    runs = run_sweep(count, seed, faults=faults, jobs=jobs, controller=controller)
    summary = report(runs, seed, faults, Path(out_dir) if out_dir else None)
    if not as_json:
        print(table(summary))
    print(json.dumps(summary))
    failed = summary["false_trips"]["count"] or summary["misses"] or summary["surface_failures"]
    return 1 if failed else 0

