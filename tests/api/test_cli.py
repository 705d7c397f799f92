"""The `lumbarest` CLI, against the API server on the fake core and as a real console script."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import cli
from appliance.cli import format_status

REPO = Path(__file__).resolve().parents[2]


def run(harness, *argv, capsys):
    code = cli.main(["--socket", str(harness.socket), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_not_running_message_and_exit_code(short_tmp, capsys):
    sock = short_tmp / "nothing.sock"
    code = cli.main(["--socket", str(sock), "status"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip() == f"The Lumbarest appliance is not running (no answer on {sock})."


def test_not_running_console_script(short_tmp):
    env = dict(os.environ, LUMBAREST_SOCKET=str(short_tmp / "none.sock"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "status", "--json"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "not running" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_error_exit_code(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["sim", "patient", "maybe"])
    assert info.value.code == 64


def test_session_commands_and_human_output(harness, capsys):
    code, out, _ = run(harness, "start", "standard", "--level", "high", capsys=capsys)
    assert code == 0 and out.startswith("Running: standard, high 40 °C — mat 22.")
    assert "30:00 left" in out or "29:5" in out
    code, out, _ = run(harness, "pause", capsys=capsys)
    assert out.startswith("Paused: standard")
    code, out, _ = run(harness, "resume", capsys=capsys)
    code, out, _ = run(harness, "extend", capsys=capsys)
    assert "35:00" in out or "34:5" in out
    code, out, _ = run(harness, "status", "--json", capsys=capsys)
    st = json.loads(out)
    assert st["session"]["state"] == "running" and st["protocol"] == 1
    code, out, _ = run(harness, "stop", capsys=capsys)
    assert out.startswith("Session stopped")
    code, out, err = run(harness, "stop", capsys=capsys)
    assert code == 1 and "stopped" in err and out == ""
    code, out, _ = run(harness, "history", "--json", capsys=capsys)
    hist = json.loads(out)
    assert hist["total"] == 1 and hist["sessions"][0]["outcome"] == "stopped"
    code, out, _ = run(harness, "history", capsys=capsys)
    assert "standard" in out and "stopped" in out


def test_traction_default_level(harness, capsys):
    code, out, _ = run(harness, "start", "traction", capsys=capsys)
    assert code == 0 and "off (no heat)" in out


def test_refusal_goes_to_stderr_exit_1(harness, capsys):
    code, out, err = run(harness, "start", "marathon", capsys=capsys)
    assert code == 1 and out == "" and "Unknown program 'marathon'" in err


def test_faults_ack_sim(harness, capsys):
    assert run(harness, "sim", "patient", "on", capsys=capsys)[1].strip() == \
        "Simulated patient is on the mat."
    assert run(harness, "sim", "inject", "rtd_open", capsys=capsys)[1].strip() == \
        "Injected: rtd_open"
    code, out, _ = run(harness, "status", capsys=capsys)
    assert "! MEDIUM rtd_open" in out
    code, out, _ = run(harness, "faults", "--json", capsys=capsys)
    assert json.loads(out)["faults"][0]["code"] == "rtd_open"
    code, out, _ = run(harness, "ack", capsys=capsys)
    assert out.strip() == "Acknowledged: rtd_open"
    run(harness, "sim", "inject", "ssr_welded", capsys=capsys)
    code, out, err = run(harness, "ack", "ssr_welded", capsys=capsys)
    assert code == 1 and "service" in err
    code, out, err = run(harness, "ack", "ssr_welded", "--pin", "7391", capsys=capsys)
    assert code == 0 and out.strip() == "Acknowledged: ssr_welded"
    code, out, _ = run(harness, "faults", capsys=capsys)
    assert "acknowledged by service" in out and "acknowledged by user" in out


def test_selftest(harness, capsys):
    code, out, _ = run(harness, "selftest", capsys=capsys)
    assert code == 0 and "Self-test passed." in out


def test_export_csv(harness, capsys, tmp_path):
    from appliance import cli as cli_module
    for _ in range(3):
        run(harness, "start", "short", capsys=capsys)
        run(harness, "stop", capsys=capsys)
    run(harness, "sim", "inject", "over_temp", capsys=capsys)
    old_page = cli_module.PAGE
    cli_module.PAGE = 2                       # exercise paging
    try:
        target = tmp_path / "export.csv"
        code, out, _ = run(harness, "export", str(target), capsys=capsys)
    finally:
        cli_module.PAGE = old_page
    assert code == 0 and out.strip() == f"Exported 3 sessions and 1 faults to {target}."
    rows = list(csv.DictReader(target.open()))
    assert [r["record"] for r in rows] == ["session"] * 3 + ["fault"]
    assert rows[0]["outcome"] == "stopped" and rows[3]["code"] == "over_temp"
    assert set(rows[0]) == set(cli.EXPORT_COLUMNS)
    code, out, err = run(harness, "export", str(tmp_path / "no" / "dir.csv"), capsys=capsys)
    assert code == 1 and "Cannot write" in err


def test_format_status_shapes():
    base = {"mode": "hardware", "mat_c": 31.42, "setpoint_c": 40.0, "heating": True,
            "duty": 0.87, "alarms": [],
            "session": {"state": "running", "program": "standard", "level": "high",
                        "phase": "therapy", "remaining_s": 1632}}
    assert format_status(base) == \
        "Running: standard, high 40 °C — mat 31.4 °C, 27:12 left, heating 87 %"
    idle = dict(base, mat_c=None, session={"state": "idle"})
    assert format_status(idle) == "Idle — mat —\n(simulation)".replace("\n(simulation)", "")


def test_format_status_alarm_flags():
    def alarm(code, needs, present, priority="medium"):
        return {"code": code, "priority": priority, "title": code.title(), "advice": "Advice.",
                "needs": needs, "present": present}
    st = {"mode": "hardware", "mat_c": 30.0, "session": {"state": "done", "program": "quick",
                                                          "level": "low"},
          "alarms": [alarm("rtd_open", "ack", True), alarm("over_temperature", "ack", False),
                     alarm("ssr_stuck_on", "service", False, "high"),
                     alarm("session_done", "none", False, "info")]}
    lines = format_status(st).splitlines()
    assert lines[0] == "Session finished: quick, low — mat 30.0 °C"
    assert lines[1] == "! MEDIUM rtd_open: Rtd_Open (still present). Advice."
    assert lines[2] == "! MEDIUM over_temperature: Over_Temperature (gone: lumbarest ack). Advice."
    assert lines[3].startswith("! HIGH ssr_stuck_on: Ssr_Stuck_On (only service can clear")
    assert lines[4] == "! INFO session_done: Session_Done. Advice."
