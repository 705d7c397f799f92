"""Control-quality benchmark (issue 7): every scenario under ``bench/scenarios`` with every
controller, as a table and as JSON.

    python -m bench.control_bench [--json] [--controllers ours,bang_bang] [--scenarios GLOB]

Each run is ``lumbarest-sim SCENARIO --controller NAME --json`` in-process. ``full_power``'s time to
the band is the physical lower bound for that mat; ``ratio`` is each controller's time over it.
Faults in a benchmark run are false alarms and are listed. ``main()`` returns
``{"results": [...], "summary": {...}}`` for ``python -m bench``.
"""

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from appliance.sim import run_file

SCENARIO_DIR = Path(__file__).parent / "scenarios"
CONTROLLERS = ("ours", "bang_bang", "kiln_pid", "full_power")
TARGETS = {"overshoot_c": 0.3, "surface_over_c": 0.5, "ratio": 1.15, "rms_error_c": 0.15,
           "load_recovery_s": 120.0}


def _one(job: tuple[str, str]) -> dict:
    path, controller = job
    result, _ = run_file(path, controller)
    result["scenario"] = Path(path).stem
    result["controller"] = controller
    return result


def run(scenarios: list[Path], controllers: tuple[str, ...], workers: int = 2) -> list[dict]:
    jobs = [(str(p), c) for p in scenarios for c in controllers]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_one, jobs))
    bounds = {r["scenario"]: r["time_to_band_s"] for r in results if r["controller"] == "full_power"}
    for r in results:
        bound = bounds.get(r["scenario"])
        r["ratio"] = round(r["time_to_band_s"] / bound, 3) if bound and r["time_to_band_s"] else None
    return results


def misses(r: dict) -> list[str]:
    """The targets of issue 7 that this run misses (for ``ours``)."""
    out = []
    if r["overshoot_c"] > TARGETS["overshoot_c"]:
        out.append("overshoot")
    if r["setpoint_c"] is not None and r["max_surface_c"] > r["setpoint_c"] + TARGETS["surface_over_c"]:
        out.append("surface")
    if r["ratio"] is None or r["ratio"] > TARGETS["ratio"]:
        out.append("time")
    if r["rms_error_c"] is None or r["rms_error_c"] > TARGETS["rms_error_c"]:
        out.append("rms")
    if r["load_recovery_s"] and r["load_recovery_s"][0] > TARGETS["load_recovery_s"]:
        out.append("recovery")
    if r["faults"]:
        out.append("false alarm")
    return out


def table(results: list[dict]) -> str:
    head = ("| scenario | controller | time to band s | ratio | overshoot °C | max surface °C | "
            "rms °C | load recovery s | energy Wh | faults | misses |")
    lines = [head, "|" + "---|" * 11]
    for r in results:
        faults = ", ".join(f["code"] for f in r["faults"]) or "-"
        miss = ", ".join(misses(r)) if r["controller"] == "ours" else ""
        lines.append(f"| {r['scenario']} | {r['controller']} | {r['time_to_band_s']} | {r['ratio']} | "
                     f"{r['overshoot_c']} | {r['max_surface_c']} | {r['rms_error_c']} | "
                     f"{', '.join(str(x) for x in r['load_recovery_s']) or '-'} | "
                     f"{r['heater_energy_wh']} | {faults} | {miss or ('ok' if r['controller'] == 'ours' else '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--controllers", default=",".join(CONTROLLERS))
    parser.add_argument("--scenarios", default="*.toml")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args([] if argv is None else argv)
    controllers = tuple(args.controllers.split(","))
    if "full_power" not in controllers:
        controllers += ("full_power",)
    scenarios = sorted(SCENARIO_DIR.glob(args.scenarios))
    results = run(scenarios, controllers, args.workers)
    summary = {"runs": len(results),
               "ours_misses": {r["scenario"]: misses(r) for r in results
                               if r["controller"] == "ours" and misses(r)},
               "false_alarms": [{"scenario": r["scenario"], "controller": r["controller"],
                                 "faults": [f["code"] for f in r["faults"]]} for r in results if r["faults"]],
               "min_sim_speed": min(r["sim_speed"] for r in results)}
    if args.json:
        print(json.dumps({"results": results, "summary": summary}))
    else:
        print(table(results))
        print(json.dumps(summary))
    return {"results": results, "summary": summary}


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
