"""End to end against the real appliance process (simulation, real time)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from appliance import errors
from appliance.client import RpcError
from tests.api.conftest import REPO

STATE_KEYS = {"protocol", "mode", "unit_name", "wall_time", "session", "setpoint_c", "mat_c",
              "sensor_ok", "heating", "duty", "relay_closed", "patient_on", "alarms",
              "ui_clients", "connection"}


def lumbarest(app, *argv, timeout=30):
    env = dict(app.env)
    return subprocess.run([sys.executable, "-m", "appliance.cli", "--socket", str(app.socket),
                           *argv], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_acceptance_cli_flow(real_appliance):
    r = lumbarest(real_appliance, "start", "standard", "--level", "medium")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Running")
    r = lumbarest(real_appliance, "status", "--json")
    st = json.loads(r.stdout)
    assert STATE_KEYS <= set(st)
    assert st["session"]["state"] == "running" and st["session"]["program"] == "standard"
    assert st["session"]["level"] == "medium" and st["mode"] == "simulation"
    r = lumbarest(real_appliance, "status")
    assert r.returncode == 0 and "standard, medium" in r.stdout
    r = lumbarest(real_appliance, "stop")
    assert r.returncode == 0, r.stderr
    r = lumbarest(real_appliance, "history", "--json")
    hist = json.loads(r.stdout)
    assert hist["sessions"][0]["outcome"] == "stopped"
    assert hist["sessions"][0]["program"] == "standard"
    assert set(hist) == {"sessions", "total"}
    r = lumbarest(real_appliance, "faults", "--json")
    assert set(json.loads(r.stdout)) == {"faults", "total"}
    r = lumbarest(real_appliance, "stop")
    assert r.returncode == 1 and r.stderr.strip() and "Traceback" not in r.stderr


def test_methods_on_the_real_core(real_appliance):
    with real_appliance.client() as c:
        st = c.call("status")
        assert st["protocol"] == 1 and "standard" in st["programs"] and "off" in st["levels"]
        st = c.call("session.start", {"program": "test", "level": "low"})
        assert st["session"]["state"] == "running"
        with pytest.raises(RpcError) as info:
            c.call("session.start", {"program": "test", "level": "low"})
        assert info.value.code == errors.NOT_ALLOWED
        assert c.call("session.pause")["session"]["state"] == "paused"
        assert c.call("session.resume")["session"]["state"] == "running"
        assert c.call("session.extend")["session"]["planned_s"] == 60 + 300
        assert c.call("session.stop")["session"]["state"] == "stopped"
        sid = c.call("history.sessions", {"limit": 1})["sessions"][0]["id"]
        assert c.call("history.trace", {"session_id": sid})["session_id"] == sid
        assert isinstance(c.call("history.counters")["sessions"], int)
        settings = c.call("settings.get")
        assert "volume" in settings and "max_setpoint_c" in settings
        with pytest.raises(RpcError) as info:
            c.call("settings.set", {"pin": "1234", "changes": {"volume": 10 ** 6}})
        assert info.value.code == errors.INVALID_PARAMS
        assert c.call("settings.get") == settings
        assert c.call("auth.check", {"role": "service", "pin": "7391"})["ok"] is True
        assert c.call("sim.patient", {"on": True}) == {"patient_on": True}
        res = c.call("system.selftest")
        assert isinstance(res["passed"], bool) and res["checks"]
        with pytest.raises(RpcError) as info:
            c.call("sim.inject", {"fault": "gremlins"})
        assert info.value.code == errors.INVALID_PARAMS
        c.call("sim.inject", {"fault": "rtd_open"})
        deadline = time.monotonic() + 5
        while not c.call("status")["alarms"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(a["code"] for a in c.call("status")["alarms"])
        with pytest.raises(RpcError) as info:
            c.call("fault.acknowledge", {})
        assert info.value.code in (errors.CONDITION_PRESENT, errors.PIN_REQUIRED)
        assert c.call("sim.clear") == {"cleared": True}
        assert c.call("history.faults", {"limit": 5})["total"] >= 1


def test_three_subscribers_get_2hz(real_appliance):
    import threading
    counts = [0, 0, 0]
    stop = threading.Event()

    def sub(i):
        try:
            with real_appliance.client() as c:
                c.call("subscribe", {"client": "kiosk" if i == 0 else "cli"})
                while not stop.is_set():
                    if c.receive().get("method") == "state":
                        counts[i] += 1
        except Exception:          # noqa: BLE001 - the appliance stops at teardown
            pass
    threads = [threading.Thread(target=sub, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    with real_appliance.client() as c:
        assert c.call("status")["ui_clients"] == 1
    start = list(counts)
    time.sleep(2.0)
    stop.set()
    rates = [(counts[i] - start[i]) / 2.0 for i in range(3)]
    assert all(r >= 1.9 for r in rates), rates


def test_hwcheck_through_the_running_appliance_needs_the_service_pin(real_appliance):
    r = lumbarest(real_appliance, "hwcheck")
    assert r.returncode == 1 and "service PIN" in r.stderr
    r = lumbarest(real_appliance, "hwcheck", "--pin", "1234")      # the clinic PIN is not enough
    assert r.returncode == 1
    r = lumbarest(real_appliance, "hwcheck", "--pin", "7391", "--outputs")
    assert r.returncode == 1 and "appliance stopped" in r.stderr
    r = lumbarest(real_appliance, "hwcheck", "--pin", "7391")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ok   mode: simulation")
    assert any(line.startswith("ok   fault-detection cycle") for line in lines)
    assert any(line.startswith("ok   RTD reading") for line in lines)
    assert lines[-1] == "Hardware check passed."
    r = lumbarest(real_appliance, "hwcheck", "--pin", "7391", "--json")
    result = json.loads(r.stdout)
    assert result["passed"] is True and {c["name"] for c in result["checks"]} >= {"RTD reading"}
