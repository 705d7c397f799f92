"""Schedules (clinic PIN): the weekday pre-warm (on/off, days, ready-by time, lead and hold
minutes) and the nightly self-test time, saved with ``settings.set``; the next planned runs from
``schedule.next``, in local time."""

from __future__ import annotations

import copy
from datetime import datetime

from kivy.uix.gridlayout import GridLayout

from kiosk import logic
from kiosk.i18n import N_, _
from kiosk.screens.base import KScreen
from kiosk.screens.settings import setting_changes
from kiosk.widgets import GREEN, MUTED, button, label, scroll

KEYS = ("prewarm_enabled", "prewarm_weekdays", "prewarm_time", "prewarm_lead_min",
        "prewarm_hold_min", "selftest_time")
WEEKDAYS = (("mon", N_("Mo")), ("tue", N_("Tu")), ("wed", N_("We")), ("thu", N_("Th")),
            ("fri", N_("Fr")), ("sat", N_("Sa")), ("sun", N_("Su")))
# (step, lowest, highest) as the appliance checks them (docs/protocol.md)
STEPS = {"prewarm_time": (15, 0, 24 * 60 - 15), "selftest_time": (30, 0, 24 * 60 - 30),
         "prewarm_lead_min": (5, 5, 120), "prewarm_hold_min": (5, 5, 30)}


def step_hhmm(hhmm: str, minutes: int, lo: int, hi: int) -> str:
    """``"07:30"`` moved by ``minutes`` and kept within [lo, hi] minutes after midnight."""
    try:
        h, m = (int(x) for x in str(hhmm).split(":"))
        total = h * 60 + m
    except ValueError:
        total = 0
    total = min(hi, max(lo, total + minutes))
    return f"{total // 60:02d}:{total % 60:02d}"


def fmt_next(iso: str | None) -> str:
    """A planned run, in local time: ``Mon 07:10`` (the weekday in the UI's language)."""
    if not iso:
        return _("not planned")
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return str(iso)
    day = dict(WEEKDAYS)[("mon", "tue", "wed", "thu", "fri", "sat", "sun")[when.weekday()]]
    return f"{_(day)} {when.strftime('%d.%m. %H:%M')}"


class SchedulesScreen(KScreen):
    role = "clinic"

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.saved: dict | None = None
        self.edit: dict | None = None
        self.upcoming: dict | None = None

    def build(self):
        s = self.s
        self.save_btn = button(_("Save"), self.save, s.normal, fill=GREEN, size_hint_x=None,
                               width=max(s.target * 1.8, 120 * s.u), wrap=False)
        self.top_bar(_("Schedules"), back=True, extra=[self.save_btn])
        self.msg = label("", s.small, wrap=True, max_lines=2, color=(1, 0.85, 0.5, 1),
                         size_hint_y=None, height=34 * s.u)
        self.body.add_widget(self.msg)
        rows = GridLayout(cols=1, spacing=s.gap, size_hint_y=None)
        rows.bind(minimum_height=rows.setter("height"))
        row = self.form_row(_("Warm the mat in the morning"))
        self.on_btn = button(_("On"), lambda: self.set_value("prewarm_enabled", True), s.normal)
        self.off_btn = button(_("Off"), lambda: self.set_value("prewarm_enabled", False),
                              s.normal)
        row.add_widget(self.on_btn)
        row.add_widget(self.off_btn)
        rows.add_widget(row)
        days = GridLayout(cols=7, spacing=s.gap * 0.6, size_hint_y=None, height=s.target)
        self.day_buttons = {}
        for code, name in WEEKDAYS:
            b = button(_(name), (lambda c=code: self.toggle_day(c)), s.normal, wrap=False)
            self.day_buttons[code] = b
            days.add_widget(b)
        rows.add_widget(days)
        self.values = {}
        for key, text in (("prewarm_time", _("Warm by")),
                          ("prewarm_lead_min", _("Start heating before (minutes)")),
                          ("prewarm_hold_min", _("Keep warm after (minutes)")),
                          ("selftest_time", _("Nightly self-test at"))):
            row, value = self.stepper_row(text, lambda d, k=key: self.step(k, d))
            self.values[key] = value
            rows.add_widget(row)
        self.next_label = label("", s.small, wrap=True, max_lines=2, color=MUTED,
                                size_hint_y=None, height=s.target)
        rows.add_widget(self.next_label)
        self.body.add_widget(scroll(rows))

    def refresh(self):
        app = self.app
        edit = self.edit or {}
        self.on_btn.selected = edit.get("prewarm_enabled") is True
        self.off_btn.selected = edit.get("prewarm_enabled") is False
        days = edit.get("prewarm_weekdays") or []
        for code, b in self.day_buttons.items():
            b.selected = code in days
        for key, widget in self.values.items():
            value = edit.get(key)
            widget.text = logic.DASH if value is None else (
                logic.fmt_minutes(value) if key.endswith("_min") else str(value))
        upcoming = self.upcoming or {}
        self.next_label.text = _("Next pre-warm: {prewarm}. Next self-test: {selftest}.").format(
            prewarm=fmt_next(upcoming.get("prewarm")), selftest=fmt_next(upcoming.get("selftest")))
        self.save_btn.disabled = app.busy or not self.changes()
        self.msg.text = app.message_for("schedules") or (
            _("Loading\u2026") if self.saved is None else "")

    # -- data and requests ----------------------------------------------------------------------

    def enter(self):
        self.saved = self.edit = self.upcoming = None
        app = self.app
        app.call("settings.get", None, self._loaded, app.failed("schedules"))
        app.call("schedule.next", None, self._next_loaded, None)

    def forget(self):
        self.saved = self.edit = self.upcoming = None

    def _loaded(self, settings):
        settings = settings if isinstance(settings, dict) else {}
        self.saved = {k: copy.deepcopy(settings.get(k)) for k in KEYS if k in settings}
        self.edit = copy.deepcopy(self.saved)
        self.app.route()

    def _next_loaded(self, result):
        self.upcoming = result if isinstance(result, dict) else None
        self.app.route()

    def changes(self) -> dict:
        changes = setting_changes(self.saved, self.edit)
        if "prewarm_weekdays" in changes:   # a list goes whole, in week order
            order = [c for c, _n in WEEKDAYS]
            changes["prewarm_weekdays"] = sorted(self.edit["prewarm_weekdays"], key=order.index)
        return changes

    def set_value(self, key, value):
        if self.edit is not None:
            self.edit[key] = value
        self.app.route()

    def toggle_day(self, code):
        if self.edit is None:
            return
        days = list(self.edit.get("prewarm_weekdays") or [])
        days.remove(code) if code in days else days.append(code)
        self.set_value("prewarm_weekdays", days)

    def step(self, key, direction):
        if self.edit is None or self.edit.get(key) is None:
            return
        step, lo, hi = STEPS[key]
        if key.endswith("_time"):
            value = step_hhmm(self.edit[key], direction * step, lo, hi)
        else:
            value = int(min(hi, max(lo, self.edit[key] + direction * step)))
        self.set_value(key, value)

    def save(self):
        app = self.app
        changes = self.changes()
        if not changes or app.busy:
            return
        app.busy = True
        app.call("settings.set", {"pin": app.staff_pin("clinic") or "", "changes": changes},
                 self._saved, app.failed("schedules"))
        app.route()

    def _saved(self, settings):
        self.app.busy = False
        self._loaded(settings)
        self.app.say("schedules", _("Saved."))
        self.app.call("schedule.next", None, self._next_loaded, None)
        self.app.route()
