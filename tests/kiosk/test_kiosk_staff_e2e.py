"""End to end, clinic profile: staff tasks by touch on the panel against the real simulated
appliance, each task's touches counted (docs/ui.md quotes the counts; they are also written to
``build/touch-counts.json``):

- a Monday–Friday 07:30 pre-warm set on the panel and read back through the CLI;
- the clinic PIN changed on the panel and then used to open Settings;
- a calibration run to the end and applied (the appliance runs at ``[simulation] speed = 100``
  so the ~27 simulated minutes of the relay test take about 20 s);
- a maintenance reminder reset with Service done, found in the audit log.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from appliance import cli
from appliance.client import Client
from tests.api.conftest import ApplianceProcess
from tests.kiosk.conftest import HAVE_DISPLAY, NO_DISPLAY, REPO, Harness, kivy_available

pytestmark = [
    pytest.mark.kiosk,
    pytest.mark.slow,
    pytest.mark.skipif(not kivy_available(), reason="Kivy is not installed"),
    pytest.mark.skipif(not HAVE_DISPLAY, reason=NO_DISPLAY),
]

CONFIG = """\
[safety]
selftest_observe_s = 0.5

[clinic]
service_relay_cycles = 100

[simulation]
speed = 100
"""
TOUCHES: dict[str, int] = {}
MAX_TOUCHES = 12   # "a staff task should take at most about a dozen touches"


@pytest.fixture(scope="module")
def appliance():
    d = Path(tempfile.mkdtemp(prefix="lks-"))
    proc = ApplianceProcess(d, CONFIG).start()
    yield proc
    proc.stop()
    shutil.rmtree(d, ignore_errors=True)
    if TOUCHES:
        out = REPO / "build" / "touch-counts.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(TOUCHES, indent=1) + "\n")


class Counted:
    """The kiosk harness with every touch counted."""

    def __init__(self, kiosk):
        self.kiosk = kiosk
        self.count = 0

    def tap(self, widget):
        self.count += 1
        self.kiosk.tap(widget)

    def text(self, screen: str, text: str):
        app = self.kiosk.app
        self.kiosk.wait(lambda: app.sm.current == screen, what=f"the {screen} screen")
        return next(w for w in app.screens[screen].walk()
                    if getattr(w, "text", None) == text and not getattr(w, "disabled", False))

    def tap_text(self, screen: str, text: str):
        self.tap(self.text(screen, text))

    def pin(self, digits: str):
        app = self.kiosk.app
        self.kiosk.wait(lambda: app.sm.current == "pin" and not app.busy, what="the PIN pad")
        pad = app.screens["pin"].pad
        for key in digits + "k":
            self.tap(pad.keys["ok" if key == "k" else key])


@pytest.fixture
def kiosk(appliance):
    k = Harness(appliance.socket, profile="clinic")
    k.wait(lambda: k.app.live() and k.screen == "home", timeout=10, what="Home")
    yield k
    k.close()


def test_weekday_prewarm_set_on_the_panel_reads_back_in_the_cli(appliance, kiosk, capsys):
    app, t = kiosk.app, Counted(kiosk)
    t.tap_text("home", "Settings")
    t.pin("1234")
    t.tap_text("settings", "Schedules")
    screen = app.screens["schedules"]
    kiosk.wait(lambda: screen.edit is not None, what="the schedules loaded")
    t.tap(screen.on_btn)
    t.tap(screen.save_btn)
    kiosk.wait(lambda: app.message_for("schedules") == "Saved.", what="saved")
    TOUCHES["weekday pre-warm (Mon-Fri 07:30, from the factory schedule)"] = t.count
    assert t.count <= MAX_TOUCHES
    assert cli.main(["--socket", str(appliance.socket), "schedule"]) == 0
    out = capsys.readouterr().out
    assert "Pre-warm: on, mon, tue, wed, thu, fri, ready at 07:30" in out
    kiosk.wait(lambda: screen.upcoming and screen.upcoming.get("prewarm"), what="next pre-warm")
    assert "07:10" in screen.next_label.text       # 20 min lead before 07:30, local time

    # the controls do what they say: Saturday on, ready 15 min earlier
    t.tap(screen.day_buttons["sat"])
    t.tap(next(w for w in screen.values["prewarm_time"].parent.children if w.text == "\u2212"))
    t.tap(screen.save_btn)
    with Client(appliance.socket) as c:
        kiosk.wait(lambda: c.call("settings.get")["prewarm_time"] == "07:15", what="07:15")
        assert c.call("settings.get")["prewarm_weekdays"] == ["mon", "tue", "wed", "thu", "fri",
                                                             "sat"]
        assert c.call("history.audit", {"limit": 1})["entries"][0]["role"] == "clinic"


def test_clinic_pin_changed_on_the_panel_then_used(appliance, kiosk):
    app, t = kiosk.app, Counted(kiosk)
    t.tap_text("home", "Settings")
    t.pin("1234")
    t.tap_text("settings", "PINs")
    pins = app.screens["pins"]
    for _twice in range(2):
        for key in "2580":
            t.tap(pins.pad.keys[key])
        t.tap(pins.pad.keys["ok"])
    kiosk.wait(lambda: "is changed" in pins.msg.text, timeout=10, what="the PIN changed")
    TOUCHES["change the clinic PIN (typed twice)"] = t.count
    with Client(appliance.socket) as c:
        assert c.call("settings.get")["pins_default"]["clinic"] is False
    kiosk.tap(app.screens["pins"].title_label.parent.children[-1])   # Back
    kiosk.wait(lambda: kiosk.screen == "home", what="Home")
    u = Counted(kiosk)
    u.tap_text("home", "Settings")
    u.pin("1234")                                   # the old PIN is refused
    kiosk.wait(lambda: "wrong" in app.screens["pin"].msg.text.lower(), what="refused")
    u.pin("2580")
    kiosk.wait(lambda: kiosk.screen == "settings", what="Settings with the new PIN")
    with Client(appliance.socket) as c:      # back to the factory PIN for the other tests
        c.call("settings.set", {"pin": "7391", "changes": {"clinic_pin": "1234"}})


def test_calibration_run_to_the_end_and_applied(appliance, kiosk):
    app, t = kiosk.app, Counted(kiosk)
    t.tap_text("home", "Service")
    t.pin("7391")
    t.tap_text("service", "Calibrate")
    screen = app.screens["calibrate"]
    kiosk.wait(lambda: screen.phase() == "intro" and not app.busy, what="the calibrate intro")
    assert "room temperature" in screen.words.text
    t.tap(screen.action_btn)
    kiosk.wait(lambda: screen.phase() == "running", what="the calibration running")
    kiosk.wait(lambda: len(screen.points) > 5, timeout=10, what="the live plot")
    kiosk.wait(lambda: screen.phase() == "result" and screen.result, timeout=120,
               what="the calibration finished")
    assert "Heater" in screen.words.text and ", was 80 W" in screen.words.text
    assert screen.result["ok"], screen.result
    t.tap(screen.use_btn)
    kiosk.wait(lambda: screen.phase() == "applied", timeout=10, what="applied")
    TOUCHES["calibrate the mat and use the result"] = t.count
    assert t.count <= MAX_TOUCHES
    with Client(appliance.socket) as c:
        audit = c.call("history.audit", {"limit": 5})["entries"]
    assert ("tune.apply", "service") in {(e["action"], e["role"]) for e in audit}

    # a second run is refused in words while the mat is still warm
    kiosk.tap(screen.action_btn)
    kiosk.wait(lambda: "still warm" in screen.msg.text, what="the refusal in words")


def test_service_done_resets_a_reminder_and_is_audited(appliance, kiosk):
    # wear the relay past the 100 cycles configured here: short sessions started and stopped
    with Client(appliance.socket) as c:
        for _ in range(400):
            status = c.call("maintenance.status")
            if status["counters"]["relay_cycles"] >= 100:
                break
            c.call("session.start", {"program": "quick", "level": "low"})
            time.sleep(0.03)
            c.call("session.stop")
        assert any(r["code"] == "relay_cycles" for r in status["reminders"]), status
    kiosk.wait(lambda: kiosk.screen in ("home", "done"), what="Home or Done")
    if kiosk.screen == "done":          # the last of those sessions: OK back to Home
        kiosk.tap(next(w for w in kiosk.app.screens["done"].walk()
                       if getattr(w, "text", None) == "OK"))
    kiosk.wait(lambda: "Service due: relay" in kiosk.app.screens["home"].msg.text,
               what="the maintenance notice on Home")
    app, t = kiosk.app, Counted(kiosk)
    t.tap_text("home", "Service")
    t.pin("7391")
    t.tap_text("service", "Maintenance")
    screen = app.screens["maintenance"]
    kiosk.wait(lambda: screen.status is not None, what="the maintenance status")
    t.tap_text("maintenance", "Service done")
    kiosk.wait(lambda: "counts again" in screen.msg.text, what="reset")
    TOUCHES["service done (reset a maintenance reminder)"] = t.count
    assert t.count <= MAX_TOUCHES
    with Client(appliance.socket) as c:
        audit = c.call("history.audit", {"limit": 1})["entries"][0]
        assert (audit["action"], audit["role"]) == ("maintenance.reset", "service")
        assert not any(r["code"] == "relay_cycles" for r in c.call("maintenance.status")
                       ["reminders"])
