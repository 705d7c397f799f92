"""End to end: the kiosk against the real simulated appliance (``lumbarest-appliance``), driven by
touches only: start, pause, resume, stop (hold), then an injected ``rtd_open`` must bring up the
MEDIUM alarm overlay within 1 s."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from appliance.devrun import stop_process

from tests.kiosk.conftest import HAVE_DISPLAY, NO_DISPLAY, REPO, Harness, kivy_available

pytestmark = [
    pytest.mark.kiosk,
    pytest.mark.slow,
    pytest.mark.skipif(not kivy_available(), reason="Kivy is not installed"),
    pytest.mark.skipif(not HAVE_DISPLAY, reason=NO_DISPLAY),
]


def appliance_command() -> list[str]:
    script = Path(sys.executable).parent / "lumbarest-appliance"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "appliance.main"]


@pytest.fixture(scope="module")
def appliance():
    try:
        import importlib
        from appliance.client import ApplianceUnavailable, Client
        importlib.import_module("appliance.main")
    except ImportError as exc:
        pytest.skip(f"the appliance cannot be imported: {exc}")
    tmp = Path(tempfile.mkdtemp(prefix="lke-"))
    sock = tmp / "a.sock"
    env = dict(os.environ, STATE_DIRECTORY=str(tmp / "data"), LUMBAREST_SOCKET=str(sock))
    log = open(tmp / "appliance.log", "w")
    proc = subprocess.Popen(appliance_command() + ["--socket", str(sock)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    ready = False
    end = time.monotonic() + 20
    while time.monotonic() < end and proc.poll() is None:
        try:
            with Client(sock, timeout_s=2) as client:
                if client.call("status").get("ready", True):
                    ready = True
                    break
        except (ApplianceUnavailable, OSError):
            pass
        time.sleep(0.2)
    if not ready:
        proc.kill()
        proc.wait()
        log.close()
        text = (tmp / "appliance.log").read_text()[-1500:]
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"lumbarest-appliance did not start in simulation mode within 20 s:\n{text}")
    yield sock
    stop_process(proc)
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


def test_full_session_by_touch_then_sensor_fault_alarm(appliance):
    from appliance.client import Client

    kiosk = Harness(appliance, profile="bedside")
    try:
        app = kiosk.app
        kiosk.wait(lambda: app.live() and kiosk.screen == "home", timeout=10, what="Home")
        assert app.state["ui_clients"] >= 1 or app.state.get("connection", {}).get("clients")

        def session_state():
            return (app.state or {}).get("session", {}).get("state")

        home = app.screens["home"]
        kiosk.tap(home.program_buttons["quick"])
        kiosk.tap(home.level_buttons["medium"])
        kiosk.tap(home.start)
        kiosk.wait(lambda: session_state() == "running" and kiosk.screen == "session",
                   what="the session running")
        assert app.state["session"]["program"] == "quick"
        assert app.state["session"]["level"] == "medium"

        session = app.screens["session"]
        kiosk.tap(session.pause_btn)
        kiosk.wait(lambda: session_state() == "paused", what="paused")
        kiosk.tap(session.pause_btn)
        kiosk.wait(lambda: session_state() == "running", what="resumed")
        kiosk.tap(session.stop_btn)                      # a tap does not stop it
        kiosk.pump(0.5)
        assert session_state() == "running"
        kiosk.hold(session.stop_btn, 1.8)
        kiosk.wait(lambda: session_state() == "stopped", what="stopped")
        kiosk.wait(lambda: kiosk.screen == "done", what="the Done screen")

        with Client(appliance) as client:
            history = client.call("history.sessions", {"limit": 5, "offset": 0})
        assert history["sessions"][0]["outcome"] == "stopped"

        assert not kiosk.overlay_shown()
        with Client(appliance) as client:
            client.call("sim.inject", {"fault": "rtd_open"})
        injected = time.monotonic()
        kiosk.wait(kiosk.overlay_shown, timeout=3.0, what="the alarm overlay")
        latency = app.overlay_since - injected
        kiosk_part = app.overlay_since - app.alarm_state_at
        print(f"rtd_open -> alarm in a pushed state {(app.alarm_state_at - injected) * 1000:.0f}"
              f" ms -> MEDIUM overlay {kiosk_part * 1000:.0f} ms later")
        assert latency <= 1.0, f"the overlay came {latency:.2f} s after the injection"
        assert kiosk_part <= 0.25
        alarm = app.alarms()[0]
        assert alarm["priority"] == "medium" and alarm["code"] == "rtd_open"
        assert app.overlay.heater.text == "The heater is off."
        assert app.state["mat_c"] is None
    finally:
        kiosk.close()
