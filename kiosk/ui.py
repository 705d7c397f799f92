"""The Kivy application: screens, the alarm overlay, routing and the model behind them.

The app never decides anything about the heater: each touch becomes an API request
(:class:`kiosk.api.ApiLink`), and every screen is redrawn from the last pushed ``state``.
"""

from __future__ import annotations

import time
from datetime import datetime

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.screenmanager import NoTransition, Screen, ScreenManager
from kivy.uix.widget import Widget

from kiosk import i18n, logic, usb
from kiosk.backlight import DIM_LEVEL, Backlight
from kiosk.sound import AlarmSound
from kiosk.i18n import _
from kiosk.widgets import (ACCENT, BG, GREEN, HEAT, MUTED, PANEL, PANEL_HI, RED, SYMBOL_FONT,
                           TARGET, Fill,
                           HoldButton, NumberPad, Panel, ProgressRing, TrendPlot, button, label,
                           scroll)

DONE_TIMEOUT_S = 60.0
STAFF_TIMEOUT_S = 120.0
MESSAGE_S = 8.0
STALE_S = 4.0
SETTINGS_POLL_S = 60.0


def now() -> float:
    return time.monotonic()


def first(row: dict, *keys, default=None):
    for key in keys:
        if row.get(key) is not None:
            return row[key]
    return default


def fmt_when(value) -> str:
    """A wall-clock time from the history ('2026-11-26T10:15:02+00:00' or epoch seconds)."""
    if value is None:
        return logic.DASH
    try:
        if isinstance(value, (int, float)):
            dt = datetime.fromtimestamp(value)
        else:
            dt = datetime.fromisoformat(str(value))
            if dt.tzinfo is not None:
                dt = dt.astimezone()
        return dt.strftime("%d.%m. %H:%M")
    except (ValueError, OSError, OverflowError):
        return str(value)[:16]


def alarm_title(code: str) -> str:
    """The plain-words title of a fault code, from the appliance's alarm catalogue."""
    try:
        from appliance.alarms import CATALOGUE
    except ImportError:
        return code
    spec = CATALOGUE.get(code)
    return _(spec.title) if spec else code


class Sizes:
    """Type and element sizes for the window: ``u`` = 1 on 800x480, 1.5 on 1280x720 / 720x1280."""

    def __init__(self, width: float, height: float):
        self.w, self.h = width, height
        self.portrait = height > width
        self.u = min(max(width, height) / 800.0, min(width, height) / 480.0)
        u = self.u
        self.huge = 84 * u
        self.big = 38 * u
        self.large = 30 * u
        self.normal = 24 * u
        self.small = 20 * u
        self.bar = 64 * u
        self.target = 64 * u
        self.gap = 8 * u


# -------------------------------------------------------------------------------------------------
# Screens

class KScreen(Screen):
    """A screen built from the app's sizes and refreshed from its model."""

    def __init__(self, app: "KioskApp", **kwargs):
        super().__init__(**kwargs)
        self.app = app
        self.built_for = None

    def invalidate(self):
        """Build again before the next time this screen is shown (saves memory and start time:
        screens nobody opens are never built)."""
        self.built_for = None

    def ensure_built(self):
        if self.built_for != self.app.build_key():
            self.rebuild()

    def rebuild(self):
        self.built_for = self.app.build_key()
        self.clear_widgets()
        self.s = self.app.sizes
        root = Fill(bg=list(BG))
        self.body = BoxLayout(orientation="vertical", padding=self.s.gap, spacing=self.s.gap)
        root.add_widget(self.body)
        self.add_widget(root)
        self.build()
        self.refresh()

    def build(self):
        pass

    def refresh(self):
        pass

    def top_bar(self, title: str, back: bool = False, extra=()):
        s = self.s
        bar = BoxLayout(size_hint_y=None, height=s.bar, spacing=s.gap)
        if back:
            bar.add_widget(button(_("Back"), self.app.leave_staff, s.normal,
                                  size_hint_x=None, width=max(s.target * 1.8, 120 * s.u),
                                  wrap=False))
        self.title_label = label(title, s.large, halign="left", wrap=True, max_lines=2,
                                 ellipsize=True, min_font=16 * s.u)
        bar.add_widget(self.title_label)
        for widget in extra:
            bar.add_widget(widget)
        self.body.add_widget(bar)
        return bar


class HomeScreen(KScreen):
    def build(self):
        s, app = self.s, self.app
        clinic = app.profile == "clinic"
        self.temp_label = label("", s.large, size_hint_x=None,
                                width=(210 if not s.portrait else 200) * s.u, wrap=False)
        extra = [self.temp_label]
        if clinic and not s.portrait:
            for text, cb in app.staff_buttons():
                extra.append(button(text, cb, s.small, size_hint_x=None, width=116 * s.u,
                                    min_font=12))
        self.top_bar("", extra=extra)
        if clinic and s.portrait:
            nav = BoxLayout(size_hint_y=None, height=s.target, spacing=s.gap)
            for text, cb in app.staff_buttons():
                nav.add_widget(button(text, cb, s.normal))
            self.body.add_widget(nav)

        programs = logic.sorted_programs(app.programs)
        levels = logic.sorted_levels(app.levels)
        self.heading = label(_("Choose a program"), s.normal, color=MUTED, halign="left",
                             size_hint_y=None, height=36 * s.u)
        self.body.add_widget(self.heading)
        cols = 2 if s.portrait and len(programs) > 2 else max(1, len(programs))
        rows = -(-len(programs) // cols) if programs else 1
        grid = GridLayout(cols=cols, spacing=s.gap, size_hint_y=None,
                          height=rows * (120 if s.portrait else 96) * s.u + (rows - 1) * s.gap)
        self.program_buttons = {}
        for name, minutes in programs:
            text = f"{logic.program_label(name)}\n{logic.fmt_minutes(minutes)}"
            b = button(text, (lambda n=name: app.choose_program(n)), s.large, max_lines=3)
            self.program_buttons[name] = b
            grid.add_widget(b)
        self.body.add_widget(grid)

        self.body.add_widget(label(_("Choose the heat"), s.normal, color=MUTED, halign="left",
                                   size_hint_y=None, height=36 * s.u))
        cols = 2 if s.portrait and len(levels) > 2 else max(1, len(levels))
        rows = -(-len(levels) // cols) if levels else 1
        grid = GridLayout(cols=cols, spacing=s.gap, size_hint_y=None,
                          height=rows * (100 if s.portrait else 84) * s.u + (rows - 1) * s.gap)
        self.level_buttons = {}
        for name, celsius in levels:
            text = logic.level_label(name)
            if celsius is not None:
                text += "\n" + logic.fmt_temp(celsius, 0 if float(celsius).is_integer() else 1)
            b = button(text, (lambda n=name: app.choose_level(n)), s.large, max_lines=3)
            self.level_buttons[name] = b
            grid.add_widget(b)
        self.body.add_widget(grid)
        self.msg = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1))
        self.body.add_widget(self.msg)
        row = BoxLayout(size_hint_y=None, height=(130 if s.portrait else 80) * s.u,
                        spacing=s.gap)
        self.start = button(_("Start"), app.start_session, s.big, fill=GREEN)
        row.add_widget(self.start)
        # a pre-warm heats the mat without a session: anyone may stop it (no PIN)
        self.prewarm_btn = button(_("Stop warming"), app.stop_prewarm, s.normal, fill=RED,
                                  size_hint_x=None, width=0, opacity=0, disabled=True)
        row.add_widget(self.prewarm_btn)
        self.start_row = row
        self.body.add_widget(row)

    def refresh(self):
        app = self.app
        state = app.state or {}
        self.title_label.set_text(app.unit_name() if app.profile == "clinic" else _("Lumbarest"))
        self.temp_label.text = _("Mat {t}").format(t=logic.fmt_temp(state.get("mat_c")))
        for name, b in self.program_buttons.items():
            b.selected = name == app.sel_program
        heatless = logic.program_is_heatless(app.sel_program)
        for name, b in self.level_buttons.items():
            b.selected = name == app.effective_level()
            b.disabled = heatless and name != "off"
        self.msg.text = app.message_for("home")
        prewarm = state.get("prewarm") if isinstance(state.get("prewarm"), dict) else {}
        if prewarm.get("active"):
            self.heading.text = _("Warming the mat to {t}: {left} left").format(
                t=logic.fmt_temp(prewarm.get("setpoint_c") or state.get("setpoint_c")),
                left=logic.fmt_mmss(prewarm.get("remaining_s")))
            self.heading.color = HEAT
            self.prewarm_btn.opacity, self.prewarm_btn.disabled = 1, False
            self.prewarm_btn.width = self.start_row.width * 0.35
        else:
            self.heading.text = _("Choose a program")
            self.heading.color = MUTED
            self.prewarm_btn.opacity, self.prewarm_btn.disabled = 0, True
            self.prewarm_btn.width = 0
        if state.get("ready") is False:      # the appliance's start-up self-test is running
            self.start.text = _("Please wait\u2026")
            self.start.disabled = True
            self.msg.text = self.msg.text or _("The controller is checking itself.")
        elif app.busy:
            self.start.text = _("Starting\u2026")
            self.start.disabled = True
        else:
            self.start.text = _("Start")
            self.start.disabled = not (app.live() and app.sel_program)


class SessionScreen(KScreen):
    def build(self):
        s, app = self.s, self.app
        self.top_bar("")
        main = BoxLayout(orientation="vertical" if s.portrait else "horizontal", spacing=s.gap)
        # the remaining time inside the ring
        ring_box = FloatLayout(size_hint=(1, 0.95) if s.portrait else (0.42, 1))
        self.ring = ProgressRing(pos_hint={"x": 0, "y": 0}, size_hint=(1, 1),
                                 thickness=12 * s.u, color=list(ACCENT))
        ring_box.add_widget(self.ring)
        self.time_label = label("", s.huge * (1.25 if s.portrait else 1), wrap=False,
                                size_hint=(0.62, 0.3), pos_hint={"center_x": 0.5, "center_y": 0.55})
        self.time_caption = label(_("remaining"), s.normal, color=MUTED, wrap=False,
                                  size_hint=(0.6, 0.12), pos_hint={"center_x": 0.5, "center_y": 0.33})
        ring_box.add_widget(self.time_label)
        ring_box.add_widget(self.time_caption)
        main.add_widget(ring_box)

        info = BoxLayout(orientation="vertical", spacing=s.gap)
        head = BoxLayout(size_hint_y=None, height=52 * s.u, spacing=s.gap)
        self.phase_label = label("", s.big, wrap=False, halign="left")
        head.add_widget(self.phase_label)
        self.heat_label = label("", s.normal, wrap=True, max_lines=2, radius=10 * s.u,
                                size_hint_x=0.8)
        head.add_widget(self.heat_label)
        info.add_widget(head)
        temps = BoxLayout(size_hint_y=None, height=80 * s.u, spacing=s.gap)
        mat = Panel(orientation="vertical", padding=4 * s.u)
        mat.add_widget(label(_("Mat"), s.small, color=MUTED, wrap=False))
        self.mat_label = label("", s.big, wrap=False)
        mat.add_widget(self.mat_label)
        temps.add_widget(mat)
        target = Panel(orientation="vertical", padding=4 * s.u)
        target.add_widget(label(_("Target"), s.small, color=MUTED, wrap=False))
        self.target_label = label("", s.big, wrap=False, color=TARGET)
        target.add_widget(self.target_label)
        temps.add_widget(target)
        info.add_widget(temps)
        self.plot = TrendPlot(font=15 * s.u, window_s=600)
        info.add_widget(self.plot)
        # the caption doubles as the message line (e.g. how to stop)
        self.msg = label("", s.small * 0.9, color=MUTED, wrap=True, max_lines=2,
                         size_hint_y=None, height=(40 if s.portrait else 30) * s.u)
        info.add_widget(self.msg)
        main.add_widget(info)
        self.body.add_widget(main)

        controls = BoxLayout(size_hint_y=None, height=(90 if s.portrait else 72) * s.u,
                             spacing=s.gap)
        self.pause_btn = button("", app.pause_or_resume, s.large)
        self.extend_btn = button(_("+5 min"), app.extend_session, s.large,
                                 size_hint_x=0.6)
        self.stop_btn = HoldButton(text=_("Hold to stop"), base_font=s.large, min_font=14,
                                   hold_action=app.stop_session, short_action=app.stop_hint)
        controls.add_widget(self.pause_btn)
        controls.add_widget(self.extend_btn)
        controls.add_widget(self.stop_btn)
        self.body.add_widget(controls)

    def refresh(self):
        app = self.app
        state = app.state or {}
        session = state.get("session") or {}
        title = f"{logic.program_label(session.get('program'))} \u00b7 " \
                f"{logic.level_label(session.get('level'))}"
        if app.profile == "clinic":
            title = f"{app.unit_name()} \u00b7 {title}"
        self.title_label.set_text(title)
        self.time_label.text = logic.fmt_mmss(session.get("remaining_s"))
        self.ring.value = logic.progress_fraction(session)
        paused = session.get("state") == "paused"
        self.ring.color = list(MUTED if paused else ACCENT)
        self.phase_label.text = logic.phase_text(session)
        self.mat_label.text = logic.fmt_temp(state.get("mat_c"))
        heat_off = session.get("level") == "off" or logic.program_is_heatless(session.get("program"))
        setpoint = state.get("setpoint_c")
        self.target_label.text = _("no heat") if heat_off or setpoint is None \
            else logic.fmt_temp(setpoint)
        if state.get("heating"):
            self.heat_label.text = _("Heating")
            self.heat_label.bg = list(HEAT)
            self.heat_label.color = (0, 0, 0, 1)
        else:
            self.heat_label.text = _("Heat is off") if (heat_off or paused) else _("Not heating now")
            self.heat_label.bg = list(PANEL)
            self.heat_label.color = (1, 1, 1, 1)
        self.plot.points = list(app.trend.points)
        self.pause_btn.text = _("Continue") if paused else _("Pause")
        self.pause_btn.fill = list(GREEN if paused else PANEL_HI)
        msg = app.message_for("session")
        self.msg.text = msg or _("Mat temperature (orange) and target (blue), last 10 minutes")
        self.msg.color = (1, 0.85, 0.5, 1) if msg else MUTED


class DoneScreen(KScreen):
    def build(self):
        s, app = self.s, self.app
        self.top_bar("")
        self.outcome = label("", s.big, wrap=True, max_lines=2, size_hint_y=None, height=96 * s.u)
        self.body.add_widget(self.outcome)
        self.numbers = label("", s.large, wrap=True, color=MUTED, size_hint_y=None,
                             height=(90 if s.portrait else 50) * s.u)
        self.body.add_widget(self.numbers)
        advice = Panel(orientation="vertical", padding=10 * s.u, spacing=4 * s.u)
        advice.add_widget(label(_("Before you get up"), s.large, wrap=True, size_hint_y=0.45))
        advice.add_widget(label(_("Stay lying down for a minute. Roll onto your side, push "
                                  "yourself up slowly with your arms and sit for a moment "
                                  "before you stand."), s.normal, wrap=True))
        self.body.add_widget(advice)
        bottom = BoxLayout(size_hint_y=None, height=(100 if s.portrait else 72) * s.u,
                           spacing=s.gap)
        self.countdown = label("", s.small, color=MUTED, wrap=True)
        bottom.add_widget(self.countdown)
        bottom.add_widget(button(_("OK"), app.dismiss_done, s.big, fill=GREEN,
                                 size_hint_x=0.45))
        self.body.add_widget(bottom)

    def refresh(self):
        app = self.app
        info = logic.summary(app.state)
        self.title_label.set_text(app.unit_name() if app.profile == "clinic" else _("Lumbarest"))
        self.outcome.text = info["outcome"]
        self.numbers.text = _("{program}, {minutes}, average {mean}").format(
            program=info["program"], minutes=info["minutes"], mean=info["mean"])
        left = max(0, int(DONE_TIMEOUT_S - (now() - (app.done_since or now()))))
        self.countdown.text = _("Back to the start screen in {s} s").format(s=left)


class LostScreen(KScreen):
    def build(self):
        s, app = self.s, self.app
        self.body.add_widget(Widget(size_hint_y=0.15))
        self.body.add_widget(label(_("No connection to the mat controller"), s.big, wrap=True,
                                   max_lines=3, size_hint_y=0.9))
        self.body.add_widget(label(_("Trying to connect again\u2026"), s.large, wrap=True,
                                   color=MUTED, size_hint_y=0.4))
        self.body.add_widget(label(_("Mat temperature: not available"), s.normal, wrap=True,
                                   color=MUTED, size_hint_y=0.4))
        if app.profile == "clinic":
            hint = _("Check that the controller is running. Without a screen connected, the "
                     "heater switches itself off after 30 seconds. Call service if this lasts.")
        else:
            hint = _("Please call the staff if this lasts. The mat switches its heat off "
                     "by itself.")
        self.body.add_widget(label(hint, s.normal, wrap=True, size_hint_y=0.9))
        self.elapsed = label("", s.small, color=MUTED, wrap=True, size_hint_y=0.3)
        self.body.add_widget(self.elapsed)
        self.body.add_widget(Widget(size_hint_y=0.1))

    def refresh(self):
        since = self.app.lost_since
        secs = int(now() - since) if since else 0
        self.elapsed.text = _("No answer for {s} s").format(s=secs) if secs >= 2 else ""


class PinScreen(KScreen):
    """PIN entry on an on-screen pad; the appliance checks the PIN and enforces the lockout."""

    def build(self):
        s, app = self.s, self.app
        role = app.pin_role
        title = _("Clinic PIN") if role == "clinic" else _("Service PIN")
        self.top_bar(title, back=True)
        main = BoxLayout(orientation="vertical" if s.portrait else "horizontal", spacing=s.gap * 2)
        left = BoxLayout(orientation="vertical", spacing=s.gap,
                         size_hint=(1, 0.45) if s.portrait else (0.45, 1))
        left.add_widget(label(_("Enter the PIN"), s.large, wrap=True, size_hint_y=0.6))
        self.display = label("", s.big, bg=list(PANEL), wrap=False, size_hint_y=0.6)
        self.display.font_name = SYMBOL_FONT  # the PIN dots
        left.add_widget(self.display)
        self.msg = label("", s.normal, wrap=True, color=(1, 0.85, 0.5, 1))
        left.add_widget(self.msg)
        main.add_widget(left)
        self.pad = NumberPad(app.pin_key, ok_text=_("OK"), font=s.big, spacing=s.gap)
        main.add_widget(self.pad)
        self.body.add_widget(main)

    def refresh(self):
        app = self.app
        entry = app.pin_entry()
        t = now()
        self.display.text = entry.masked()
        locked = entry.locked(t)
        self.msg.text = entry.lock_text(t) if locked else (entry.message or app.message_for("pin"))
        for key, b in self.pad.keys.items():
            b.disabled = locked or (key == "ok" and not entry.can_submit(t)) or app.busy


class SettingsScreen(KScreen):
    def build(self):
        s, app = self.s, self.app
        self.save_btn = button(_("Save"), app.save_settings, s.normal, fill=GREEN,
                               size_hint_x=None, width=max(s.target * 1.8, 120 * s.u), wrap=False)
        self.top_bar(_("Settings"), back=True, extra=[self.save_btn])
        self.msg = label("", s.normal, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=None,
                         height=34 * s.u)
        self.body.add_widget(self.msg)
        rows = GridLayout(cols=1, spacing=s.gap, size_hint_y=None)
        rows.bind(minimum_height=rows.setter("height"))
        self.values = {}
        edit = app.settings_edit or {}
        for name, celsius in logic.sorted_levels(edit.get("levels") or {}):
            if celsius is None:
                continue
            rows.add_widget(self.stepper(("levels", name),
                                         _("Heat {level}").format(level=logic.level_label(name))))
        for name, _minutes in logic.sorted_programs(edit.get("programs") or {}):
            rows.add_widget(self.stepper(("programs", name), _("Program {program}").format(
                program=logic.program_label(name))))
        if "unit_name" in edit:
            row = self.row(_("Room or unit name"))
            value = label("", s.normal, wrap=True, max_lines=2, bg=list(PANEL))
            self.values[("unit_name",)] = value
            row.add_widget(value)
            row.add_widget(button(_("Change"), app.open_keyboard, s.normal, size_hint_x=0.45))
            rows.add_widget(row)
        if "language" in edit:
            row = self.row(_("Language"))
            self.lang_buttons = {}
            for code, name in (("en", "English"), ("de", "Deutsch")):
                b = button(name, (lambda c=code: app.edit_setting(("language",), c)), s.normal)
                self.lang_buttons[code] = b
                row.add_widget(b)
            rows.add_widget(row)
        for key, text in (("volume", _("Sound volume")), ("brightness", _("Screen brightness")),
                          ("sleep_min", _("Dim the screen after (minutes)"))):
            if key in edit:
                rows.add_widget(self.stepper((key,), text))
        self.rows = rows
        self.body.add_widget(scroll(rows))

    def row(self, text):
        s = self.s
        row = BoxLayout(size_hint_y=None, height=s.target * 1.1, spacing=s.gap)
        row.add_widget(label(text, s.normal, halign="left", wrap=True, max_lines=2,
                             size_hint_x=1.3 if not self.s.portrait else 1.1))
        return row

    def stepper(self, key, text):
        s, app = self.s, self.app
        row = self.row(text)
        row.add_widget(button("\u2212", (lambda: app.step_setting(key, -1)), s.big,
                              size_hint_x=None, width=s.target * 1.2, wrap=False))
        value = label("", s.large, wrap=False, bg=list(PANEL))
        self.values[key] = value
        row.add_widget(value)
        row.add_widget(button("+", (lambda: app.step_setting(key, +1)), s.big,
                              size_hint_x=None, width=s.target * 1.2, wrap=False))
        return row

    def refresh(self):
        app = self.app
        edit = app.settings_edit or {}
        for key, widget in self.values.items():
            value = app.get_setting(edit, key)
            if key[0] == "levels":
                widget.text = logic.fmt_temp(value)
            elif key[0] == "programs":
                widget.text = logic.fmt_minutes(value)
            elif key[0] in ("volume", "brightness"):
                widget.text = f"{int(value or 0)} %"
            elif key[0] == "sleep_min":
                widget.text = _("never") if not value else logic.fmt_minutes(value)
            else:
                widget.text = str(value or logic.DASH)
        for code, b in getattr(self, "lang_buttons", {}).items():
            b.selected = edit.get("language") == code
        self.save_btn.disabled = app.busy or not app.settings_changes()
        default_pin = ((app.settings or {}).get("pins_default") or {}).get("clinic")
        self.msg.text = app.message_for("settings") or (
            _("Loading\u2026") if app.settings is None else
            _("The clinic PIN is still the factory PIN. Ask service to change it.")
            if default_pin else "")


class KeyboardScreen(KScreen):
    """An on-screen letter pad for the room name (no physical keyboard anywhere)."""

    KEYS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00dc") + list("0123456789") + \
        ["-", ".", "space", "back", "case"]

    def build(self):
        s, app = self.s, self.app
        bar = BoxLayout(size_hint_y=None, height=s.bar, spacing=s.gap)
        self.display = label("", s.large, bg=list(PANEL), wrap=False, halign="left")
        bar.add_widget(self.display)
        bar.add_widget(button(_("Cancel"), app.close_keyboard, s.normal, size_hint_x=0.3,
                              wrap=False))
        bar.add_widget(button(_("OK"), app.accept_keyboard, s.normal, fill=GREEN,
                              size_hint_x=0.25, wrap=False))
        self.body.add_widget(bar)
        cols = 8 if s.portrait else 11
        grid = GridLayout(cols=cols, spacing=s.gap * 0.6)
        self.keys = {}
        for key in self.KEYS:
            text = {"space": "\u2423", "back": "\u2190"}.get(key, key)
            b = button(text, (lambda k=key: app.keyboard_key(k)), s.normal, wrap=False)
            if key in ("space", "back"):
                b.font_name = SYMBOL_FONT
            self.keys[key] = b
            grid.add_widget(b)
        self.body.add_widget(grid)

    def refresh(self):
        app = self.app
        self.display.text = app.keyboard_text + "_"
        for key, b in self.keys.items():
            if len(key) == 1 and key.isalpha():
                b.text = key if app.keyboard_upper else key.lower()
        self.keys["case"].text = "abc" if self.app.keyboard_upper else "ABC"


class HistoryScreen(KScreen):
    def build(self):
        s, app = self.s, self.app
        self.tab_sessions = button(_("Sessions"), lambda: app.history_tab_set("sessions"),
                                   s.small, wrap=False)
        self.tab_faults = button(_("Faults"), lambda: app.history_tab_set("faults"), s.small,
                                 wrap=False)
        self.export_btn = button(_("Copy to USB"), app.export_usb, s.small, wrap=True,
                                 size_hint_x=0.6)
        self.top_bar(_("History"), back=True, extra=[self.export_btn])
        tabs = BoxLayout(size_hint_y=None, height=s.target, spacing=s.gap)
        tabs.add_widget(self.tab_sessions)
        tabs.add_widget(self.tab_faults)
        self.body.add_widget(tabs)
        self.msg = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=None,
                         height=30 * s.u)
        self.body.add_widget(self.msg)
        main = BoxLayout(orientation="vertical" if s.portrait else "horizontal", spacing=s.gap)
        self.list = GridLayout(cols=1, spacing=s.gap * 0.6, size_hint_y=None)
        self.list.bind(minimum_height=self.list.setter("height"))
        main.add_widget(scroll(self.list))
        self.detail = Panel(orientation="vertical", padding=6 * s.u, spacing=4 * s.u,
                            size_hint=(1, 0.9) if s.portrait else (0.8, 1))
        self.detail_title = label("", s.normal, wrap=True, max_lines=2, size_hint_y=0.25)
        self.detail_text = label("", s.small, wrap=True, color=MUTED, size_hint_y=0.3)
        self.detail_plot = TrendPlot(font=14 * s.u, window_s=60, min_span_s=60)
        self.detail.add_widget(self.detail_title)
        self.detail.add_widget(self.detail_text)
        self.detail.add_widget(self.detail_plot)
        main.add_widget(self.detail)
        self.body.add_widget(main)
        self._rows_key = None

    def refresh(self):
        s, app = self.s, self.app
        tab = app.history_tab
        self.tab_sessions.selected = tab == "sessions"
        self.tab_faults.selected = tab == "faults"
        self.msg.text = app.message_for("history")
        rows = app.history_sessions if tab == "sessions" else app.history_faults
        key = (tab, id(rows), app.history_sel)
        if key != self._rows_key:
            self._rows_key = key
            self.list.clear_widgets()
            for i, row in enumerate(rows or []):
                if tab == "sessions":
                    text = app.session_row_text(row)
                    cb = (lambda r=row: app.history_select(r))
                else:
                    text = app.fault_row_text(row)
                    cb = None
                b = button(text, cb, s.small, wrap=True, max_lines=2, halign="left",
                           size_hint_y=None, height=s.target * 1.05, min_font=12)
                b.selected = tab == "sessions" and app.history_sel is row
                self.list.add_widget(b)
            if not rows:
                self.list.add_widget(label(_("Nothing recorded yet.") if rows is not None
                                           else _("Loading\u2026"), s.normal, size_hint_y=None,
                                           height=s.target, color=MUTED))
        sel = app.history_sel if tab == "sessions" else None
        self.detail.opacity = 1 if sel else 0
        if sel:
            self.detail_title.text = app.session_row_text(sel).split("\n")[0]
            self.detail_text.text = app.session_detail_text(sel)
            pts = app.history_trace or []
            span = (pts[-1][0] - pts[0][0]) if len(pts) > 1 else 60
            self.detail_plot.window_s = max(60.0, span)
            self.detail_plot.points = [(p[0], p[1], p[2] if len(p) > 2 else None) for p in pts]


class ServiceScreen(KScreen):
    def build(self):
        s, app = self.s, self.app
        self.selftest_btn = button(_("Self-test"), app.run_selftest, s.small,
                                   size_hint_x=0.6, wrap=True)
        self.top_bar(_("Service"), back=True, extra=[self.selftest_btn])
        self.msg = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=None,
                         height=30 * s.u)
        self.body.add_widget(self.msg)
        main = BoxLayout(orientation="vertical" if s.portrait else "horizontal", spacing=s.gap)
        grid = GridLayout(cols=2, spacing=s.gap * 0.5)
        self.fields = {}
        for key, text in (("resistance", _("RTD resistance")), ("code", _("RTD code")),
                          ("bits", _("Fault bits")), ("bad", _("Bad reads")),
                          ("mat", _("Mat temperature")), ("setpoint", _("Target")),
                          ("duty", _("Heater duty")), ("relay", _("Series relay")),
                          ("mode", _("Mode")), ("clients", _("Screens connected")),
                          ("unit_id", _("Unit id (network)"))):
            grid.add_widget(label(text, s.small, halign="left", color=MUTED, wrap=True,
                                  max_lines=2))
            value = label("", s.small, halign="left", wrap=True, max_lines=2)
            self.fields[key] = value
            grid.add_widget(value)
        main.add_widget(grid)
        self.results = label("", s.small, wrap=True, halign="left", bg=list(PANEL),
                             size_hint=(1, 0.7) if s.portrait else (0.8, 1), pad_x=10 * s.u)
        main.add_widget(self.results)
        self.body.add_widget(main)

    def refresh(self):
        app = self.app
        state = app.state or {}
        sensor = state.get("sensor") or {}
        f = self.fields
        r = sensor.get("resistance_ohm")
        f["resistance"].text = f"{logic.fmt_number(r, 2)} \u03a9" if isinstance(r, (int, float)) \
            else logic.DASH
        code = sensor.get("code")
        f["code"].text = f"0x{code:04X}" if isinstance(code, int) else logic.DASH
        bits = sensor.get("fault_bits") or []
        f["bits"].text = ", ".join(bits) if bits else _("none")
        f["bad"].text = str(sensor.get("bad_reads", logic.DASH))
        f["mat"].text = logic.fmt_temp(state.get("mat_c"), 2)
        f["setpoint"].text = logic.fmt_temp(state.get("setpoint_c"))
        duty = state.get("duty")
        f["duty"].text = f"{round(duty * 100)} %" if isinstance(duty, (int, float)) \
            else logic.DASH
        f["relay"].text = _("closed") if state.get("relay_closed") else _("open")
        f["mode"].text = str(state.get("mode") or logic.DASH)
        f["clients"].text = str(state.get("ui_clients", logic.DASH))
        f["unit_id"].text = app.unit_id()
        self.results.text = app.selftest_text()
        self.selftest_btn.disabled = app.busy
        self.msg.text = app.message_for("service")


# -------------------------------------------------------------------------------------------------
# The alarm overlay

class AlarmOverlay(Fill):
    """Covers the whole screen while an alarm is active: IEC 60601-1-8 colour and flash rate."""

    def __init__(self, app: "KioskApp", **kwargs):
        super().__init__(**kwargs)
        self.app = app
        self.alarm = None

    def on_touch_down(self, touch):
        super().on_touch_down(touch)
        return True  # modal: nothing underneath is touchable

    def on_touch_up(self, touch):
        super().on_touch_up(touch)
        return True

    def rebuild(self):
        self.clear_widgets()
        s, app = app_sizes = self.app.sizes, self.app
        del app_sizes
        box = BoxLayout(orientation="vertical", padding=s.gap * 1.5, spacing=s.gap)
        self.add_widget(box)
        self.box = box
        self.priority = label("", s.normal, wrap=False, size_hint_y=None, height=36 * s.u)
        self.title = label("", s.big, wrap=True, max_lines=2, size_hint_y=1.0)
        self.text = label("", s.normal, wrap=True, size_hint_y=0.9)
        self.heater = label("", s.large, wrap=True, size_hint_y=0.55, radius=10 * s.u)
        self.advice = label("", s.normal, wrap=True, size_hint_y=0.9)
        self.extra = label("", s.small, wrap=True, size_hint_y=0.7)
        for w in (self.priority, self.title, self.text, self.heater, self.advice, self.extra):
            box.add_widget(w)
        self.pin_box = BoxLayout(orientation="horizontal", spacing=s.gap, size_hint_y=3.2)
        self.pin_label = label("", s.normal, wrap=True, bg=list(PANEL), radius=10 * s.u)
        self.pin_label.font_name = SYMBOL_FONT
        self.pad = NumberPad(app.alarm_pin_key, ok_text=_("OK"), font=s.large, spacing=s.gap * 0.6)
        self.pin_box.add_widget(self.pin_label)
        self.pin_box.add_widget(self.pad)
        buttons = BoxLayout(size_hint_y=None, height=(90 if s.portrait else 70) * s.u,
                            spacing=s.gap)
        self.audio_btn = button("", app.pause_audio, s.normal, fill=PANEL)
        self.ack_btn = button("", app.acknowledge_alarm, s.normal, fill=PANEL)
        buttons.add_widget(self.audio_btn)
        buttons.add_widget(self.ack_btn)
        self.buttons = buttons
        box.add_widget(buttons)
        self._pin_shown = False

    def show_pin(self, show: bool):
        """PIN mode: the title, the number pad and the buttons; the words come back after."""
        if show == self._pin_shown:
            return
        self._pin_shown = show
        self.box.clear_widgets()
        if show:
            self.title.size_hint_y = 0.5
            parts = (self.title, self.pin_box, self.buttons)
        else:
            self.title.size_hint_y = 1.0
            parts = (self.priority, self.title, self.text, self.heater, self.advice, self.extra,
                     self.buttons)
        for widget in parts:
            self.box.add_widget(widget)

    def refresh(self, alarm: dict, more: int, lit: bool):
        app = self.app
        style = logic.alarm_style(alarm.get("priority"))
        self.bg = list(style.background if lit else style.dim_background)
        for w in (self.priority, self.title, self.text, self.advice, self.extra, self.pin_label):
            w.color = style.text
        lines = logic.alarm_lines(alarm)
        self.priority.text = _(style.label).upper()
        self.title.text = lines["title"]
        self.text.text = lines["text"]
        self.heater.text = lines["heater"]
        self.heater.bg = [0, 0, 0, 0.85] if lines["heater"] else [0, 0, 0, 0]
        self.heater.color = (1, 1, 1, 1)
        self.advice.text = lines["advice"]
        notes = []
        if more:
            notes.append(_("{n} more alarm(s) after this one").format(n=more))
        msg = app.message_for("alarm")
        if msg:
            notes.append(msg)
        elif lines["still_present"] and lines["needs"] != "none":
            notes.append(_("The problem is still there. It can be acknowledged once it is gone."))
        self.extra.text = "\n".join(notes)
        pin_mode = app.alarm_pin_code == alarm.get("code")
        self.show_pin(pin_mode)
        if pin_mode:
            entry = app.pins["service"]
            t = now()
            self.pin_label.text = entry.lock_text(t) or entry.message or (
                _("Service PIN") + "\n" + (entry.masked() or "\u2014"))
            for key, b in self.pad.keys.items():
                b.disabled = entry.locked(t) or (key == "ok" and not entry.can_submit(t))
        paused, left_s = app.audio_paused()
        if paused:
            left = logic.fmt_mmss(left_s)
            self.audio_btn.text = _("Sound paused {t}").format(t=left)
        else:
            self.audio_btn.text = _("Pause sound")
        self.audio_btn.disabled = paused
        needs = lines["needs"]
        self.ack_btn.opacity = 0 if needs == "none" else 1
        self.ack_btn.disabled = needs == "none" or app.busy
        if pin_mode:
            self.ack_btn.text = _("Cancel")
        elif needs == "service":
            self.ack_btn.text = _("Acknowledge (service PIN)")
        else:
            self.ack_btn.text = _("Acknowledge")


# -------------------------------------------------------------------------------------------------
# The root: screens, alarm overlay, brightness overlay

class Root(FloatLayout):
    def __init__(self, app: "KioskApp", **kwargs):
        super().__init__(**kwargs)
        self.app = app

    def on_touch_down(self, touch):
        if self.app.user_activity():
            return True  # the touch that wakes a dimmed screen does nothing else
        return super().on_touch_down(touch)


class Shade(Widget):
    """The dark layer for brightness and idle dimming; passes touches through."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from kivy.graphics import Color, Rectangle
        with self.canvas:
            self._c = Color(0, 0, 0, 0)
            self._r = Rectangle(pos=self.pos, size=self.size)
        self.bind(pos=self._paint, size=self._paint)

    def _paint(self, *_):
        self._r.pos, self._r.size = self.pos, self.size

    def set_alpha(self, alpha: float):
        self._c.a = alpha


class KioskApp(App):
    """The kiosk. ``api`` is an :class:`kiosk.api.ApiLink` or ``None`` (screenshots)."""

    title = "Lumbarest"

    def __init__(self, profile: str = "bedside", lang: str = "en", api_factory=None,
                 lang_forced: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.profile = profile if profile in ("bedside", "clinic") else "bedside"
        self.lang = i18n.set_language(lang)
        self.lang_forced = lang_forced
        self.api_factory = api_factory
        self.api = None
        self.state: dict | None = None
        self.meta: dict = {}
        self.connected = False
        self.state_time = 0.0
        self.lost_since: float | None = now()
        self.programs: dict = {}
        self.levels: dict = {}
        self.sel_program: str | None = None
        self.sel_level: str | None = None
        self.dismissed: tuple | None = None
        self.done_since: float | None = None
        self.trend = logic.TrendBuffer(window_s=600)
        self.staff: str | None = None          # pin, settings, keyboard, history, service
        self.staff_target: str | None = None
        self.pin_role = "clinic"
        self.pins = {"clinic": logic.PinEntry(), "service": logic.PinEntry()}
        self.auth: dict = {"clinic": None, "service": None}
        self.settings: dict | None = None
        self.settings_edit: dict | None = None
        self.keyboard_text = ""
        self.keyboard_upper = True
        self.history_tab = "sessions"
        self.history_sessions: list | None = None
        self.history_faults: list | None = None
        self.history_sel: dict | None = None
        self.history_trace: list | None = None
        self.selftest: dict | None = None
        self.messages: dict = {}
        self.busy = False
        self.audio = logic.AudioPause()
        self.sound = AlarmSound()
        self.alarm_pin_code: str | None = None
        self.dimmer = logic.IdleDimmer(sleep_min=5.0, last_activity=now())
        self.dimmed = False
        self.brightness = 100.0
        self.backlight = Backlight()
        self.freeze_flash: bool | None = None  # screenshots: force the lit phase
        self.first_frame_cb = None
        self.overlay_since: float | None = None
        self._next_settings_poll = now() + SETTINGS_POLL_S
        self.alarm_state_at: float | None = None
        self.sizes = Sizes(*Window.size)
        self._built_for = None
        self.rooms = None                      # kiosk.screens.rooms.RoomsBoard, when configured

    # -- building -------------------------------------------------------------------------------

    def build(self):
        Window.clearcolor = BG
        self.root_widget = Root(self)
        self.sm = ScreenManager(transition=NoTransition())
        self.screens = {}
        screens = [("home", HomeScreen), ("session", SessionScreen), ("done", DoneScreen),
                   ("lost", LostScreen), ("pin", PinScreen), ("settings", SettingsScreen),
                   ("keyboard", KeyboardScreen), ("history", HistoryScreen),
                   ("service", ServiceScreen)]
        if self.profile == "clinic":
            from kiosk.screens import rooms  # noqa: PLC0415 - it imports this module
            board = rooms.board_config()
            if board is not None:
                self.rooms = rooms.RoomsBoard(board, self.route)
                screens.append(("rooms", rooms.RoomsScreen))
        for name, cls in screens:
            screen = cls(self, name=name)
            self.screens[name] = screen
            self.sm.add_widget(screen)
        self.root_widget.add_widget(self.sm)
        self.overlay = AlarmOverlay(self)
        self.shade = Shade()
        self.root_widget.add_widget(self.shade)
        self.rebuild()
        Window.bind(size=lambda *_: Clock.schedule_once(lambda dt: self.rebuild(), 0.05))
        Clock.schedule_interval(self._tick, 0.1)
        return self.root_widget

    def build_key(self) -> tuple:
        return self._built_for

    def rebuild(self):
        """Rebuild for the current window size, language and data: the overlay and the screen
        on show now, the others when they are next shown."""
        self.sizes = Sizes(*Window.size)
        self._built_for = (tuple(Window.size), self.lang, tuple(self.programs.items()),
                           tuple(self.levels.items()))
        for screen in self.screens.values():
            screen.invalidate()
        self.overlay.rebuild()
        self.route()

    def on_start(self):
        if self.sound.enabled:
            import threading
            from kiosk.sound import wav_file
            threading.Thread(target=lambda: [wav_file(p, self.sound.volume) for p in
                                             ("high", "medium", "low", "info")],
                             daemon=True).start()   # ready before the first alarm needs them
        if self.api_factory is not None:
            self.api = self.api_factory(self)
            self.api.start()
        if self.rooms is not None:
            self.rooms.start()
        Window.bind(on_flip=self._on_flip)

    def _on_flip(self, *_):
        if self.first_frame_cb is not None:
            cb, self.first_frame_cb = self.first_frame_cb, None
            cb(live=self.connected)

    def on_stop(self):
        if self.api is not None:
            self.api.stop()
        if self.rooms is not None:
            self.rooms.stop()

    def call(self, method, params=None, on_result=None, on_error=None):
        if self.api is None:
            return
        self.api.call(method, params, on_result, on_error)

    # -- data from the link (UI thread) ---------------------------------------------------------

    def on_state(self, state: dict, meta: dict):
        if state.get("alarms") and not (self.state or {}).get("alarms"):
            self.alarm_state_at = now()  # when the first alarm arrived (for the e2e test)
        self.state = state
        self.meta = meta
        self.state_time = now()
        if self.lost_since is not None and self.connected:
            self.lost_since = None
        if meta.get("programs"):
            self.programs = dict(meta["programs"])
        if meta.get("levels"):
            self.levels = dict(meta["levels"])
        if self.sel_program not in self.programs:
            self.sel_program = "standard" if "standard" in self.programs else \
                next(iter(logic.sorted_programs(self.programs)), (None,))[0]
        if self.sel_level not in self.levels:
            self.sel_level = "medium" if "medium" in self.levels else \
                next(iter(logic.sorted_levels(self.levels)), (None,))[0]
        self.trend.add(self.state_time, state)
        if self._built_for is not None and self._built_for[2:] != (
                tuple(self.programs.items()), tuple(self.levels.items())):
            self.rebuild()
        self.route()

    def on_connection(self, connected: bool):
        self.connected = connected
        if connected:
            self.lost_since = None
            self.call("settings.get", None, self._apply_settings, None)
        else:
            self.lost_since = self.lost_since or now()
            self.busy = False
        self.route()

    def live(self) -> bool:
        return self.connected and self.state is not None and now() - self.state_time < STALE_S

    def unit_name(self) -> str:
        return (self.state or {}).get("unit_name") or self.meta.get("unit_name") or "Lumbarest"

    def alarms(self) -> list:
        return logic.overlay_alarms((self.state or {}).get("alarms"))

    def effective_level(self):
        return "off" if logic.program_is_heatless(self.sel_program) and "off" in self.levels \
            else self.sel_level

    # -- routing --------------------------------------------------------------------------------

    def route(self):
        live = self.live()
        if not live and self.lost_since is None:
            self.lost_since = now()
        if not live:
            target = "lost"
        elif self.staff:
            target = self.staff
        else:
            target = logic.main_screen_for(self.state, True, self.dismissed)
        if target == "done" and self.sm.current != "done":
            self.done_since = now()
            if (self.state or {}).get("session", {}).get("state") == "done" and \
                    not self.appliance_sounds():
                self.sound.play_once("info")  # the information signal: the session is over
        if target == "home" and self.sm.current in ("session", "done", "lost"):
            self.busy = False
        screen = self.screens[target]
        screen.ensure_built()
        if self.sm.current != target:
            self.sm.current = target
        screen.refresh()
        self._update_overlay(live)

    def _update_overlay(self, live: bool):
        alarms = self.alarms() if live else []
        if alarms:
            alarm = alarms[0]
            if self.freeze_flash is not None:
                lit = self.freeze_flash
            else:
                lit = logic.flash_lit(alarm.get("priority"), time.monotonic())
            if self.overlay.parent is None:
                self.root_widget.add_widget(self.overlay, index=1)
                self.alarm_pin_code = None
                self.overlay_since = now()
            self.overlay.refresh(alarm, len(alarms) - 1, lit)
        elif self.overlay.parent is not None:
            self.root_widget.remove_widget(self.overlay)
            self.alarm_pin_code = None

    def _tick(self, dt):
        t = now()
        if self.connected and self.state is not None and t - self.state_time >= STALE_S:
            self.lost_since = self.lost_since or t
        name = self.sm.current
        if name == "done" and self.done_since and t - self.done_since >= DONE_TIMEOUT_S:
            self.dismiss_done()
        # The Rooms board stays up at the front desk; the PIN screens close themselves.
        if self.staff and self.staff != "rooms" and \
                t - self.dimmer.last_activity >= STAFF_TIMEOUT_S:
            self.leave_staff()
        if self.connected and not self.staff and t >= self._next_settings_poll:
            # brightness, sleep and language may be changed from elsewhere (CLI, another panel)
            self._next_settings_poll = t + SETTINGS_POLL_S
            self.call("settings.get", None, self._apply_settings, None)
        for key, (_text, until) in list(self.messages.items()):
            if t >= until:
                del self.messages[key]
        # never dim during a session, nor while the mat heats for a pre-warm
        session_running = logic.session_active(self.state) or \
            bool((self.state or {}).get("heating"))
        alarm_shown = self.overlay.parent is not None
        alarms = self.alarms() if alarm_shown else []
        codes = [a.get("code") for a in alarms]
        sounding = alarms[0].get("priority") if alarms and not self.audio.paused(t, codes) \
            and not self.appliance_sounds() else None
        self.sound.update(t, sounding)
        should_dim = self.dimmer.should_dim(t, session_running, alarm_shown) \
            and self.freeze_flash is None
        if should_dim != self.dimmed:
            self.dimmed = should_dim
            self.apply_brightness()
        self.route()

    # -- messages -------------------------------------------------------------------------------

    def say(self, where: str, text: str, seconds: float = MESSAGE_S):
        self.messages[where] = (text, now() + seconds)

    def message_for(self, where: str) -> str:
        return self.messages.get(where, ("", 0))[0]

    def _failed(self, where: str):
        def handler(code, message, data):
            self.busy = False
            if code == 0:
                self.say(where, _("The controller did not answer. Please try again."))
            else:
                self.say(where, message or _("That did not work."))
            self.route()
        return handler

    def _done(self, *_):
        self.busy = False
        self.route()

    # -- activity, brightness -------------------------------------------------------------------

    def user_activity(self) -> bool:
        """A touch: returns True when it only woke the screen."""
        self.dimmer.touch(now())
        if self.dimmed:
            self.dimmed = False
            self.apply_brightness()
            return True
        return False

    def apply_brightness(self):
        level = DIM_LEVEL if self.dimmed else self.brightness
        alpha = self.backlight.apply(level)
        self.shade.set_alpha(alpha)

    def _apply_settings(self, settings):
        if not isinstance(settings, dict):
            return
        if isinstance(settings.get("volume"), (int, float)):
            self.sound.volume = int(settings["volume"])
        if isinstance(settings.get("sleep_min"), (int, float)):
            self.dimmer.sleep_min = float(settings["sleep_min"])
        if isinstance(settings.get("brightness"), (int, float)):
            self.brightness = float(settings["brightness"])
            self.apply_brightness()
        lang = settings.get("language")
        if lang in i18n.LANGUAGES and lang != self.lang and not self.lang_forced:
            self.set_language(lang)

    def set_language(self, lang: str):
        self.lang = i18n.set_language(lang)
        self.rebuild()

    # -- home and session -----------------------------------------------------------------------

    def choose_program(self, name):
        self.sel_program = name
        self.route()

    def choose_level(self, name):
        self.sel_level = name
        self.route()

    def start_session(self):
        if self.busy or not self.sel_program:
            return
        self.busy = True
        self.dismissed = logic.ended_key(self.state)
        self.trend.reset()
        self.call("session.start", {"program": self.sel_program, "level": self.effective_level()},
                  self._started, self._failed("home"))
        self.route()

    def _started(self, state):
        self.busy = False
        if isinstance(state, dict) and "session" in state:
            self.on_state(state, self.meta)
        self.route()

    def stop_prewarm(self):
        self.call("prewarm.stop", None, self._done, self._failed("home"))

    def pause_or_resume(self):
        session = (self.state or {}).get("session") or {}
        method = "session.resume" if session.get("state") == "paused" else "session.pause"
        self.call(method, None, self._done, self._failed("session"))

    def extend_session(self):
        self.call("session.extend", None, self._done, self._failed("session"))

    def stop_session(self):
        self.call("session.stop", None, self._done, self._failed("session"))

    def stop_hint(self):
        self.say("session", _("To stop, keep your finger on the button until the bar is full."),
                 5)
        self.route()

    def dismiss_done(self):
        self.dismissed = logic.ended_key(self.state)
        self.done_since = None
        self.route()

    # -- alarms ---------------------------------------------------------------------------------

    def appliance_sounds(self) -> bool:
        """The appliance drives its own sounder (its state carries ``audio``); then the kiosk
        only asks it to pause, and makes no sound itself."""
        return isinstance((self.state or {}).get("audio"), dict)

    def audio_paused(self) -> tuple[bool, float]:
        """(paused, seconds left) from the appliance when it sounds, else the kiosk's own."""
        if self.appliance_sounds():
            audio = self.state["audio"]
            return bool(audio.get("paused")), float(audio.get("remaining_s") or 0)
        t = now()
        return (self.audio.paused(t, [a.get("code") for a in self.alarms()]),
                max(0.0, self.audio.until - t))

    def pause_audio(self):
        self.audio.pause(now(), [a.get("code") for a in self.alarms()])
        if self.appliance_sounds():
            self.call("alarm.silence", {"seconds": int(logic.AUDIO_PAUSE_S)}, self._silenced,
                      self._failed("alarm"))
        self.route()

    def _silenced(self, state):
        if isinstance(state, dict) and "session" in state:
            self.on_state(state, self.meta)

    def acknowledge_alarm(self):
        alarms = self.alarms()
        if not alarms:
            return
        alarm = alarms[0]
        if self.alarm_pin_code is not None:
            self.alarm_pin_code = None  # the button reads Cancel in PIN mode
            self.route()
            return
        if alarm.get("needs") == "service":
            self.alarm_pin_code = alarm.get("code")
            self.pins["service"].take()
            self.route()
            return
        self.busy = True
        self.call("fault.acknowledge", {"code": alarm.get("code")}, self._acked,
                  self._ack_failed)
        self.route()

    def alarm_pin_key(self, key):
        entry = self.pins["service"]
        if key == "ok":
            if entry.can_submit(now()):
                self.busy = True
                self.call("fault.acknowledge", {"code": self.alarm_pin_code, "pin": entry.take()},
                          self._acked, self._ack_failed)
        else:
            entry.press(key, now())
        self.route()

    def _acked(self, result):
        self.busy = False
        self.alarm_pin_code = None
        self.route()

    def _ack_failed(self, code, message, data):
        self.busy = False
        if code == -32003:
            self.pins["service"].rejected(now(), data, message)
        elif code == -32004:
            self.say("alarm", _("The problem is still there. It can be acknowledged once it is "
                                "gone."))
        elif code == 0:
            self.say("alarm", _("The controller did not answer. Please try again."))
        else:
            self.say("alarm", message)
        self.route()

    # -- staff screens --------------------------------------------------------------------------

    def _open_staff(self, role: str, target: str):
        self.dimmer.touch(now())
        if self.auth.get(role):
            self._enter_staff(target)
            return
        self.pin_role = role
        self.staff_target = target
        self.pins[role].take()
        self.staff = "pin"
        self.screens["pin"].rebuild()
        self.route()

    def open_settings(self):
        self._open_staff("clinic", "settings")

    def open_history(self):
        self._open_staff("clinic", "history")

    def open_service(self):
        self._open_staff("service", "service")

    def open_rooms(self):
        """The clinic's board: read-only, so no PIN (it shows no patient data)."""
        self.dimmer.touch(now())
        self.staff = "rooms"
        self.route()

    def staff_buttons(self) -> list:
        buttons = [(_("History"), self.open_history), (_("Settings"), self.open_settings),
                   (_("Service"), self.open_service)]
        if self.rooms is not None:
            buttons.insert(0, (_("Rooms"), self.open_rooms))
        return buttons

    def unit_id(self) -> str:
        """This unit's id on the clinic network: the bridge file's, else the appliance's."""
        configured = self.rooms.config.unit_id if self.rooms is not None else None
        return configured or (self.state or {}).get("unit_id") or logic.DASH

    def leave_staff(self):
        self.staff = None
        self.staff_target = None
        self.auth = {"clinic": None, "service": None}
        self.settings = self.settings_edit = None
        self.history_sel = self.history_trace = None
        self.selftest = None
        self.busy = False
        self.route()

    def pin_entry(self) -> logic.PinEntry:
        return self.pins[self.pin_role]

    def pin_key(self, key):
        entry = self.pin_entry()
        if key == "ok":
            if entry.can_submit(now()) and not self.busy:
                pin = entry.take()
                role = self.pin_role
                self.busy = True
                self.call("auth.check", {"role": role, "pin": pin},
                          lambda result, r=role, p=pin: self._pin_ok(r, p, result),
                          self._pin_failed)
        else:
            entry.press(key, now())
        self.route()

    def _pin_ok(self, role, pin, result):
        self.busy = False
        if isinstance(result, dict) and result.get("ok") is False:
            self.pins[role].rejected(now(), result)
            self.route()
            return
        self.auth[role] = pin
        self._enter_staff(self.staff_target or "home")

    def _pin_failed(self, code, message, data):
        self.busy = False
        if code == -32003:
            self.pin_entry().rejected(now(), data, message)
        else:
            self._failed("pin")(code, message, data)
            return
        self.route()

    def _enter_staff(self, target):
        self.staff = target
        if target == "settings":
            self.settings = self.settings_edit = None
            self.screens["settings"].rebuild()
            self.call("settings.get", None, self._settings_loaded, self._failed("settings"))
        elif target == "history":
            self.history_sessions = self.history_faults = None
            self.history_sel = self.history_trace = None
            self.call("history.sessions", {"limit": 50, "offset": 0}, self._sessions_loaded,
                      self._failed("history"))
            self.call("history.faults", {"limit": 50, "offset": 0}, self._faults_loaded,
                      self._failed("history"))
        self.route()

    # settings

    @staticmethod
    def _settings_shape(settings) -> tuple:
        settings = settings or {}
        return (tuple(sorted(settings)), tuple(sorted(settings.get("levels") or {})),
                tuple(sorted(settings.get("programs") or {})))

    def _settings_loaded(self, settings):
        import copy
        old_shape = self._settings_shape(self.settings_edit)
        self.settings = settings if isinstance(settings, dict) else {}
        self.settings_edit = copy.deepcopy(self.settings)
        if self._settings_shape(self.settings_edit) != old_shape:
            self.screens["settings"].rebuild()  # rows differ; otherwise keep the scroll position
        self.route()

    @staticmethod
    def get_setting(edit: dict, key: tuple):
        value = edit
        for part in key:
            value = (value or {}).get(part) if isinstance(value, dict) else None
        return value

    def edit_setting(self, key: tuple, value):
        target = self.settings_edit
        for part in key[:-1]:
            target = target.setdefault(part, {})
        target[key[-1]] = value
        self.route()

    def step_setting(self, key: tuple, direction: int):
        edit = self.settings_edit or {}
        value = self.get_setting(edit, key) or 0
        top = key[0]
        max_c = edit.get("max_setpoint_c") or 45.0
        step, lo, hi = {
            "levels": (0.5, 30.0, max_c),
            "programs": (5, 5, edit.get("max_session_min") or 120),
            "volume": (10, 0, 100),
            "brightness": (10, 10, 100),
            "sleep_min": (1, 1, 120),
        }[top]
        value = round(min(hi, max(lo, value + direction * step)), 1)
        if top != "levels":
            value = int(value)
        self.edit_setting(key, value)

    def settings_changes(self) -> dict:
        if not self.settings or self.settings_edit is None:
            return {}
        changes = {}
        for key, value in self.settings_edit.items():
            if self.settings.get(key) != value:
                if isinstance(value, dict):
                    changes[key] = {k: v for k, v in value.items()
                                    if (self.settings.get(key) or {}).get(k) != v}
                else:
                    changes[key] = value
        return changes

    def save_settings(self):
        changes = self.settings_changes()
        if not changes or self.busy:
            return
        self.busy = True
        self.call("settings.set", {"pin": self.auth.get("clinic") or "", "changes": changes},
                  self._settings_saved, self._settings_failed)
        self.route()

    def _settings_saved(self, settings):
        self.busy = False
        if isinstance(settings, dict) and settings:
            self._settings_loaded(settings)
        self.say("settings", _("Saved."))
        self._apply_settings(self.settings or {})
        self.route()

    def _settings_failed(self, code, message, data):
        if code == -32003:
            self.busy = False
            self.auth["clinic"] = None
            self.say("pin", message or _("Please enter the PIN again."))
            self._open_staff("clinic", "settings")
            return
        self._failed("settings")(code, message, data)

    def open_keyboard(self):
        self.keyboard_text = str((self.settings_edit or {}).get("unit_name") or "")
        self.keyboard_upper = not self.keyboard_text or self.keyboard_text.endswith(" ")
        self.staff = "keyboard"
        self.route()

    def keyboard_key(self, key):
        if key == "case":
            self.keyboard_upper = not self.keyboard_upper
        elif key == "back":
            self.keyboard_text = self.keyboard_text[:-1]
            self.keyboard_upper = not self.keyboard_text
        elif key == "space":
            self.keyboard_text += " "
            self.keyboard_upper = True
        elif len(self.keyboard_text) < 40:
            self.keyboard_text += key if self.keyboard_upper else key.lower()
            self.keyboard_upper = False  # like a phone: capital first letter, then small
        self.route()

    def close_keyboard(self):
        self.staff = "settings"
        self.route()

    def accept_keyboard(self):
        name = self.keyboard_text.strip()
        if name:
            self.edit_setting(("unit_name",), name)
        self.close_keyboard()

    # history

    def _sessions_loaded(self, result):
        self.history_sessions = list((result or {}).get("sessions") or [])
        self.route()

    def _faults_loaded(self, result):
        self.history_faults = list((result or {}).get("faults") or [])
        self.route()

    def history_tab_set(self, tab):
        self.history_tab = tab
        self.route()

    def history_select(self, row):
        self.history_sel = row
        self.history_trace = None
        sid = first(row, "id", "session_id")
        if sid is not None:
            self.call("history.trace", {"session_id": sid}, self._trace_loaded,
                      self._failed("history"))
        self.route()

    def _trace_loaded(self, result):
        self.history_trace = list((result or {}).get("points") or [])
        self.route()

    def session_row_text(self, row) -> str:
        when = fmt_when(first(row, "started_at", "start", "start_time", "started"))
        minutes = first(row, "actual_min", "minutes", "duration_min")
        if minutes is None and first(row, "actual_s", "elapsed_s") is not None:
            minutes = first(row, "actual_s", "elapsed_s") / 60.0
        outcome = first(row, "outcome", default="")
        outcome = _(logic.OUTCOME_TEXT[outcome]) if outcome in logic.OUTCOME_TEXT else outcome
        return (f"{when}  {logic.program_label(row.get('program'))} \u00b7 "
                f"{logic.level_label(row.get('level'))} \u00b7 {logic.fmt_minutes(minutes)}\n"
                f"{outcome}")

    def session_detail_text(self, row) -> str:
        return _("Average {mean}, highest {max}").format(
            mean=logic.fmt_temp(first(row, "mean_c")), max=logic.fmt_temp(first(row, "max_c")))

    def fault_row_text(self, row) -> str:
        when = fmt_when(first(row, "time", "at", "since", "raised_at"))
        title = first(row, "title", default="") or alarm_title(first(row, "code", default=""))
        acked = first(row, "acknowledged_at", "acked_at")
        tail = _("acknowledged") if acked else _("not acknowledged")
        return f"{when}  {title} ({first(row, 'priority', default='')})\n{tail}"

    def export_usb(self):
        drives = usb.find_usb_drives()
        if not drives:
            self.say("history", _("No USB drive found. Plug in a USB stick and try again."))
            self.route()
            return
        self.busy = True
        collected: dict = {}

        def got(kind, result):
            collected[kind] = list((result or {}).get(kind) or [])
            if len(collected) == 2:
                try:
                    paths = usb.export(drives[0], collected["sessions"], collected["faults"],
                                       self.unit_name())
                    self.say("history", _("Saved {n} files to {drive}.").format(
                        n=len(paths), drive=drives[0].name))
                except OSError as exc:
                    self.say("history", _("Could not write to the USB drive: {e}").format(
                        e=exc.strerror or exc))
                self.busy = False
                self.route()

        self.call("history.sessions", {"limit": 500, "offset": 0},
                  lambda r: got("sessions", r), self._failed("history"))
        self.call("history.faults", {"limit": 500, "offset": 0},
                  lambda r: got("faults", r), self._failed("history"))
        self.route()

    # service

    def run_selftest(self):
        self.busy = True
        self.selftest = {"running": True}
        self.call("system.selftest", None, self._selftest_done, self._failed("service"))
        self.route()

    def _selftest_done(self, result):
        self.busy = False
        self.selftest = result if isinstance(result, dict) else {}
        self.route()

    def selftest_text(self) -> str:
        if not self.selftest:
            return _("Press Self-test to check the sensor, the relay and the heater.")
        if self.selftest.get("running"):
            return _("Self-test running\u2026")
        lines = [_("Self-test passed") if self.selftest.get("passed") else
                 _("Self-test FAILED")]
        for check in self.selftest.get("checks") or []:
            if isinstance(check, dict):
                ok = check.get("passed", check.get("ok"))
                name = check.get("name") or check.get("check") or "?"
                detail = check.get("detail") or check.get("message") or ""
                lines.append(f"{'OK' if ok else '!!'}  {name} {detail}".rstrip())
            else:
                lines.append(str(check))
        return "\n".join(lines[:9])
