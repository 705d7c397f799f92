"""The clinic methods through the real appliance process (simulation, panel on mock pins)."""

import pytest

from appliance import cli
from appliance.client import RpcError
from tests.api.conftest import TEST_CONFIG, ApplianceProcess

CONFIG = TEST_CONFIG + """
[panel]
stop_button_pin = 17
buzzer_pin = 18
led_pin = 27
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import shutil
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp(prefix="lrc-"))
    proc = ApplianceProcess(d, CONFIG).start()
    yield proc
    proc.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_prewarm_needs_the_clinic_pin_and_is_audited(app):
    with app.client() as c:
        with pytest.raises(RpcError) as exc:
            c.call("prewarm.start", {"minutes": 10})
        assert exc.value.code == -32003
        with pytest.raises(RpcError) as exc:
            c.call("prewarm.start", {"minutes": 10, "pin": "0000"})
        assert exc.value.code == -32003
        with pytest.raises(RpcError) as exc:
            c.call("prewarm.start", {"minutes": 0.5, "pin": "1234"})
        assert exc.value.code == -32602
        st = c.call("prewarm.start", {"minutes": 10, "pin": "1234"})
        assert st["prewarm"]["active"] and st["prewarm"]["by"] == "clinic"
        assert st["session"]["state"] == "idle" and st["setpoint_c"] == 36.0
        st = c.call("prewarm.stop")
        assert not st["prewarm"]["active"]
        audit = c.call("history.audit", {"limit": 10})["entries"]
        actions = {(e["action"], e["role"]) for e in audit}
        assert ("prewarm.start", "clinic") in actions and ("prewarm.end", "system") in actions
        assert c.call("history.sessions")["total"] == 0


def test_alarm_silence_pauses_audio_only(app):
    with app.client() as c:
        with pytest.raises(RpcError) as exc:
            c.call("alarm.silence", {"seconds": 121})
        assert exc.value.code == -32602
        c.call("sim.inject", {"fault": "rtd_open"})
        import time
        time.sleep(1.0)
        st = c.call("alarm.silence", {"seconds": 30})
        assert st["audio"]["paused"] and [a["code"] for a in st["alarms"]] == ["rtd_open"]
        c.call("sim.clear")
        time.sleep(0.5)
        c.call("fault.acknowledge", {})


def test_schedules_are_settings_with_the_clinic_pin(app):
    with app.client() as c:
        s = c.call("settings.get")
        assert s["prewarm_time"] == "07:30" and s["prewarm_enabled"] is False
        with pytest.raises(RpcError) as exc:
            c.call("settings.set", {"pin": "1234", "changes": {"prewarm_time": "7:30"}})
        assert exc.value.code == -32602
        with pytest.raises(RpcError) as exc:
            c.call("settings.set", {"pin": "1234", "changes": {"prewarm_enabled": True,
                                                               "prewarm_lead_min": 45}})
        assert exc.value.code == -32602            # 45 + 30 > max_heating_min 60
        s = c.call("settings.set", {"pin": "1234", "changes": {
            "prewarm_enabled": True, "prewarm_time": "08:15", "prewarm_weekdays": ["mon", "wed"]}})
        assert s["prewarm_time"] == "08:15" and s["prewarm_weekdays"] == ["mon", "wed"]


def test_cli_prewarm_and_silence(app, capsys):
    sock = ["--socket", str(app.socket)]
    assert cli.main(sock + ["prewarm", "start", "5", "--pin", "1234"]) == 0
    assert "Pre-warming to 36.0 °C" in capsys.readouterr().out
    assert cli.main(sock + ["prewarm", "stop"]) == 0
    assert "Idle" in capsys.readouterr().out
    assert cli.main(sock + ["silence", "500"]) == 1


def test_usb_drive_is_found_in_proc_mounts():
    mounts = ("/dev/mmcblk0p2 / ext4 ro,noatime 0 0\n"
              "/dev/mmcblk0p3 /var/lib/lumbarest ext4 rw 0 0\n"
              "/dev/sda1 /media/lumbarest/USB\\040STICK vfat rw,nosuid,nodev 0 0\n"
              "/dev/sdb1 /media/lumbarest/RO vfat ro 0 0\n")
    assert [str(p) for p in cli.usb_mounts(mounts)] == ["/media/lumbarest/USB STICK"]


def test_cli_export_to_a_usb_drive(app, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "usb_mounts", lambda text: [tmp_path])
    assert cli.main(["--socket", str(app.socket), "export", "--usb"]) == 0
    files = list(tmp_path.glob("lumbarest-*.csv"))
    assert len(files) == 1 and files[0].read_text().startswith("record,id,time")
    monkeypatch.setattr(cli, "usb_mounts", lambda text: [])
    assert cli.main(["--socket", str(app.socket), "export", "--usb"]) == 1
