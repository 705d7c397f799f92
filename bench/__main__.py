"""``make bench``: every benchmark, one after the other; tables on stdout, then one JSON summary.

Benchmarks are scripts, never timed tests: their numbers depend on the machine.
"""

import importlib
import json
import sys

MODULES = ("bench.api_bench", "bench.kiosk_bench", "bench.control_bench", "bench.sweep_bench",
           "bench.control_sweep_bench",
           "bench.footprint_bench", "bench.fleet_bench")


def main() -> int:
    summary = {}
    for name in MODULES:
        print(f"\n## {name}\n", flush=True)
        try:
            module = importlib.import_module(name)
            summary[name] = module.main()
        except Exception as exc:  # noqa: BLE001 - one failing bench must not hide the others
            summary[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"{name} failed: {exc}", file=sys.stderr)
    print("\n## summary\n")
    print(json.dumps(summary, indent=2, default=str))
    return 1 if any(isinstance(v, dict) and "error" in v for v in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
