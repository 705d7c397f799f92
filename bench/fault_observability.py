"""When could any check first see a power fault? (issue 11, ``docs/safety.md``)

    python -m bench.fault_observability [--runs N] [--seed S] [--jobs J]

For every ``heater_open`` and ``ssr_stuck_on`` scenario among the first N of a faulted sweep,
runs the scenario and its fault-free twin — the same scenario without the fault, so the same
mat, events and sensor-noise draws — and finds the first moment after the fault's first effect
at which the two readings differ by more than 0.05 and 0.1 °C. Before that moment no check of
any design can know: the departure is a lower bound on detection, and the gap between it and
the detection time is what telling the fault from a working mat costs. A table and one JSON
object; not part of ``make bench`` (it runs the sweep's power faults twice).
"""

import copy
import json
from concurrent.futures import ProcessPoolExecutor

from appliance import sweep
from bench import sweep_parser

POWER_FAULTS = ("heater_open", "ssr_stuck_on")
DELTAS_C = (0.05, 0.1)


def _fault(scenario: dict) -> dict:
    return next(e for e in scenario["event"] if e["action"] == "fault")


def departure_s(faulted: list[tuple], twin: list[tuple], effect_s: float, delta_c: float) -> float | None:
    """Seconds from ``effect_s`` until the readings of two traces first differ by > ``delta_c``."""
    twin_at = {row[0]: row[1] for row in twin}
    for t_s, reading, *_ in faulted:
        other = twin_at.get(t_s)
        if t_s >= effect_s and reading is not None and other is not None and abs(reading - other) > delta_c:
            return round(t_s - effect_s, 2)
    return None


def measure(job: tuple[int, int]) -> dict | None:
    index, seed = job
    scenario = sweep.draw(index, seed, fault=True)
    fault = _fault(scenario)
    runner, result = sweep.run_scenario(scenario, f"observability {seed}/{index}")
    effect = result.get("fault_effect_at_s")
    if effect is None:
        return None   # a latent fault: nothing to see, nothing to miss
    twin = copy.deepcopy(scenario)
    twin["event"] = [e for e in twin["event"] if e["action"] != "fault"]
    twin_runner, _ = sweep.run_scenario(twin, f"observability {seed}/{index} twin")
    effect_s = max(effect, fault["at_s"])
    verdict = sweep.judge(result, scenario)
    return {"index": index, "fault": fault["fault"], "detect_s": verdict["detect_s"],
            "missed": bool(verdict["missed"]),
            "departure_s": {str(d): departure_s(runner.trace, twin_runner.trace, effect_s, d)
                            for d in DELTAS_C}}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for name in POWER_FAULTS:
        mine = [r for r in rows if r["fault"] == name]
        entry = {"runs": len(mine), "misses": sum(r["missed"] for r in mine),
                 "deadline_s": sweep.FAULT_RULES[name].deadline_s}
        for delta in map(str, DELTAS_C):
            seen = [r["departure_s"][delta] for r in mine if r["departure_s"][delta] is not None]
            entry[f"departure_{delta}_c"] = {
                "p50_s": sweep.percentile(seen, 0.5), "max_s": max(seen) if seen else None,
                "never": len(mine) - len(seen),
                "after_deadline": sum(s > entry["deadline_s"] for s in seen)}
        out[name] = entry
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = sweep_parser(__doc__, runs=1000, seed=12)
    args = parser.parse_args(argv or [])
    chosen = [i for i in range(args.runs)
              if _fault(sweep.draw(i, args.seed, fault=True))["fault"] in POWER_FAULTS]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = [r for r in pool.map(measure, [(i, args.seed) for i in chosen], chunksize=4) if r]
    summary = {"seed": args.seed, "runs": args.runs, "per_fault": summarise(rows)}
    print("| fault | runs | misses | departs > 0.05 °C p50 · max s | departs > 0.1 °C p50 · max s "
          "| departs after the deadline | deadline s |")
    print("|---|---|---|---|---|---|---|")
    for name, e in summary["per_fault"].items():
        d5, d10 = e["departure_0.05_c"], e["departure_0.1_c"]
        print(f"| {name} | {e['runs']} | {e['misses']} | {d5['p50_s']} · {d5['max_s']} | "
              f"{d10['p50_s']} · {d10['max_s']} | {d10['after_deadline'] + d10['never']} | "
              f"{e['deadline_s']:g} |")
    return summary


if __name__ == "__main__":
    import sys
    print(json.dumps(main(sys.argv[1:])))
