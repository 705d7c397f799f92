"""Control across the envelope (issue 12): every controller on the same random mats.

    python -m bench.control_sweep_bench [--runs N] [--seed S] [--jobs J] [--out DIR]

The same as ``lumbarest-sim --sweep N --seed S --control-report``: one markdown table (a row per
controller, the issue's targets first), one JSON object with every figure, and ``ours``'s worst
five scenarios written to ``control-worst/`` for re-running alone. 500 scenarios × 4 controllers
take about 40 min of one core (≈ 1.2 s a run). ``main()`` returns the JSON object.
"""

import json
from pathlib import Path

from appliance import control_report
from bench import sweep_parser


def main(argv: list[str] | None = None) -> dict:
    parser = sweep_parser(__doc__, runs=500, seed=1)
    parser.add_argument("--out", default="control-worst")
    args = parser.parse_args(argv or [])
    rows = control_report.run_report(args.runs, args.seed, jobs=args.jobs)
    summary = control_report.report(rows, args.seed, Path(args.out))
    print(control_report.table(summary), flush=True)
    return summary


if __name__ == "__main__":
    print(json.dumps(main(__import__("sys").argv[1:])))
