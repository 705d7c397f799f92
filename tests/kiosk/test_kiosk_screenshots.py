"""``lumbarest-kiosk --screenshots`` for every size and profile: every expected screen is written,
is not blank, and passed the in-app layout checks (no clipped text, nothing outside the window or
its layout box, touch targets >= 60 px).

The PNGs go to ``build/screenshots/<profile>-<size>/`` (git-ignored) so they can be looked at after
a run, in CI too.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.kiosk.conftest import HAVE_DISPLAY, NO_DISPLAY, REPO, kivy_available

pytestmark = [
    pytest.mark.kiosk,
    pytest.mark.skipif(not kivy_available(), reason="Kivy is not installed"),
    pytest.mark.skipif(not HAVE_DISPLAY, reason=NO_DISPLAY),
]

SIZES = ["800x480", "720x1280", "1280x720"]
PROFILES = ["bedside", "clinic"]
COMMON = ["home", "home_sensor_invalid", "home_prewarm", "session_warming", "session_therapy", "session_paused",
          "session_traction_no_heat", "session_sensor_invalid", "session_hold_to_stop", "done",
          "done_stopped", "alarm_high", "alarm_medium", "alarm_low", "alarm_two_alarms",
          "alarm_service_pin", "alarm_mat_mismatch", "connection_lost"]
CLINIC = ["home_long_name", "pin", "pin_wrong", "pin_locked", "settings", "settings_error",
          "keyboard", "history", "history_faults", "history_no_usb", "service_pin", "service",
          "service_selftest", "home_reminder", "schedules", "schedules_error", "warm", "pins",
          "pins_again", "pins_service_refused", "calibrate", "calibrate_refused",
          "calibrate_running", "calibrate_result", "maintenance", "audit", "rooms"]
OUT = Path(os.environ.get("KIOSK_SCREENSHOT_DIR") or REPO / "build" / "screenshots")


def kiosk_command() -> list[str]:
    script = Path(sys.executable).parent / "lumbarest-kiosk"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "kiosk.main"]


def render(profile: str, size: str) -> tuple[Path, subprocess.CompletedProcess]:
    outdir = OUT / f"{profile}-{size}"
    shutil.rmtree(outdir, ignore_errors=True)
    try:
        proc = subprocess.run(kiosk_command() + ["--screenshots", str(outdir), "--size", size,
                                                 "--profile", profile],
                              capture_output=True, text=True, timeout=600, cwd=REPO)
    except subprocess.TimeoutExpired as exc:
        proc = subprocess.CompletedProcess(exc.cmd, -1, "", f"timed out after {exc.timeout} s")
    return outdir, proc


@pytest.fixture(scope="module")
def runs():
    """All six runs, two at a time (each is one Kivy process with its own window)."""
    jobs = [(p, s) for p in PROFILES for s in SIZES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: render(*job), jobs))
    return dict(zip(jobs, results))


def png_info(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the image data) without an imaging library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return width, height, len(set(raw[::7]))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("profile", PROFILES)
def test_every_screen_is_rendered_legibly(runs, profile, size):
    outdir, proc = runs[(profile, size)]
    problems = (outdir / "layout-problems.txt").read_text() if \
        (outdir / "layout-problems.txt").exists() else ""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{problems}\n{proc.stderr[-3000:]}"
    manifest = json.loads((outdir / "shots.json").read_text())
    shots = manifest["shots"]
    expected = COMMON + (CLINIC if profile == "clinic" else [])
    expected += [f"{name}_de" for name in expected]
    missing = [name for name in expected if name not in shots]
    assert not missing, f"screens not rendered: {missing}"
    w, h = (int(v) for v in size.split("x"))
    for name in expected:
        entry = shots[name]
        assert entry["problems"] == [], entry["problems"]
        assert entry["colours"] >= 8, f"{name} looks blank ({entry['colours']} colours)"
        pw, ph, distinct = png_info(outdir / entry["file"])
        assert (pw, ph) == (w, h), f"{name}.png is {pw}x{ph}, not {size}"
        assert distinct >= 16, f"{name}.png looks blank"
