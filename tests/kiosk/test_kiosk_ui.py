"""The kiosk driven by touches against a fake appliance API: the requests it sends and what it
shows (start, hold-to-stop, pause/resume/extend, PIN lockout, alarms, connection lost)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.kiosk.conftest import HAVE_DISPLAY, NO_DISPLAY, Harness, kivy_available
from tests.kiosk.kiosk_fake_api import FakeAppliance, idle_state

pytestmark = [
    pytest.mark.kiosk,
    pytest.mark.skipif(not kivy_available(), reason="Kivy is not installed"),
    pytest.mark.skipif(not HAVE_DISPLAY, reason=NO_DISPLAY),
]


@pytest.fixture(scope="module")
def env():
    tmp = Path(tempfile.mkdtemp(prefix="lk-"))
    server = FakeAppliance(tmp / "a.sock").start()
    kiosk = Harness(tmp / "a.sock", profile="bedside")
    kiosk.wait(lambda: kiosk.screen == "home", what="the Home screen")
    yield server, kiosk
    kiosk.close()
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def kiosk(env):
    """The connected kiosk on Home with an idle fake appliance and no recorded requests."""
    server, kiosk = env
    if server._listener is None:
        server.start()
    with server.lock:
        server.state = idle_state()
        server.wrong = {"clinic": 0, "service": 0}
        server.locked_until = {"clinic": 0.0, "service": 0.0}
    app = kiosk.app
    if app.profile != "bedside":
        app.profile = "bedside"
        app.rebuild()
    app.leave_staff()
    from kiosk.logic import PinEntry
    app.pins = {"clinic": PinEntry(), "service": PinEntry()}   # forget an earlier lockout
    app.dismissed = None
    app.messages.clear()
    app.dimmer.sleep_min = 5
    app.dimmer.touch(time.monotonic())
    server.push()
    kiosk.wait(lambda: app.live() and kiosk.screen == "home", what="Home")
    server.clear_requests()
    return kiosk


def server_of(kiosk_fixture, env):
    return env[0]


def test_subscribes_as_a_ui_client(env, kiosk):
    server = env[0]
    assert server.subscribers() >= 1
    assert kiosk.app.state["unit_name"] == "Fake Room"
    # the subscription said who it is, so the appliance counts it as a UI client
    server.stop()
    server.start()
    kiosk.wait(lambda: server.subscribers() >= 1, what="re-subscription")
    assert {"client": "kiosk"} in server.calls("subscribe")


def test_start_sends_the_chosen_program_and_level(env, kiosk):
    server = env[0]
    home = kiosk.app.screens["home"]
    kiosk.tap(home.program_buttons["deep"])
    kiosk.tap(home.level_buttons["high"])
    assert home.program_buttons["deep"].selected and home.level_buttons["high"].selected
    kiosk.tap(home.start)
    kiosk.wait(lambda: server.calls("session.start"), what="session.start")
    assert server.calls("session.start") == [{"program": "deep", "level": "high"}]
    kiosk.wait(lambda: kiosk.screen == "session", what="the Session screen")
    session = kiosk.app.screens["session"]
    kiosk.wait(lambda: session.mat_label.text == "22.5 \u00b0C", what="the mat temperature")
    assert session.target_label.text == "40.0 \u00b0C"


def test_traction_program_runs_without_heat(env, kiosk):
    server = env[0]
    home = kiosk.app.screens["home"]
    kiosk.tap(home.level_buttons["high"])
    kiosk.tap(home.program_buttons["traction"])
    assert home.level_buttons["high"].disabled
    kiosk.tap(home.start)
    kiosk.wait(lambda: server.calls("session.start"), what="session.start")
    assert server.calls("session.start") == [{"program": "traction", "level": "off"}]


def start_session(server, kiosk):
    kiosk.tap(kiosk.app.screens["home"].start)
    kiosk.wait(lambda: kiosk.screen == "session", what="the Session screen")
    server.clear_requests()


def test_short_tap_on_stop_sends_nothing_and_a_long_hold_stops(env, kiosk):
    server = env[0]
    start_session(server, kiosk)
    stop = kiosk.app.screens["session"].stop_btn
    kiosk.tap(stop)
    kiosk.hold(stop, 0.6)
    kiosk.pump(0.3)
    assert server.calls("session.stop") == []
    assert "keep your finger" in kiosk.app.screens["session"].msg.text
    # the bar shows the progress while held
    from kivy.tests.common import UnitTestTouch
    x, y = stop.to_window(*stop.center)
    touch = UnitTestTouch(x, y)
    touch.touch_down()
    kiosk.pump(0.8)
    assert 0.3 < stop.progress < 1.0
    kiosk.pump(0.9)                     # 1.7 s in total: fires while still held
    kiosk.wait(lambda: server.calls("session.stop"), timeout=2, what="session.stop")
    touch.touch_up()
    kiosk.pump(0.1)
    assert len(server.calls("session.stop")) == 1
    kiosk.wait(lambda: kiosk.screen == "done", what="the Done screen")
    kiosk.tap(next(w for w in kiosk.app.screens["done"].walk()
                   if getattr(w, "text", "") == "OK"))
    kiosk.wait(lambda: kiosk.screen == "home", what="back to Home")


def test_pause_resume_and_extend(env, kiosk):
    server = env[0]
    start_session(server, kiosk)
    session = kiosk.app.screens["session"]
    kiosk.tap(session.pause_btn)
    kiosk.wait(lambda: session.pause_btn.text == "Continue", what="paused")
    assert session.phase_label.text == "Paused"
    kiosk.tap(session.pause_btn)
    kiosk.wait(lambda: session.pause_btn.text == "Pause", what="running again")
    kiosk.tap(session.extend_btn)
    kiosk.wait(lambda: server.calls("session.extend"), what="session.extend")
    assert server.methods()[:3] == ["session.pause", "session.resume", "session.extend"]


def test_alarm_overlay_and_acknowledge(env, kiosk):
    server = env[0]
    alarm = {"code": "rtd_open", "priority": "medium", "kind": "technical",
             "title": "Temperature sensor fault", "text": "The sensor is broken.",
             "advice": "Call service.", "heater_off": True, "present": False, "needs": "ack",
             "since": "2026-11-26T10:00:00+00:00"}
    server.mutate(lambda s: (s["alarms"].append(alarm), s.update(mat_c=None)))
    kiosk.wait(kiosk.overlay_shown, timeout=1.5, what="the alarm overlay")
    overlay = kiosk.app.overlay
    assert overlay.heater.text == "The heater is off."
    assert overlay.title.text == "Temperature sensor fault"
    # the overlay flashes at 0.5 Hz: it is seen in both phases within 2.5 s
    seen = set()
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        kiosk.pump(0.05)
        seen.add(tuple(round(c, 2) for c in overlay.bg))
    assert len(seen) == 2
    # nothing under the overlay is touchable
    kiosk.tap(kiosk.app.screens["home"].start)
    kiosk.tap(overlay.audio_btn)
    kiosk.wait(lambda: overlay.audio_btn.disabled, what="audio paused")
    assert server.calls("alarm.silence") == [{"seconds": 120}]
    assert overlay.audio_btn.text == "Sound paused 02:00"
    kiosk.tap(overlay.ack_btn)
    kiosk.wait(lambda: server.calls("fault.acknowledge"), what="fault.acknowledge")
    assert server.calls("fault.acknowledge") == [{"code": "rtd_open"}]
    assert server.calls("session.start") == []
    kiosk.wait(lambda: not kiosk.overlay_shown(), what="the overlay to go")
    assert kiosk.app.screens["home"].temp_label.text == "Mat \u2013 \u00b0C"


def test_alarm_needing_service_asks_for_the_service_pin(env, kiosk):
    server = env[0]
    alarm = {"code": "heating_while_off", "priority": "high", "kind": "technical",
             "title": "The heater does not switch off", "text": "Stuck.", "advice": "Service.",
             "heater_off": True, "present": False, "needs": "service", "since": "x"}
    server.mutate(lambda s: s["alarms"].append(alarm))
    kiosk.wait(kiosk.overlay_shown, timeout=1.5, what="the alarm overlay")
    overlay = kiosk.app.overlay
    kiosk.tap(overlay.ack_btn)
    assert server.calls("fault.acknowledge") == []
    for key in "7391":
        kiosk.tap(overlay.pad.keys[key])
    kiosk.tap(overlay.pad.keys["ok"])
    kiosk.wait(lambda: server.calls("fault.acknowledge"), what="fault.acknowledge")
    assert server.calls("fault.acknowledge") == [{"code": "heating_while_off", "pin": "7391"}]
    kiosk.wait(lambda: not kiosk.overlay_shown(), what="the overlay to go")


def use_clinic(kiosk):
    kiosk.app.profile = "clinic"
    kiosk.app.rebuild()
    kiosk.pump(0.1)


def enter_pin(kiosk, digits):
    pad = kiosk.app.screens["pin"].pad
    for key in digits:
        kiosk.tap(pad.keys[key])
    kiosk.tap(pad.keys["ok"])


def nav_button(kiosk, text):
    return next(w for w in kiosk.app.screens["home"].walk() if getattr(w, "text", "") == text)


def test_pin_lockout_is_shown_and_the_pad_disabled(env, kiosk):
    server = env[0]
    use_clinic(kiosk)
    kiosk.tap(nav_button(kiosk, "Settings"))
    kiosk.wait(lambda: kiosk.screen == "pin", what="the PIN screen")
    pin = kiosk.app.screens["pin"]
    for attempt in range(1, 6):
        enter_pin(kiosk, "9999")
        kiosk.wait(lambda: len(server.calls("auth.check")) == attempt and not kiosk.app.busy,
                   what=f"auth.check #{attempt}")
        kiosk.pump(0.05)
    assert all(c == {"role": "clinic", "pin": "9999"} for c in server.calls("auth.check"))
    assert "Locked for 0" in pin.msg.text and "Too many wrong tries" in pin.msg.text
    assert pin.pad.keys["1"].disabled and pin.pad.keys["ok"].disabled
    enter_pin(kiosk, "1234")           # disabled keys: nothing is sent
    kiosk.pump(0.3)
    assert len(server.calls("auth.check")) == 5
    assert kiosk.screen == "pin"


def test_settings_with_the_clinic_pin(env, kiosk):
    server = env[0]
    use_clinic(kiosk)
    kiosk.tap(nav_button(kiosk, "Settings"))
    kiosk.wait(lambda: kiosk.screen == "pin", what="the PIN screen")
    enter_pin(kiosk, "1234")
    kiosk.wait(lambda: kiosk.screen == "settings" and kiosk.app.screens["settings"].settings,
               what="Settings")
    screen = kiosk.app.screens["settings"]
    kiosk.wait(lambda: ("levels", "high") in screen.values, what="the settings rows")
    row = screen.values[("levels", "high")].parent
    minus = row.children[-2]
    plus = row.children[0]
    kiosk.tap(minus)
    assert screen.values[("levels", "high")].text == "39.5 \u00b0C"
    kiosk.tap(screen.save_btn)
    kiosk.wait(lambda: server.calls("settings.set"), what="settings.set")
    assert server.calls("settings.set") == [{"pin": "1234",
                                             "changes": {"levels": {"high": 39.5}}}]
    kiosk.wait(lambda: "Saved" in screen.msg.text, what="Saved")
    # above the appliance's maximum: its own message is shown
    kiosk.app.screens["settings"].settings_edit["max_setpoint_c"] = 45.0
    for _ in range(3):
        kiosk.tap(plus)
    kiosk.tap(screen.save_btn)
    kiosk.wait(lambda: "above the maximum" in screen.msg.text, what="the appliance's error")


def test_history_and_export_without_usb(env, kiosk, monkeypatch):
    server = env[0]
    from kiosk import usb
    monkeypatch.setattr(usb, "find_usb_drives", lambda *a: [])
    use_clinic(kiosk)
    kiosk.tap(nav_button(kiosk, "History"))
    enter_pin(kiosk, "1234")
    kiosk.wait(lambda: kiosk.screen == "history" and kiosk.app.screens["history"].history_sessions,
               what="History")
    screen = kiosk.app.screens["history"]
    kiosk.pump(0.1)
    first_row = screen.list.children[-1]
    kiosk.tap(first_row)
    kiosk.wait(lambda: server.calls("history.trace") == [{"session_id": 2}], what="trace")
    kiosk.wait(lambda: len(screen.detail_plot.points) == 360, what="the curve")
    kiosk.tap(screen.export_btn)
    assert "No USB drive found" in screen.msg.text


def test_export_writes_csv_to_the_usb_drive(env, kiosk, monkeypatch, short_tmp):
    from kiosk import usb
    monkeypatch.setattr(usb, "find_usb_drives", lambda *a: [short_tmp])
    use_clinic(kiosk)
    kiosk.tap(nav_button(kiosk, "History"))
    enter_pin(kiosk, "1234")
    kiosk.wait(lambda: kiosk.screen == "history", what="History")
    kiosk.tap(kiosk.app.screens["history"].export_btn)
    kiosk.wait(lambda: len(list(short_tmp.glob("*.csv"))) == 2, what="two CSV files")
    sessions = next(short_tmp.glob("*-sessions-*.csv")).read_text()
    assert sessions.splitlines()[0].startswith("id,started_at")
    assert len(sessions.splitlines()) == 3


def test_connection_lost_and_reconnect(env, kiosk):
    server = env[0]
    home = kiosk.app.screens["home"]
    assert home.temp_label.text == "Mat 22.5 \u00b0C"
    server.stop()
    kiosk.wait(lambda: kiosk.screen == "lost", timeout=3, what="Connection lost")
    lost = kiosk.app.screens["lost"]
    texts = " ".join(w.text for w in lost.walk() if hasattr(w, "text"))
    assert "22.5" not in texts and "not available" in texts
    server.start()
    server.mutate(lambda s: s.update(mat_c=23.5))
    kiosk.wait(lambda: kiosk.screen == "home", timeout=5, what="reconnect")
    kiosk.wait(lambda: home.temp_label.text == "Mat 23.5 \u00b0C", what="a fresh temperature")


def test_screen_dims_when_idle_but_never_during_a_session(env, kiosk):
    server = env[0]
    app = kiosk.app
    app.dimmer.sleep_min = 0.01          # 0.6 s
    kiosk.wait(lambda: app.dimmed, timeout=3, what="dimming")
    assert app.shade._c.a > 0.5
    kiosk.tap(app.screens["home"].start)   # wakes the screen only
    assert not app.dimmed
    kiosk.pump(0.2)
    assert server.calls("session.start") == []
    kiosk.tap(app.screens["home"].start)
    kiosk.wait(lambda: kiosk.screen == "session", what="the Session screen")
    kiosk.pump(1.5)
    assert not app.dimmed


def test_room_name_on_the_on_screen_keyboard(env, kiosk):
    server = env[0]
    use_clinic(kiosk)
    kiosk.tap(nav_button(kiosk, "Settings"))
    enter_pin(kiosk, "1234")
    kiosk.wait(lambda: kiosk.screen == "settings" and kiosk.app.screens["settings"].settings,
               what="Settings")
    change = next(w for w in kiosk.app.screens["settings"].walk()
                  if getattr(w, "text", "") == "Change")
    kiosk.tap(change)
    kiosk.wait(lambda: kiosk.screen == "keyboard", what="the keyboard")
    keys = kiosk.app.screens["keyboard"].keys
    for _ in range(len("Fake Room")):
        kiosk.tap(keys["back"])
    for key in ["R", "O", "O", "M", "space", "7"]:
        kiosk.tap(keys[key])
    assert kiosk.app.screens["keyboard"].keyboard_text == "Room 7"
    kiosk.tap(next(w for w in kiosk.app.screens["keyboard"].walk()
                   if getattr(w, "text", "") == "OK"))
    kiosk.wait(lambda: kiosk.screen == "settings", what="back to Settings")
    kiosk.tap(kiosk.app.screens["settings"].save_btn)
    kiosk.wait(lambda: server.calls("settings.set"), what="settings.set")
    assert server.calls("settings.set") == [{"pin": "1234", "changes": {"unit_name": "Room 7"}}]
    kiosk.wait(lambda: kiosk.app.screens["settings"].settings.get("unit_name") == "Room 7",
               what="saved")
