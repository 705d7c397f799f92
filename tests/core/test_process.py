"""Every way out of the appliance process leaves the heater off, and nothing resumes after it."""

import asyncio
import signal

from appliance.config import from_dict
from appliance.history import History
from appliance.main import ApplianceProcess as Shell
from tests.api.conftest import ApplianceProcess


def test_sigterm_turns_heat_off_records_the_session_and_exits_cleanly(short_tmp):
    app = ApplianceProcess(short_tmp).start()
    try:
        with app.client() as c:
            c.call("subscribe", {"client": "kiosk"})
            c.call("session.start", {"program": "test", "level": "high"})
            assert c.call("status")["session"]["state"] == "running"
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(10) == 0
        app.start()
        with app.client() as c:
            status = c.call("status")
            assert status["session"]["state"] == "idle" and not status["heating"]
            last = c.call("history.sessions", {"limit": 1})["sessions"][0]
            assert last["outcome"] == "stopped" and last["reason"] == "controller shut down"
    finally:
        app.stop()


def test_an_exception_in_the_loop_turns_the_heater_off_and_exits_non_zero(short_tmp):
    config = from_dict({"mode": "simulation", "programs": {"test": 1},
                        "safety": {"selftest_observe_s": 0.5}})

    async def scenario():
        shell = Shell(config, short_tmp / "a.sock", short_tmp / "data")
        core = shell.core
        real_tick = core.tick
        calls = {"n": 0}

        def failing_tick():
            real_tick()
            if core.ready and core.session.state == "idle":
                core.set_ui_clients(1)
                core.start_session("test", "high")
            calls["n"] += 1
            if core.heating and calls["n"] > 12:
                raise RuntimeError("injected bug")

        core.tick = failing_tick
        code = await asyncio.wait_for(shell.run(), 20)
        return code, shell

    code, shell = asyncio.run(scenario())
    assert code == 1
    rig = shell.core.devices.rig
    assert rig.mat.power_w == 0.0 and not rig.mat.relay_closed
    history = History(short_tmp / "data" / "history.sqlite3")
    try:
        codes = [f["code"] for f in history.faults(10, 0)[0]]
        assert "internal_error" in codes
        assert history.sessions(1, 0)[0][0]["outcome"] == "stopped"
    finally:
        history.close()
