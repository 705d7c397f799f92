"""``--screenshots``: every screen with representative states, rendered to PNG and layout-checked.

No appliance is needed: the states are made up here (see ``scenarios``). For each screen the run
checks the layout (clipped text, widgets outside the window, touch targets under 60 px); the exit
code is 1 if any screen has a problem, and ``layout-problems.txt`` lists them.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

from kivy.clock import Clock
from kivy.core.window import Window

from kiosk import i18n, logic
from kiosk.ui import KioskApp, now
from kiosk.widgets import layout_problems

SETTLE_FRAMES = 2
PROGRAMS = {"quick": 20, "standard": 30, "deep": 45, "traction": 30}
LEVELS = {"off": None, "low": 36.0, "medium": 38.0, "high": 40.0}
LONG_NAME = "Physiotherapie Station 3 \u2013 Behandlungsraum 12 (Erdgeschoss, Westfl\u00fcgel)"

BASE_STATE = {
    "protocol": 1, "mode": "simulation", "unit_name": "Room 4",
    "wall_time": "2026-11-26T10:15:02+00:00",
    "session": {"state": "idle", "program": None, "level": None, "phase": None, "planned_s": None,
                "elapsed_s": None, "remaining_s": None, "outcome": None, "reason": None,
                "mean_c": None},
    "setpoint_c": None, "mat_c": 24.3, "sensor_ok": True, "heating": False, "duty": 0.0,
    "relay_closed": False, "patient_on": None, "alarms": [], "ui_clients": 1,
    "connection": {"clients": 1},
    "sensor": {"resistance_ohm": 109.35, "code": 0x4418 >> 1, "fault_bits": [], "bad_reads": 0},
}

def _alarm(code, present=False):
    """An alarm as the appliance sends it, from its own catalogue (appliance/alarms.py)."""
    from appliance.alarms import CATALOGUE
    spec = CATALOGUE[code]
    return {"code": code, "priority": spec.priority, "kind": spec.kind, "title": spec.title,
            "text": spec.text, "advice": spec.advice, "heater_off": True, "present": present,
            "needs": spec.needs, "since": "2026-11-26T10:14:58+00:00"}


ALARMS = {
    "high": _alarm("over_temperature", present=True),
    "medium": _alarm("rtd_open"),
    "low": _alarm("heating_time_cap"),
    "service": _alarm("heating_while_off"),
    "mismatch": _alarm("mat_mismatch"),
}

SETTINGS = {"levels": dict(low=36.0, medium=38.0, high=40.0), "programs": dict(PROGRAMS),
            "unit_name": "Room 4", "language": "en", "volume": 70, "brightness": 90,
            "sleep_min": 5, "max_setpoint_c": 40.0,
            "pins_default": {"clinic": True, "service": False}}

HISTORY = [
    {"id": 12, "started_at": "2026-11-26T09:30:00+00:00", "program": "standard",
     "level": "medium", "actual_min": 30, "outcome": "done", "mean_c": 37.8, "max_c": 38.4},
    {"id": 11, "started_at": "2026-11-26T08:05:00+00:00", "program": "deep", "level": "high",
     "actual_min": 12.5, "outcome": "stopped", "mean_c": 37.1, "max_c": 40.2},
    {"id": 10, "started_at": "2026-11-25T16:40:00+00:00", "program": "traction",
     "level": "off", "actual_min": 30, "outcome": "done", "mean_c": None, "max_c": None},
    {"id": 9, "started_at": "2026-11-25T14:00:00+00:00", "program": "quick", "level": "low",
     "actual_min": 4, "outcome": "fault", "mean_c": 33.0, "max_c": 35.1},
]
FAULTS = [
    {"code": "rtd_open", "priority": "medium", "title": "Temperature sensor fault",
     "time": "2026-11-25T14:04:00+00:00", "acknowledged_at": "2026-11-25T14:06:00+00:00"},
    {"code": "over_temperature", "priority": "high", "title": "The mat is too hot",
     "time": "2026-11-20T11:00:00+00:00", "acknowledged_at": None},
]


def session_state(state="running", phase="therapy", program="standard", level="medium",
                  elapsed=754.0, mat=37.9, heating=True, setpoint=38.0, alarms=()):
    s = copy.deepcopy(BASE_STATE)
    planned = PROGRAMS[program] * 60
    s["session"].update(state=state, program=program, level=level, phase=phase,
                        planned_s=planned, elapsed_s=elapsed,
                        remaining_s=max(0.0, planned - elapsed))
    s.update(mat_c=mat, heating=heating, setpoint_c=setpoint, duty=0.42 if heating else 0.0,
             relay_closed=True, alarms=list(alarms))
    return s


def trend(minutes=10.0, target=38.0, invalid_tail=False):
    pts = []
    t_end = now()
    n = int(minutes * 60)
    for i in range(0, n, 2):
        t = t_end - n + i
        mat = target - (target - 25.0) * max(0.0, 1 - i / 400.0) ** 2 + (0.1 if i % 6 else -0.1)
        if invalid_tail and i > n - 40:
            mat = None
        pts.append((t, mat, target))
    return pts


def scenarios(profile: str):
    """(name, setup) pairs; ``setup(app)`` puts the app into the state to be shown."""
    out = []

    def idle(app, **extra):
        s = copy.deepcopy(BASE_STATE)
        s.update(extra)
        app.show_state(s)

    out.append(("home", lambda app: idle(app)))
    if profile == "clinic":
        out.append(("home_long_name", lambda app: idle(app, unit_name=LONG_NAME)))
    out.append(("home_sensor_invalid", lambda app: idle(app, mat_c=None)))
    out.append(("home_prewarm", lambda app: idle(
        app, mat_c=31.6, heating=True, setpoint_c=36.0,
        prewarm={"active": True, "remaining_s": 754, "setpoint_c": 36.0, "by": "schedule"})))
    out.append(("session_warming", lambda app: app.show_state(
        session_state(phase="warming", elapsed=95, mat=31.4), trend(1.5))))
    out.append(("session_therapy", lambda app: app.show_state(session_state(), trend(10))))
    out.append(("session_paused", lambda app: app.show_state(
        session_state(state="paused", phase="paused", heating=False), trend(10))))
    out.append(("session_traction_no_heat", lambda app: app.show_state(
        session_state(program="traction", level="off", heating=False, setpoint=None,
                      mat=25.1), [])))
    out.append(("session_sensor_invalid", lambda app: app.show_state(
        session_state(mat=None, heating=False), trend(10, invalid_tail=True))))
    out.append(("session_hold_to_stop", lambda app: app.show_state(
        session_state(), trend(10), hold=0.6)))
    out.append(("done", lambda app: app.show_state(_ended("done", 1800, 37.8))))
    out.append(("done_stopped", lambda app: app.show_state(_ended("stopped", 754, 37.2))))
    for prio in ("high", "medium", "low"):
        out.append((f"alarm_{prio}", lambda app, p=prio: app.show_state(
            session_state(mat=None if p == "medium" else 42.3, heating=False,
                          alarms=[ALARMS[p]]))))
    out.append(("alarm_two_alarms", lambda app: app.show_state(
        session_state(heating=False, alarms=[ALARMS["medium"], ALARMS["high"]]))))
    out.append(("alarm_service_pin", lambda app: app.show_state(
        session_state(heating=False, alarms=[ALARMS["service"]]), service_pin=True)))
    out.append(("alarm_mat_mismatch", lambda app: app.show_state(
        session_state(heating=False, alarms=[ALARMS["mismatch"]]))))
    out.append(("connection_lost", lambda app: app.show_lost()))
    if profile == "clinic":
        out.append(("pin", lambda app: app.show_staff("pin", role="clinic", digits="123")))
        out.append(("pin_wrong", lambda app: app.show_staff("pin", role="clinic",
                                                            wrong={"tries_left": 3})))
        out.append(("pin_locked", lambda app: app.show_staff("pin", role="clinic",
                                                             wrong={"locked_s": 287})))
        out.append(("settings", lambda app: app.show_staff("settings")))
        out.append(("settings_error", lambda app: app.show_staff(
            "settings", say=("settings", "Setpoint 41.0 \u00b0C is above the maximum of "
                             "40.0 \u00b0C."))))
        out.append(("keyboard", lambda app: app.show_staff("keyboard")))
        out.append(("history", lambda app: app.show_staff("history")))
        out.append(("history_faults", lambda app: app.show_staff("history", tab="faults")))
        out.append(("history_no_usb", lambda app: app.show_staff(
            "history", say=("history", app_text_no_usb()))))
        out.append(("service_pin", lambda app: app.show_staff("pin", role="service")))
        out.append(("service", lambda app: app.show_staff("service")))
        out.append(("service_selftest", lambda app: app.show_staff("service", selftest={
            "passed": False, "checks": [
                {"name": "sensor", "passed": True, "detail": "37.9 \u00b0C, no fault bits"},
                {"name": "relay", "passed": True, "detail": "opens and closes"},
                {"name": "no_rise_when_off", "passed": False, "detail": "+0.8 \u00b0C in 30 s"},
            ]})))
        out.append(("home_reminder", lambda app: idle(app, reminders=REMINDERS[:2])))
        out.append(("schedules", lambda app: app.show_staff("schedules", setup=_schedules)))
        out.append(("schedules_error", lambda app: app.show_staff(
            "schedules", setup=_schedules, say=("schedules", SCHEDULE_ERROR))))
        out.append(("warm", lambda app: app.show_staff("warm")))
        out.append(("pins", lambda app: app.show_staff("pins", setup=_pins(digits="12"))))
        out.append(("pins_again", lambda app: app.show_staff(
            "pins", setup=_pins(first="2468", digits="246"))))
        out.append(("pins_service_refused", lambda app: app.show_staff(
            "pins", setup=_pins(which="service"))))
        out.append(("calibrate", lambda app: app.show_staff("calibrate", role="service")))
        out.append(("calibrate_refused", lambda app: app.show_staff(
            "calibrate", role="service", say=("calibrate", TUNE_REFUSED))))
        out.append(("calibrate_running", lambda app: app.show_staff(
            "calibrate", role="service", setup=_calibrate_running)))
        out.append(("calibrate_result", lambda app: app.show_staff(
            "calibrate", role="service", setup=_calibrate_result)))
        out.append(("maintenance", lambda app: app.show_staff(
            "maintenance", role="service", setup=_maintenance)))
        out.append(("audit", lambda app: app.show_staff("audit", role="service", setup=_audit)))
        out.append(("rooms", lambda app: app.show_staff("rooms", setup=_rooms)))
    return out


class _RoomsSnapshot:
    """The Rooms board from fixed messages: screenshot mode has no broker."""

    def __init__(self):
        from bridge.config import from_dict
        from bridge.fleet import FleetView
        from bridge.payloads import state_payload

        self.view = FleetView(from_dict({"broker": "mqtts://broker.invalid"}))
        hot = {"code": "over_temperature", "priority": "high", "kind": "physiological",
               "title": "The mat is too hot", "present": True, "needs": "ack", "since": None}
        sensor = dict(hot, code="rtd_open", priority="medium", kind="technical",
                      title="Temperature sensor fault")
        units = [
            ("room-1", "Room 1", True, {"session": {"state": "running", "remaining_s": 1394},
                                        "mat_c": 37.8, "setpoint_c": 38.0}),
            ("room-2", "Room 2", True, {"session": {"state": "fault"}, "mat_c": None,
                                        "alarms": [hot]}),
            ("room-3", "Room 3", True, {"session": {"state": "running", "remaining_s": 610},
                                        "mat_c": 35.1, "alarms": [sensor]}),
            ("room-4", "Room 4 West", True, {"session": {"state": "idle"}, "mat_c": 22.6}),
            ("room-5", "Room 5", False, {"session": {"state": "idle"}, "mat_c": 21.9}),
        ]
        for unit_id, name, online, extra in units:
            state = dict({"unit_name": name, "mode": "hardware", "alarms": []}, **extra)
            self.view.feed(f"lumbarest/{unit_id}/state",
                           json.dumps(state_payload(state, unit_id)).encode())
            self.view.feed(f"lumbarest/{unit_id}/availability",
                           b"online" if online else b"offline")

    def rows(self):
        return self.view.rows()

    def status(self) -> str:
        return ""


def _rooms(app):
    app.screens["rooms"].board = _RoomsSnapshot()


REMINDERS = [
    {"code": "heater_hours", "priority": "low", "kind": "information",
     "title": "Service due: heater hours", "text": "The heater has run 2012 h (service every "
     "2000 h). Call service.", "params": {"hours": 2012, "every_h": 2000.0}, "resettable": True},
    {"code": "selftest_overdue", "priority": "low", "kind": "information",
     "title": "Self-test overdue", "text": "The last self-test was 3 days ago.",
     "params": {"days": 3}, "resettable": False},
    {"code": "relay_cycles", "priority": "low", "kind": "information",
     "title": "Service due: relay", "text": "The safety relay has switched 100412 times.",
     "params": {"cycles": 100412, "every": 100000}, "resettable": True},
]
SCHEDULE_ERROR = ("The pre-warm must start after midnight: 00:10 minus 20 min lead is the day "
                  "before.")
TUNE_REFUSED = ("The mat is still warm; autotune needs it near room temperature. Try again when "
                "it has cooled.")
SCHEDULE = {"prewarm_enabled": True, "prewarm_weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "prewarm_time": "07:30", "prewarm_lead_min": 20, "prewarm_hold_min": 30,
            "selftest_time": "02:30"}
TUNE_RESULT = {"ok": True, "proposed": {"model": {"heater_w": 78.2, "element_j_per_k": 412.0,
                                                  "surface_j_per_k": 1890.0, "sensor_tau_s": 8.4}},
               "current": {"model": {"heater_w": 80.0, "element_j_per_k": 400.0,
                                     "surface_j_per_k": 2000.0, "sensor_tau_s": 8.0}},
               "fit": {"rms_c": 0.06}}
AUDIT = [
    {"id": 9, "at": "2026-11-26T10:12:00+00:00", "role": "service", "action": "maintenance.reset",
     "details": {"code": "heater_hours", "at_count": 2012.4}},
    {"id": 8, "at": "2026-11-26T09:58:00+00:00", "role": "service", "action": "tune.apply",
     "details": {"heater_w": 78.2, "element_j_per_k": 412.0}},
    {"id": 7, "at": "2026-11-26T09:20:00+00:00", "role": "clinic", "action": "settings.set",
     "details": {"changes": {"prewarm_enabled": True, "prewarm_time": "07:30"},
                 "pins_changed": []}},
    {"id": 6, "at": "2026-11-26T08:02:00+00:00", "role": "clinic", "action": "fault.acknowledge",
     "details": {"code": "rtd_open", "cleared": ["rtd_open"]}},
    {"id": 5, "at": "2026-11-26T07:10:00+00:00", "role": "schedule", "action": "prewarm.start",
     "details": {"minutes": 50}},
    {"id": 4, "at": "2026-11-26T02:30:00+00:00", "role": "system", "action": "selftest",
     "details": {"passed": True}},
    {"id": 3, "at": "2026-11-25T18:40:00+00:00", "role": "user", "action": "pin.wrong",
     "details": {"for": "auth.check", "roles": ["service"]}},
]


def _schedules(app):
    screen = app.screens["schedules"]
    screen.saved = copy.deepcopy(SCHEDULE)
    screen.edit = copy.deepcopy(SCHEDULE)
    screen.edit["prewarm_weekdays"] = ["mon", "tue", "wed", "thu", "fri", "sat"]
    screen.upcoming = {"prewarm": "2026-11-27T07:10+01:00", "selftest": "2026-11-27T02:30+01:00"}


def _pins(which="clinic", first=None, digits=""):
    def setup(app):
        screen = app.screens["pins"]
        screen.which, screen.first, screen.digits = which, first, digits
    return setup


def _calibrate_running(app):
    screen = app.screens["calibrate"]
    screen.status = {"active": True, "done": False, "test_c": 36.0, "elapsed_s": 754.0,
                     "cycles": 1, "cycles_needed": 3}
    pts, t_end = [], now()
    for i in range(0, 754, 4):
        mat = 24.0 + 12.3 * min(1.0, i / 420.0) if i < 420 else             36.0 + 0.35 * (1 if (i // 90) % 2 else -1) * min(1.0, ((i % 90) / 45.0))
        pts.append((t_end - 754 + i, mat, 36.0))
    screen.points = pts
    screen._next_poll = now() + 3600


def _calibrate_result(app):
    _calibrate_running(app)
    screen = app.screens["calibrate"]
    screen.status = {"active": False, "done": True, "ended": "finished", "test_c": 36.0,
                     "elapsed_s": 1613.5, "cycles": 3, "cycles_needed": 3}
    screen.result = copy.deepcopy(TUNE_RESULT)
    screen._result_asked = True


def _maintenance(app):
    app.screens["maintenance"].status = {
        "reminders": copy.deepcopy(REMINDERS),
        "counters": {"sessions": 1843, "heater_hours": 2012.4, "relay_cycles": 100412,
                     "faults": 7},
        "since_service": {"heater_hours": 2012.4, "relay_cycles": 100412},
        "service_every": {"heater_hours": 2000.0, "relay_cycles": 100000}}


def _audit(app):
    app.screens["audit"].entries = copy.deepcopy(AUDIT)


def count_colours(step: int = 53) -> int:
    """Distinct colours in a sample of the frame just drawn (a blank frame has one)."""
    from kivy.graphics.opengl import GL_RGBA, GL_UNSIGNED_BYTE, glReadPixels
    w, h = Window.size
    data = glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE)
    return len({data[i:i + 3] for i in range(0, len(data) - 3, 4 * step)})


def app_text_no_usb():
    return i18n._("No USB drive found. Plug in a USB stick and try again.")


def _ended(outcome, elapsed, mean):
    s = copy.deepcopy(BASE_STATE)
    s["session"].update(state=outcome, program="standard", level="medium", phase=None,
                        planned_s=1800, elapsed_s=elapsed, remaining_s=1800 - elapsed,
                        outcome=outcome, mean_c=mean)
    s["mat_c"] = 36.9
    return s


class ScreenshotApp(KioskApp):
    """Renders the scenarios for English and German, then stops."""

    def __init__(self, outdir, profile, lang="en", **kwargs):
        super().__init__(profile=profile, lang=lang, api_factory=None, **kwargs)
        self.sound.enabled = False
        self.outdir = Path(outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)
        self.exit_code = 2  # until every screen has been rendered
        self.problems: list[str] = []
        self.langs = [lang] + [x for x in i18n.LANGUAGES if x != lang]
        self.queue = [(lg, name, fn) for lg in self.langs for name, fn in scenarios(profile)]
        self.freeze_flash = True
        self.programs = dict(PROGRAMS)
        self.levels = dict(LEVELS)
        self.sel_program, self.sel_level = "standard", "medium"
        self.written: list[str] = []
        self.manifest: dict = {}

    # scenario helpers ----------------------------------------------------------------------------

    def reset(self):
        self.staff = None
        self.messages = {}
        self.alarm_pin_code = None
        self.busy = False
        self.pins = {"clinic": logic.PinEntry(), "service": logic.PinEntry()}
        self.auth = {"clinic": None, "service": None}
        self.dismissed = None
        for screen in self.screens.values():
            screen.forget()
        self.trend.reset()
        if self.overlay.parent is not None:
            self.root_widget.remove_widget(self.overlay)
        stop = getattr(self.screens["session"], "stop_btn", None)
        if stop is not None:
            stop.progress = 0

    def show_state(self, state, points=None, hold=None, service_pin=False):
        self.connected = True
        self.lost_since = None
        self.state = state
        self.state_time = now()
        if points is not None:
            self.trend.points.extend(points)
        self.route()
        if service_pin:
            self.alarm_pin_code = state["alarms"][0]["code"]
            self.pins["service"].digits = "12"
            self.route()
        if hold is not None:
            self.screens["session"].stop_btn.progress = hold

    def show_lost(self):
        self.connected = False
        self.state = None
        self.lost_since = now() - 12
        self.route()

    def show_staff(self, screen, role="clinic", digits="", wrong=None, tab="sessions",
                   say=None, selftest=None, setup=None):
        state = copy.deepcopy(BASE_STATE)
        state.update(mat_c=37.91, setpoint_c=38.0, duty=0.42, heating=True, relay_closed=True)
        self.show_state(state)
        self.pin_role = role
        entry = self.pins[role]
        entry.digits = digits
        if wrong:
            entry.rejected(now(), wrong)
        settings = self.screens["settings"]
        settings.settings = copy.deepcopy(SETTINGS)
        settings.settings_edit = copy.deepcopy(SETTINGS)
        settings.settings_edit["levels"]["high"] = 39.5
        keyboard = self.screens["keyboard"]
        keyboard.keyboard_text = "Room 4 West"
        keyboard.keyboard_upper = False
        history = self.screens["history"]
        history.history_tab = tab
        history.history_sessions = list(HISTORY)
        history.history_faults = list(FAULTS)
        history.history_sel = HISTORY[0]
        history.history_trace = [[p[0], p[1], p[2]] for p in trend(30, 38.0)]
        self.screens["service"].selftest = selftest
        self.auth = {"clinic": "1234", "service": "7391" if role == "service" else None}
        if setup is not None:
            setup(self)
        if say:
            self.say(*say, seconds=60)
        self.staff = screen
        if screen in ("pin", "settings", "history", "schedules", "pins", "calibrate",
                      "maintenance", "audit"):
            self.screens[screen].rebuild()
        self.route()

    # the run -------------------------------------------------------------------------------------

    def on_start(self):
        Clock.schedule_once(self._next, 0.3)

    def _next(self, *_):
        if not self.queue:
            self._finish()
            return
        lang, name, fn = self.queue.pop(0)
        if lang != self.lang:
            self.set_language(lang)
        self.reset()
        fn(self)
        shot = f"{name}" if lang == "en" else f"{name}_{lang}"
        self._settle(shot, SETTLE_FRAMES)

    def _settle(self, shot, frames):
        # layouts, text fitting and plots settle over the next frames; capture after that
        if frames > 0:
            Clock.schedule_once(lambda dt: self._settle(shot, frames - 1), 0)
        else:
            self._capture(shot)

    def _capture(self, shot):
        where = f"{self.profile} {Window.size[0]}x{Window.size[1]} {shot}"
        problems = layout_problems(self.root_widget, Window.size, where)
        self.problems += problems
        target = self.outdir / f"{shot}.png"
        written = Window.screenshot(name=str(self.outdir / f"{shot}.png"))
        if written and os.path.exists(written):
            os.replace(written, target)
            self.written.append(str(target))
        self.manifest[shot] = {"file": target.name, "colours": count_colours(),
                               "problems": problems, "size": list(Window.size)}
        Clock.schedule_once(self._next, 0)

    def _finish(self):
        (self.outdir / "shots.json").write_text(json.dumps(
            {"profile": self.profile, "size": list(Window.size), "shots": self.manifest},
            indent=1))
        report = self.outdir / "layout-problems.txt"
        report.write_text("\n".join(self.problems) + ("\n" if self.problems else ""))
        if self.problems:
            print(f"{len(self.problems)} layout problem(s):", file=sys.stderr)
            for p in self.problems[:80]:
                print("  " + p, file=sys.stderr)
            self.exit_code = 1
        else:
            self.exit_code = 0
        print(f"wrote {len(self.written)} screenshots to {self.outdir}")
        self.stop()
