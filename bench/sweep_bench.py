"""Envelope sweep (issue 11): random fault-free and faulted sessions on random mats.

    python -m bench.sweep_bench [--runs N] [--seed S] [--jobs J]

The same as ``lumbarest-sim --sweep N --seed S [--faults]``: a table per sweep, failing
scenarios written to ``sweep-failures/`` for re-running alone. ``main()`` returns both summaries.
"""

from pathlib import Path

from appliance import sweep
from bench import sweep_parser


def main(argv: list[str] | None = None) -> dict:
    parser = sweep_parser(__doc__, runs=200, seed=1)
    args = parser.parse_args(argv or [])
    out = {}
    for faults in (False, True):
        runs = sweep.run_sweep(args.runs, args.seed, faults=faults, jobs=args.jobs)
        summary = sweep.report(runs, args.seed, faults, Path("sweep-failures"))
        print(sweep.table(summary), flush=True)
        summary["failures"] = summary["failures"][:20]
        out["faulted" if faults else "fault_free"] = summary
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(main(__import__("sys").argv[1:])))
