"""Footprint benchmark (issue 7): the appliance process's CPU share and resident memory while it
heats a simulated mat in real time, and the simulator's speed for a 45-minute session.

    python -m bench.footprint_bench [--seconds 60] [--json]

Starts ``lumbarest-appliance`` (simulation mode, real time, its configured sample rate) with a
temporary ``STATE_DIRECTORY`` and ``--socket``, waits for ``ready``, starts a ``standard`` session
at level ``high`` through :mod:`appliance.client` on a connection that subscribes as the kiosk and
stays open (the appliance stops heating after ``ui_lost_s`` without a UI client), and samples
``/proc/PID/stat`` (utime + stime) and ``VmRSS`` from ``/proc/PID/status`` for ``--seconds``.
Targets: < 2 % of one core, < 60 MB, simulator ≥ 1000× real time. A script, never a timed test.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from appliance.devrun import stop_process

from appliance.client import ApplianceUnavailable, Client, wait_for_appliance

TARGETS = {"cpu_percent": 2.0, "rss_mb": 60.0, "sim_speed": 1000.0}
DEEP_SCENARIO = {"run": {"duration_s": 2700, "program": "deep", "level": "high", "seed": 1}}


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the whole line)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _appliance_command() -> list[str]:
    exe = Path(sys.executable).parent / "lumbarest-appliance"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "appliance.main"]


class Kiosk:
    """A kept-open subscribed connection that drains the state notifications in a thread."""

    def __init__(self, socket_path: Path):
        self.client = Client(socket_path, timeout_s=5.0)
        self.client.call("subscribe", {"client": "kiosk"})
        self.last_state: dict | None = None
        self.notifications = 0
        self._stop = False
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while not self._stop:
            try:
                message = self.client.receive()
            except ApplianceUnavailable:
                return
            if message.get("method") == "state":
                self.notifications += 1
                self.last_state = message.get("params")

    def close(self) -> None:
        self._stop = True
        self.client.close()


def measure_appliance(seconds: float = 60.0) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="lr-fp-"))
    socket_path = tmp / "api.sock"
    env = dict(os.environ, STATE_DIRECTORY=str(tmp / "state"), LUMBAREST_SOCKET=str(socket_path))
    (tmp / "state").mkdir()
    proc = subprocess.Popen(_appliance_command() + ["--socket", str(socket_path), "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kiosk = None
    try:
        wait_for_appliance(socket_path, 30.0, process=proc)
        kiosk = Kiosk(socket_path)
        with Client(socket_path) as control:
            control.call("session.start", {"program": "standard", "level": "high"})
        time.sleep(2.0)  # past the start-up transient of the session
        hz = os.sysconf("SC_CLK_TCK")
        start_ticks, start_wall = _cpu_ticks(proc.pid), time.monotonic()
        rss_peak = rss = 0
        while time.monotonic() - start_wall < seconds:
            time.sleep(1.0)
            if proc.poll() is not None:
                raise RuntimeError(f"the appliance exited with {proc.returncode}")
            rss = _rss_kb(proc.pid)
            rss_peak = max(rss_peak, rss)
        cpu_s = (_cpu_ticks(proc.pid) - start_ticks) / hz
        wall_s = time.monotonic() - start_wall
        with Client(socket_path) as control:
            status = control.call("status")
        return {"mat_c": status.get("mat_c"), "heating": status.get("heating"),
                "seconds": round(wall_s, 1), "cpu_percent": round(100.0 * cpu_s / wall_s, 2),
                "rss_mb": round(rss / 1024, 1), "rss_peak_mb": round(rss_peak / 1024, 1),
                "state_notifications": kiosk.notifications,
                "session_state": (status.get("session") or {}).get("state"),
                "alarms": [a.get("code") for a in status.get("alarms") or [] if isinstance(a, dict)]}
    finally:
        if kiosk is not None:
            kiosk.close()
        stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def measure_sim_speed() -> dict:
    """The whole simulated stack, a 45-minute ``deep`` session at level high, reference mat."""
    from appliance.sim import ScenarioRun, parse_scenario
    result = ScenarioRun(parse_scenario(DEEP_SCENARIO, "deep-45min")).run()
    return {"duration_s": result["duration_s"], "wall_s": result["wall_s"],
            "sim_speed": result["sim_speed"], "outcome": result["outcome"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-appliance", action="store_true", help="only the simulator's speed")
    args = parser.parse_args([] if argv is None else argv)
    out: dict = {"targets": TARGETS}
    if not args.skip_appliance:
        out["appliance"] = measure_appliance(args.seconds)
    out["simulator"] = measure_sim_speed()
    ok = out["simulator"]["sim_speed"] >= TARGETS["sim_speed"]
    if "appliance" in out:
        a = out["appliance"]
        ok = ok and a["cpu_percent"] < TARGETS["cpu_percent"] and a["rss_peak_mb"] < TARGETS["rss_mb"]
    out["met"] = ok
    if args.json:
        print(json.dumps(out))
    else:
        print("| measure | value | target |\n|---|---|---|")
        if "appliance" in out:
            a = out["appliance"]
            print(f"| appliance CPU, % of one core ({a['seconds']} s) | {a['cpu_percent']} | < 2 |")
            print(f"| appliance resident memory, MB (peak) | {a['rss_mb']} ({a['rss_peak_mb']}) | < 60 |")
        s = out["simulator"]
        print(f"| simulator speed, 45-min session (× real time) | {s['sim_speed']} | ≥ 1000 |")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
