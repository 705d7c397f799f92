"""The panel's maintenance and schedule methods (appliance/panel_api.py), the reminders' codes
and parameters, and ``[simulation] speed``."""

from datetime import datetime, timedelta, timezone

import pytest

from appliance import cli
from appliance.client import RpcError
from appliance.config import ClinicConfig, ConfigError, from_dict
from appliance.schedule import maintenance_reminders, since_service
from appliance.simclock import ScaledClock
from tests.api.conftest import TEST_CONFIG, ApplianceProcess

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
RECENT = {"at": (NOW - timedelta(hours=5)).isoformat()}


def test_reminders_carry_a_code_and_their_numbers():
    cfg = ClinicConfig(service_heater_hours=100.0, service_relay_cycles=1000)
    reminders = maintenance_reminders({"heater_hours": 123.4, "relay_cycles": 1500},
                                      {"at": (NOW - timedelta(days=3)).isoformat()}, NOW, cfg)
    by_code = {r["code"]: r for r in reminders}
    assert by_code["heater_hours"]["params"] == {"hours": 123, "every_h": 100.0}
    assert by_code["relay_cycles"]["params"] == {"cycles": 1500, "every": 1000}
    assert by_code["selftest_overdue"]["params"] == {"days": 3}
    assert by_code["heater_hours"]["resettable"] and not by_code["selftest_overdue"]["resettable"]
    # the English words stay for the CLI
    assert by_code["heater_hours"]["text"].startswith("The heater has run 123 h")
    assert maintenance_reminders({}, None, NOW, cfg)[0]["params"] == {"days": None}


def test_service_done_counts_again_from_the_reset():
    cfg = ClinicConfig(service_heater_hours=100.0, service_relay_cycles=1000)
    counters = {"heater_hours": 150.0, "relay_cycles": 1200}
    baseline = {"heater_hours": 120.0}
    assert since_service(counters, baseline) == {"heater_hours": 30.0, "relay_cycles": 1200}
    codes = [r["code"] for r in maintenance_reminders(counters, RECENT, NOW, cfg, baseline)]
    assert codes == ["relay_cycles"]
    assert maintenance_reminders(counters, RECENT, NOW, cfg,
                                 {"heater_hours": 150.0, "relay_cycles": 1200}) == []


def test_simulation_speed_is_checked_and_refused_on_hardware():
    assert from_dict({"simulation": {"speed": 50}}).simulation.speed == 50.0
    with pytest.raises(ConfigError):
        from_dict({"simulation": {"speed": 0.5}})
    with pytest.raises(ConfigError, match="real time"):
        from_dict({"mode": "hardware", "simulation": {"speed": 10}})


def test_scaled_clock_runs_faster_and_sleeps_shorter():
    real = [100.0]
    slept = []
    clock = ScaledClock(20, real_monotonic=lambda: real[0], real_sleep=slept.append)
    t0, w0 = clock.monotonic(), clock.wall()
    real[0] += 1.5
    assert clock.monotonic() - t0 == pytest.approx(30.0)
    assert (clock.wall() - w0).total_seconds() == pytest.approx(30.0)
    clock.sleep(0.075)
    assert slept == [pytest.approx(0.075 / 20)]


@pytest.fixture(scope="module")
def app():
    import shutil
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp(prefix="lrp-"))
    proc = ApplianceProcess(d, TEST_CONFIG + "\n[clinic]\nservice_relay_cycles = 100\n").start()
    yield proc
    proc.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_maintenance_status_and_reset_over_the_api(app):
    with app.client() as c:
        status = c.call("maintenance.status")
        assert set(status["counters"]) == {"sessions", "heater_hours", "relay_cycles", "faults"}
        assert status["service_every"]["relay_cycles"] == 100
        assert all("params" in r and "code" in r for r in status["reminders"])
        with pytest.raises(RpcError) as exc:
            c.call("maintenance.reset", {"code": "relay_cycles"})
        assert exc.value.code == -32003 and exc.value.data == {"needs": "service"}
        with pytest.raises(RpcError) as exc:
            c.call("maintenance.reset", {"code": "relay_cycles", "pin": "1234"})  # clinic PIN
        assert exc.value.code == -32003
        with pytest.raises(RpcError) as exc:
            c.call("maintenance.reset", {"code": "selftest_overdue", "pin": "7391"})
        assert exc.value.code == -32602
        after = c.call("maintenance.reset", {"code": "relay_cycles", "pin": "7391"})
        assert after["since_service"]["relay_cycles"] == 0
        assert "relay_cycles" not in [r["code"] for r in after["reminders"]]
        audit = c.call("history.audit", {"limit": 5})["entries"]
        assert audit[0]["action"] == "maintenance.reset" and audit[0]["role"] == "service"
        assert audit[0]["details"]["code"] == "relay_cycles"


def test_schedule_next_and_the_cli(app, capsys):
    with app.client() as c:
        c.call("settings.set", {"pin": "1234", "changes": {
            "prewarm_enabled": True, "prewarm_weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "prewarm_time": "07:30", "prewarm_lead_min": 20, "prewarm_hold_min": 30}})
        upcoming = c.call("schedule.next")
    start = datetime.fromisoformat(upcoming["prewarm"])
    assert (start.hour, start.minute) == (7, 10) and start.weekday() < 5   # 20 min before 07:30
    assert datetime.fromisoformat(upcoming["selftest"]).strftime("%H:%M") == "02:30"
    assert cli.main(["--socket", str(app.socket), "schedule"]) == 0
    out = capsys.readouterr().out
    assert "Pre-warm: on, mon, tue, wed, thu, fri, ready at 07:30" in out
    assert "Next pre-warm: " + upcoming["prewarm"] in out
