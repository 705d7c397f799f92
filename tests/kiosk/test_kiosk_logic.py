"""The kiosk's Kivy-free logic: formatting, screen choice, alarm presentation, hold-to-stop, PIN
entry, idle dimming, the trend buffer, translations, USB export and the API link."""

from __future__ import annotations

import csv
import gettext
import io
import shutil
import subprocess
import sys
import threading
import time

import pytest

from kiosk import i18n, logic, usb
from kiosk.api import ApiLink
from kiosk.backlight import Backlight


@pytest.fixture(autouse=True)
def english():
    i18n.set_language("en")
    yield
    i18n.set_language("en")


def test_kiosk_logic_modules_do_not_import_kivy():
    code = ("import sys; import kiosk.logic, kiosk.i18n, kiosk.api, kiosk.usb, kiosk.backlight; "
            "sys.exit(1 if any(m == 'kivy' or m.startswith('kivy.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_temperatures_and_times():
    assert logic.fmt_temp(37.94) == "37.9 \u00b0C"
    assert logic.fmt_temp(None) == "\u2013 \u00b0C"          # invalid reading: a dash, no number
    assert logic.fmt_temp(float("nan")) == "\u2013 \u00b0C"
    assert logic.fmt_mmss(1679.5) == "28:00"
    assert logic.fmt_mmss(0.2) == "00:01"
    assert logic.fmt_mmss(0) == "00:00"
    assert logic.fmt_mmss(None) == "00:00"
    i18n.set_language("de")
    assert logic.fmt_temp(37.94) == "37,9 \u00b0C"
    assert logic.fmt_minutes(30) == "30 Min."


def test_program_and_level_order_and_names():
    programs = {"traction": 30, "deep": 45, "quick": 20, "standard": 30}
    assert [p for p, _ in logic.sorted_programs(programs)] == ["quick", "standard", "deep",
                                                                "traction"]
    levels = {"high": 40, "off": None, "medium": 38, "low": 36}
    assert [n for n, _ in logic.sorted_levels(levels)] == ["off", "low", "medium", "high"]
    assert logic.program_label("traction") == "Traction only"
    assert logic.program_label("my_own") == "My Own"


def session(state, **kw):
    return {"session": dict({"state": state, "program": "standard", "level": "medium",
                             "planned_s": 1800, "elapsed_s": 100.0}, **kw)}


def test_which_screen_the_state_calls_for():
    assert logic.main_screen_for(None, True, None) == "lost"
    assert logic.main_screen_for(session("running"), False, None) == "lost"
    assert logic.main_screen_for(session("idle"), True, None) == "home"
    assert logic.main_screen_for(session("running"), True, None) == "session"
    assert logic.main_screen_for(session("paused"), True, None) == "session"
    done = session("done", elapsed_s=1800.0)
    assert logic.main_screen_for(done, True, None) == "done"
    assert logic.main_screen_for(done, True, logic.ended_key(done)) == "home"
    # a later session that ends is shown again
    assert logic.main_screen_for(session("stopped", elapsed_s=50.0), True,
                                 logic.ended_key(done)) == "done"


def test_alarm_presentation_follows_iec_60601_1_8():
    high, medium, low = (logic.alarm_style(p) for p in ("high", "medium", "low"))
    assert 1.4 <= high.flash_hz <= 2.8 and high.background[0] > 0.7 > high.background[1]
    assert 0.4 <= medium.flash_hz <= 0.8 and medium.background[0] > 0.9 and \
        medium.background[1] > 0.7 and medium.background[2] < 0.2          # yellow
    assert low.flash_hz == 0 and low.background[0] < 0.2 < low.background[2]   # cyan, steady
    lit = [logic.flash_lit("high", t / 100) for t in range(100)]
    assert 0.4 < sum(lit) / 100 < 0.6 and lit[0] and not lit[30]           # 2 Hz, 50 % duty
    assert all(logic.flash_lit("low", t / 10) for t in range(30))
    alarms = [{"code": "a", "priority": "low"}, {"code": "b", "priority": "info"},
              {"code": "c", "priority": "high"}, {"code": "d", "priority": "medium"}]
    assert [a["code"] for a in logic.overlay_alarms(alarms)] == ["c", "d", "a"]
    lines = logic.alarm_lines({"title": "T", "text": "X", "advice": "Y", "heater_off": True,
                               "needs": "service", "present": False})
    assert lines["heater"] == "The heater is off." and lines["needs"] == "service"
    assert logic.alarm_lines({"heater_off": False})["heater"] == ""


def test_audio_pause_lasts_two_minutes_and_ends_for_a_new_alarm():
    pause = logic.AudioPause()
    pause.pause(100.0, ["rtd_open"])
    assert pause.paused(150.0, ["rtd_open"])
    assert not pause.paused(150.0, ["rtd_open", "over_temperature"])
    assert not pause.paused(100.0 + logic.AUDIO_PAUSE_S, ["rtd_open"])


def test_hold_to_stop_timing():
    timer = logic.HoldTimer(1.5)
    timer.press(10.0)
    assert not timer.release(10.3)               # a tap does nothing
    timer.press(20.0)
    assert timer.progress(20.75) == pytest.approx(0.5)
    assert not timer.update(21.4)
    assert timer.update(21.5)                     # fires while still held...
    assert not timer.update(21.6)                 # ...exactly once
    assert not timer.release(22.0)
    timer.press(30.0)
    assert timer.release(31.6)                    # or on release if no tick came in between


def test_pin_entry_and_lockout():
    pin = logic.PinEntry()
    for key in "12345678":
        pin.press(key, 0)
    pin.press("9", 0)
    assert pin.digits == "12345678"               # at most 8 digits
    pin.press("back", 0)
    assert pin.digits == "1234567" and pin.masked().count("\u25cf") == 7
    assert pin.take() == "1234567" and pin.digits == ""
    pin.press("1", 0)
    pin.rejected(0, None)
    assert "Wrong PIN" in pin.message and pin.digits == ""
    pin.rejected(10.0, {"locked_s": 300})
    assert pin.locked(10.0) and pin.locked(309.0) and not pin.locked(310.0)
    assert pin.lock_text(10.0) == "Too many wrong tries. Locked for 05:00."
    pin.press("1", 20.0)
    assert pin.digits == "" and not pin.can_submit(20.0)


def test_idle_dimming_never_during_a_session_or_alarm():
    dimmer = logic.IdleDimmer(sleep_min=1, last_activity=0.0)
    assert not dimmer.should_dim(59.0, False, False)
    assert dimmer.should_dim(60.0, False, False)
    assert not dimmer.should_dim(600.0, True, False)
    assert not dimmer.should_dim(600.0, False, True)
    assert not logic.IdleDimmer(sleep_min=0).should_dim(1e6, False, False)   # 0 = never


def test_trend_buffer_keeps_gaps_and_a_window():
    trend = logic.TrendBuffer(window_s=60)
    state = session("running")
    for i in range(100):
        st = dict(state, mat_c=None if 50 <= i < 55 else 30 + i * 0.01, setpoint_c=38.0)
        trend.add(float(i), st)
    assert len(trend.points) == 61 and trend.points[0][0] == 39.0
    assert [p[1] for p in trend.points if 50 <= p[0] < 55] == [None] * 5
    trend.add(100.0, dict(session("running", program="deep"), mat_c=31.0))
    assert len(trend.points) == 1                # a new session starts a new curve
    lo, hi = logic.plot_range(trend.points, 38.0)
    assert lo <= 30 and hi >= 39 and hi - lo >= 6


def test_german_catalogue_is_complete_and_compiles_like_msgfmt(tmp_path):
    catalogue = i18n.parse_po(i18n.po_path("de").read_text(encoding="utf-8"))
    missing = [m for m in i18n.extract_messages() if not catalogue.get(m)]
    assert not missing, f"untranslated: {missing}"
    placeholders = [m for m in catalogue if m and
                    sorted(__import__("re").findall(r"{\w+}", m)) !=
                    sorted(__import__("re").findall(r"{\w+}", catalogue[m]))]
    assert not placeholders, f"placeholders differ: {placeholders}"
    mo = i18n.compile_mo(catalogue)
    translations = gettext.GNUTranslations(io.BytesIO(mo))
    assert translations.gettext("Start") == "Starten"
    if shutil.which("msgfmt"):
        out = tmp_path / "x.mo"
        subprocess.run(["msgfmt", "-o", str(out), str(i18n.po_path("de"))], check=True)
        with open(out, "rb") as fh:
            assert gettext.GNUTranslations(fh)._catalog == translations._catalog


def test_the_appliance_alarm_texts_have_german_words():
    alarms = pytest.importorskip("appliance.alarms")
    catalogue = i18n.parse_po(i18n.po_path("de").read_text(encoding="utf-8"))
    texts = {t for spec in alarms.CATALOGUE.values() for t in (spec.title, spec.text, spec.advice)}
    missing = sorted(t for t in texts if not catalogue.get(t))
    assert not missing, f"appliance alarm texts without German: {missing}"
    i18n.set_language("de")
    assert logic.alarm_lines({"title": "Temperature sensor fault"})["title"] == \
        "St\u00f6rung am Temperaturf\u00fchler"
    assert logic.alarm_lines({"title": "Something new"})["title"] == "Something new"


def test_usb_export_writes_two_csv_files(tmp_path):
    sessions = [{"id": 1, "program": "quick", "mean_c": 37.1}, {"id": 2, "program": "deep",
                                                                 "extra": [1, 2]}]
    faults = [{"id": 1, "code": "rtd_open", "readings": {"mat_c": None}}]
    paths = usb.export(tmp_path, sessions, faults, "Room 4/West", stamp="20261126-1000")
    assert [p.name for p in paths] == ["Room-4-West-sessions-20261126-1000.csv",
                                       "Room-4-West-faults-20261126-1000.csv"]
    rows = list(csv.DictReader(open(paths[0], encoding="utf-8")))
    assert rows[0]["program"] == "quick" and rows[1]["extra"] == "[1, 2]"
    assert set(rows[0]) == {"id", "program", "mean_c", "extra"}


def test_usb_drives_are_only_writable_mount_points(tmp_path):
    (tmp_path / "stick").mkdir()
    assert usb.find_usb_drives((str(tmp_path / "*"),)) == []     # a plain directory is not one
    assert usb.find_usb_drives(("/nonexistent/*",)) == []


def test_backlight_through_sysfs_or_an_overlay(tmp_path):
    dev = tmp_path / "rpi_backlight"
    dev.mkdir()
    (dev / "brightness").write_text("255\n")
    (dev / "max_brightness").write_text("255\n")
    light = Backlight(str(tmp_path))
    assert light.apply(50) == 0.0 and (dev / "brightness").read_text().strip() == "128"
    none = Backlight(str(tmp_path / "missing"))
    assert none.apply(100) == 0.0 and none.apply(50) == pytest.approx(0.45)


def test_api_link_reports_lost_and_back(tmp_path):
    from tests.kiosk.kiosk_fake_api import FakeAppliance
    sock = tmp_path / "a.sock"
    events, states = [], []
    lock = threading.Lock()

    def dispatch(fn):
        with lock:
            fn()

    link = ApiLink(sock, dispatch, lambda s, m: states.append((s, m)), events.append,
                   stale_s=1.0, retry_s=0.1)
    link.start()
    try:
        time.sleep(0.3)
        assert events == [] and not link.connected    # nothing there yet: stays "lost"
        server = FakeAppliance(sock).start()
        deadline = time.monotonic() + 3
        while not link.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert link.connected and events == [True]
        assert states and states[-1][1]["programs"]["standard"] == 30.0
        results = []
        link.call("session.start", {"program": "quick", "level": "low"}, results.append)
        link.call("session.pause", None, lambda r: results.append("paused"))
        link.call("session.pause", None, None, lambda c, m, d: results.append((c, m)))
        deadline = time.monotonic() + 3
        while len(results) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert results[0]["session"]["state"] == "running" and results[1] == "paused"
        assert results[2][0] == -32001                # the second pause is refused
        server.stop()
        deadline = time.monotonic() + 3
        while link.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert events == [True, False]
        errors = []
        link.call("status", None, None, lambda c, m, d: errors.append(c))
        deadline = time.monotonic() + 3
        while not errors and time.monotonic() < deadline:
            time.sleep(0.02)
        assert errors == [0]                          # 0: the appliance could not be reached
    finally:
        link.stop()


def test_alarm_sounds_follow_the_iec_burst_patterns(tmp_path):
    from kiosk import sound
    assert len(sound.pulse_times("high")) == 10
    assert len(sound.pulse_times("medium")) == 3
    assert len(sound.pulse_times("low")) == 2
    assert all(0.1 <= length <= 0.2 for _, length in sound.pulse_times("high"))
    assert 150 <= min(sound.FUNDAMENTAL.values()) and max(sound.FUNDAMENTAL.values()) <= 1000
    assert len(sound.HARMONICS) >= 5            # fundamental + at least 4 harmonics
    path = sound.wav_file("medium", 50, tmp_path)
    import wave
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == sound.RATE and wav.getnframes() > 0.9 * sound.RATE
    assert max(abs(v) for v in __import__("struct").unpack(
        "<%dh" % (len(sound.synthesize("low", 0)) // 2), sound.synthesize("low", 0))) == 0


def test_alarm_sound_repeats_and_stops_when_paused():
    from kiosk import sound
    played = []
    player = sound.AlarmSound()
    player.enabled = True
    player.play_once = played.append
    player.update(0.0, "high")
    player.update(1.0, "high")
    player.update(3.0, "high")
    assert played == ["high", "high"]
    player.update(3.5, None)                    # audio paused or the alarm gone
    player.update(10.0, None)
    player.update(10.5, "medium")
    assert played == ["high", "high", "medium"]


def test_a_cannot_reach_notice_is_a_line_in_the_kiosks_words_not_an_overlay():
    notices = [{"code": "cannot_reach", "priority": "low",
                "params": {"level": "high", "holding_c": 38.74}, "text": "The mat cannot reach High"}]
    assert logic.notice_text(notices) == \
        "The mat cannot reach High; it holds 38.7 °C. The session goes on."
    assert logic.notice_text([]) == "" and logic.notice_text(None) == ""
    assert logic.overlay_alarms([]) == []  # notices never travel in alarms
