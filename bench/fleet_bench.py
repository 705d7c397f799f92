"""Fleet benchmark: ``python -m bench.fleet_bench`` (``make bench``).

50 units on one real Mosquitto broker: 50 real ``lumbarest-bridge`` processes, each following
its own appliance socket. The appliances are replaced by a state stream in the protocol's shape
(docs/protocol.md), served by this process at the appliance's 4 Hz: a running session with the
mat warming and the time counting down, so every bridge publishes as it would in a clinic. That
keeps 50 units within two cores, and puts the injection clock and the subscriber's clock in one
process, so latencies are exact.

Measured:
- alarm latency: an alarm appears in one unit's state stream -> the ``alarm`` message reaches a
  subscriber on the broker (p50 / p99 / max over the injections). Target p99 <= 1 s. The
  appliance's own detection time (e.g. 3 bad sensor reads for ``rtd_open``, <= 0.75 s) comes on
  top; tests/bridge measure the whole path on real appliances.
- each bridge's CPU (% of one core, over a steady window) and memory (RSS and PSS).
Prints a table and the results as JSON; ``main()`` returns them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from tools.mosquitto import Mosquitto, mosquitto_available

REPO = Path(__file__).resolve().parents[1]
UNITS = 50
INJECTIONS = 100
INJECTION_GAP_S = 0.15
STEADY_WINDOW_S = 20.0
TARGET_P99_S = 1.0
TICK_S = 0.25


def _state(unit: int, t_s: float, alarms: list[dict]) -> dict:
    remaining = max(0.0, 1800.0 - t_s)
    return {
        "protocol": 1, "mode": "simulation", "unit_name": f"Room {unit + 1}",
        "wall_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "ready": True,
        "session": {"state": "running", "program": "standard", "level": "medium",
                    "phase": "warming", "planned_s": 1800.0, "elapsed_s": round(t_s, 1),
                    "remaining_s": round(remaining, 1), "outcome": None, "reason": None,
                    "mean_c": None},
        "setpoint_c": 38.0, "mat_c": round(min(38.0, 22.0 + 0.05 * t_s + 0.01 * unit), 2),
        "sensor_ok": True, "heating": True, "duty": 0.8, "relay_closed": True,
        "patient_on": True, "alarms": alarms, "ui_clients": 1,
        "prewarm": {"active": False}, "audio": {"paused": False}, "reminders": [],
        "connection": {"clients": 2, "subscribers": 2},
    }


class StreamServer:
    """50 appliance sockets on one asyncio loop (a background thread)."""

    def __init__(self, directory: Path, units: int):
        self.sockets = [directory / f"u{i:02d}.sock" for i in range(units)]
        self.alarms: list[list[dict]] = [[] for _ in range(units)]
        self.writers: list[set] = [set() for _ in range(units)]
        self.injected_at: dict[tuple[int, str], float] = {}
        self.loop = asyncio.new_event_loop()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self):
        for i, path in enumerate(self.sockets):
            await asyncio.start_unix_server(lambda r, w, i=i: self._serve(i, r, w), str(path))
        self._ticker = self.loop.create_task(self._tick())

    def _encode(self, message: dict) -> bytes:
        return json.dumps(message, separators=(",", ":")).encode() + b"\n"

    def _push(self, unit: int) -> None:
        data = self._encode({"jsonrpc": "2.0", "method": "state", "params": _state(
            unit, time.monotonic() - self.started, self.alarms[unit])})
        for writer in list(self.writers[unit]):
            writer.write(data)

    async def _serve(self, unit, reader, writer):
        try:
            while line := await reader.readline():
                request = json.loads(line)
                method = request.get("method")
                if method == "subscribe":
                    writer.write(self._encode({"jsonrpc": "2.0", "id": request.get("id"),
                                               "result": {"subscribed": True}}))
                    self.writers[unit].add(writer)
                    self._push(unit)
                elif method == "status":
                    writer.write(self._encode({"jsonrpc": "2.0", "id": request.get("id"),
                                               "result": _state(unit, 0, self.alarms[unit])}))
                else:
                    writer.write(self._encode({"jsonrpc": "2.0", "id": request.get("id"),
                                               "error": {"code": -32601, "message": "no"}}))
        except (ConnectionError, ValueError):
            pass
        finally:
            self.writers[unit].discard(writer)
            writer.close()

    async def _tick(self):
        while True:
            for unit in range(len(self.sockets)):
                self._push(unit)
            await asyncio.sleep(TICK_S)

    def set_alarm(self, unit: int, code: str | None) -> None:
        """Raise (or with None clear) an alarm at once, as the appliance pushes a change."""
        def apply():
            if code is None:
                self.alarms[unit] = []
            else:
                self.alarms[unit] = [{
                    "code": code, "priority": "medium", "kind": "technical",
                    "title": "Temperature sensor fault", "text": "", "advice": "",
                    "heater_off": True, "present": True, "needs": "ack",
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}]
                self.injected_at[(unit, code)] = time.monotonic()
            self._push(unit)
        self.loop.call_soon_threadsafe(apply)

    def close(self):
        async def stop():
            self._ticker.cancel()
            for writers in self.writers:
                for writer in list(writers):
                    writer.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_memory_kib(pid: int) -> tuple[int, int | None]:
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    try:
        pss = next(int(line.split()[1]) for line in
                   Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                   if line.startswith("Pss:"))
    except (OSError, StopIteration):
        pss = None
    return rss, pss


def _percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


class AlarmListener:
    def __init__(self, port: int):
        self.arrivals: dict[tuple[str, str], float] = {}
        self.states: set[str] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id="fleet-bench", protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe(
            [("lumbarest/+/alarm", 1), ("lumbarest/+/state", 1)])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client, userdata, message):
        now = time.monotonic()
        unit = message.topic.split("/")[1]
        with self.lock:
            if message.topic.endswith("/state"):
                self.states.add(unit)
                return
            event = json.loads(message.payload)
            if event["event"] == "raised":
                self.arrivals.setdefault((unit, event["code"]), now)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def run(units: int = UNITS, injections: int = INJECTIONS) -> dict:
    if not mosquitto_available():
        raise RuntimeError("mosquitto is not installed (tools/setup-host.sh installs it)")
    tmp = Path(tempfile.mkdtemp(prefix="lf-"))
    broker = Mosquitto(tmp / "broker").start()
    server = StreamServer(tmp, units)
    bridges: list[subprocess.Popen] = []
    listener = None
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        for i in range(units):
            config = tmp / f"b{i:02d}.toml"
            config.write_text(f'broker = "{broker.url}"\nallow_insecure = true\n'
                              f'unit_id = "u{i:02d}"\n')
            bridges.append(subprocess.Popen(
                [sys.executable, "-m", "bridge.main", "--config", str(config), "--socket",
                 str(server.sockets[i]), "--log-level", "warning"],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                stderr=open(tmp / f"b{i:02d}.log", "wb")))
        listener = AlarmListener(broker.port)
        started = time.monotonic()
        while len(listener.states) < units:
            if time.monotonic() - started > 120:
                raise RuntimeError(f"only {len(listener.states)} of {units} units published")
            time.sleep(0.2)
        startup_s = time.monotonic() - started
        time.sleep(3)                                   # settle after the start-up burst

        cpu_before = {p.pid: _proc_cpu_s(p.pid) for p in bridges}
        window_started = time.monotonic()
        # Alarms during the steady window: one unit after another, raised then cleared.
        for k in range(injections):
            unit = k % units
            code = "rtd_open" if k < units else f"spi_error_{k}"
            server.set_alarm(unit, code)
            time.sleep(INJECTION_GAP_S)
            server.set_alarm(unit, None)
        remaining = STEADY_WINDOW_S - (time.monotonic() - window_started)
        if remaining > 0:
            time.sleep(remaining)
        window_s = time.monotonic() - window_started
        cpu = [(_proc_cpu_s(p.pid) - cpu_before[p.pid]) / window_s * 100 for p in bridges]
        memory = [_proc_memory_kib(p.pid) for p in bridges]
        time.sleep(1.0)                                 # the last alarms' stragglers

        latencies, lost = [], 0
        with listener.lock:
            for (unit, code), t0 in server.injected_at.items():
                arrival = listener.arrivals.get((f"u{unit:02d}", code))
                if arrival is None:
                    lost += 1
                else:
                    latencies.append(arrival - t0)
        if not latencies:
            raise RuntimeError("no alarm arrived")
        rss = [m[0] for m in memory]
        pss = [m[1] for m in memory if m[1] is not None]
        return {
            "units": units,
            "injections": len(server.injected_at),
            "alarms_lost": lost,
            "alarm_latency_p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
            "alarm_latency_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
            "alarm_latency_max_ms": round(max(latencies) * 1000, 1),
            "target_p99_ms": TARGET_P99_S * 1000,
            "meets_target": _percentile(latencies, 0.99) <= TARGET_P99_S and lost == 0,
            "bridge_cpu_percent_mean": round(statistics.mean(cpu), 2),
            "bridge_cpu_percent_max": round(max(cpu), 2),
            "bridge_rss_mib_mean": round(statistics.mean(rss) / 1024, 1),
            "bridge_pss_mib_mean": round(statistics.mean(pss) / 1024, 1) if pss else None,
            "all_bridges_cpu_percent": round(sum(cpu), 1),
            "startup_s": round(startup_s, 1),
            "window_s": round(window_s, 1),
            "state_rate_hz_per_unit": round(1 / TICK_S, 1),
        }
    finally:
        if listener is not None:
            listener.close()
        for proc in bridges:
            proc.terminate()
        for proc in bridges:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.close()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> dict:
    result = run()
    rows = [
        ("units on one broker", f"{result['units']}"),
        ("alarm injections / lost", f"{result['injections']} / {result['alarms_lost']}"),
        ("alarm latency p50", f"{result['alarm_latency_p50_ms']} ms"),
        ("alarm latency p99 (target <= 1000)", f"{result['alarm_latency_p99_ms']} ms"),
        ("alarm latency max", f"{result['alarm_latency_max_ms']} ms"),
        ("bridge CPU per unit (mean / max)",
         f"{result['bridge_cpu_percent_mean']} % / {result['bridge_cpu_percent_max']} % of a core"),
        ("bridge memory per unit (RSS / PSS)",
         f"{result['bridge_rss_mib_mean']} MiB / {result['bridge_pss_mib_mean']} MiB"),
        ("all 50 bridges", f"{result['all_bridges_cpu_percent']} % of a core"),
        ("start-up until all published", f"{result['startup_s']} s"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
