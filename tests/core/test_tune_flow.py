"""`lumbarest tune` end to end: the relay test runs under every safety rule, its fitted model is
used only when confirmed, and then by the controller and the safety checks alike."""

import pytest

from appliance.client import RpcError
from appliance.errors import NOT_ALLOWED, PIN_REQUIRED, CommandError
from appliance.history import History
from tests.api.conftest import ApplianceProcess

WEAK_HEAVY = {"plant": {"heater_w": 60.0, "element_j_per_k": 450.0, "surface_j_per_k": 1800.0}}


def test_relay_test_fits_the_real_mat_and_apply_switches_both_models(stack, tmp_path):
    core, rig, clock, tick = stack(WEAK_HEAVY)
    history = History(tmp_path / "h.sqlite3")
    core.history = history
    try:
        with pytest.raises(CommandError) as err:
            core.tune_result()
        assert err.value.code == NOT_ALLOWED
        status = core.start_tune()
        assert status["active"] and status["test_c"] == 36.0
        with pytest.raises(CommandError):
            core.start_session("standard", "high")     # the mat is busy
        seconds = 0
        while core.tune_status()["active"] and seconds < 4 * 3600:
            tick(60.0)
            seconds += 60
            assert core.safety.latch.active == {}, "the relay test tripped a safety rule"
            assert rig.mat.surface_c < 38.0
        status = core.tune_status()
        assert status["done"] and status["ended"] == "finished"
        result = core.tune_result()
        assert result["ok"]
        fitted = result["proposed"]["model"]
        assert fitted["heater_w"] == pytest.approx(60.0, rel=0.1)
        assert fitted["element_j_per_k"] + fitted["surface_j_per_k"] == pytest.approx(2250.0, rel=0.1)
        assert core.config.model.heater_w == 80.0          # nothing changes before apply
        core.apply_tune(by="service")
        assert core.config.model.heater_w == fitted["heater_w"]
        assert core.safety.effect.model.heater_w == fitted["heater_w"]
        assert core.controller.m.heater_w == fitted["heater_w"]
        assert history.get_setting("model") == fitted
    finally:
        history.close()


def test_a_fault_ends_the_relay_test_and_the_heat(stack):
    core, rig, clock, tick = stack()
    core.start_tune()
    tick(120.0)
    assert core.duty > 0
    rig.inject("rtd_open")
    tick(2.0)
    status = core.tune_status()
    assert not status["active"] and status["ended"] == "ended by a fault"
    assert core.duty == 0 and rig.mat.power_w == 0


def test_a_run_longer_than_the_heating_cap_gives_up_before_the_cap_trips(stack):
    # 10 minutes of heating in a row is too short for a relay test on a heavy, weak mat.
    core, rig, clock, tick = stack({**WEAK_HEAVY, "safety": {"max_heating_min": 10.0}})
    core.start_tune()
    tick(9 * 60.0 - 2.0)
    assert core.tune_status()["active"] and core.duty > 0
    tick(4.0)
    status = core.tune_status()
    assert not status["active"] and status["ended"] == "gave up (no steady cycles)"
    assert core.duty == 0 and rig.mat.power_w == 0
    assert core.safety.latch.active == {}             # ended as a result, not as a fault
    tick(120.0)
    assert core.duty == 0 and core.safety.latch.active == {}


def test_a_warm_mat_is_refused_and_stop_always_works(stack):
    core, rig, clock, tick = stack()
    core.start_session("standard", "high")
    tick(900.0)
    core.stop()
    with pytest.raises(CommandError, match="still warm"):
        core.start_tune()
    core2, *_ = stack()
    core2.start_tune()
    assert core2.stop_tune(by="user") and not core2.tune_status()["active"]
    assert core2.duty == 0


def test_tune_api_needs_the_service_pin(short_tmp):
    app = ApplianceProcess(short_tmp).start()
    try:
        with app.client() as c:
            c.call("subscribe", {"client": "kiosk"})
            for params in ({}, {"pin": "1234"}):          # none, and the clinic PIN
                with pytest.raises(RpcError) as err:
                    c.call("tune.start", params)
                assert err.value.code == PIN_REQUIRED
            status = c.call("tune.start", {"pin": "7391", "test_c": 35.0})
            assert status["active"] and status["test_c"] == 35.0
            assert c.call("tune.status")["active"]
            with pytest.raises(RpcError):
                c.call("tune.result")
            assert c.call("tune.stop") == {"stopped": True}
            assert c.call("status")["heating"] is False
            audit = [a["action"] for a in c.call("history.audit", {"limit": 10})["entries"]]
            assert "tune.start" in audit
    finally:
        app.stop()
