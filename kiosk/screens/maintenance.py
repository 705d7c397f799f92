"""Maintenance (service PIN): the reminders in the UI's language (from their code and numbers,
``maintenance.status``), the counters, and **Service done** per reminder
(``maintenance.reset``, recorded in the audit log)."""

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout

from kiosk import logic
from kiosk.i18n import _
from kiosk.screens.base import KScreen
from kiosk.widgets import GREEN, MUTED, PANEL, button, fill_fields, label, scroll


def reminder_words(reminder: dict) -> tuple[str, str]:
    """(title, text) of a maintenance reminder in the UI's language; a code this kiosk does not
    know keeps the appliance's English words."""
    code = reminder.get("code")
    p = reminder.get("params") if isinstance(reminder.get("params"), dict) else {}
    try:
        if code == "heater_hours":
            return (_("Service due: heater hours"),
                    _("The heater has run {hours} h (service every {every} h). Call service.")
                    .format(hours=logic.fmt_number(p["hours"], 0),
                            every=logic.fmt_number(p["every_h"], 0)))
        if code == "relay_cycles":
            return (_("Service due: relay"),
                    _("The safety relay has switched {cycles} times (service every {every}). "
                      "Call service.").format(cycles=p["cycles"], every=p["every"]))
        if code == "selftest_overdue" and p.get("days") is None:
            return (_("No self-test on record"),
                    _("The nightly self-test has not run yet. Leave the unit switched on "
                      "overnight, or run the self-test from the service menu."))
        if code == "selftest_overdue":
            return (_("Self-test overdue"),
                    _("The last self-test was {days} days ago. Leave the unit switched on "
                      "overnight, or run the self-test.").format(days=p["days"]))
    except (KeyError, TypeError, ValueError):
        pass
    return str(reminder.get("title") or code or ""), str(reminder.get("text") or "")


class MaintenanceScreen(KScreen):
    role = "service"

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.status: dict | None = None
        self._rows_key = None

    def build(self):
        s = self.s
        self.top_bar(_("Maintenance"), back=True)
        self.msg = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=None,
                         height=30 * s.u)
        self.body.add_widget(self.msg)
        main = BoxLayout(orientation="vertical" if s.portrait else "horizontal", spacing=s.gap)
        self.list = GridLayout(cols=1, spacing=s.gap, size_hint_y=None)
        self.list.bind(minimum_height=self.list.setter("height"))
        main.add_widget(scroll(self.list))
        grid = GridLayout(cols=2, spacing=s.gap * 0.5, size_hint=(1, 0.6) if s.portrait
                          else (0.7, 1))
        self.fields = fill_fields(grid, (("heater_hours", _("Heater hours")),
                                         ("relay_cycles", _("Relay cycles")),
                                         ("sessions", _("Sessions")), ("faults", _("Faults"))),
                                  s.small)
        main.add_widget(grid)
        self.body.add_widget(main)
        self._rows_key = None

    def refresh(self):
        s, app = self.s, self.app
        status = self.status or {}
        counters = status.get("counters") or {}
        since = status.get("since_service") or {}
        self.fields["heater_hours"].text = _("{since} h since service ({total} h in all)").format(
            since=logic.fmt_number(since.get("heater_hours"), 0),
            total=logic.fmt_number(counters.get("heater_hours"), 0)) \
            if counters else logic.DASH
        self.fields["relay_cycles"].text = _("{since} since service ({total} in all)").format(
            since=since.get("relay_cycles", logic.DASH),
            total=counters.get("relay_cycles", logic.DASH)) if counters else logic.DASH
        self.fields["sessions"].text = str(counters.get("sessions", logic.DASH))
        self.fields["faults"].text = str(counters.get("faults", logic.DASH))
        reminders = status.get("reminders")
        key = (id(self.status), app.busy, app.lang)
        if key != self._rows_key:
            self._rows_key = key
            self.list.clear_widgets()
            for reminder in reminders or []:
                title, text = reminder_words(reminder)
                row = BoxLayout(size_hint_y=None, height=s.target * 1.6, spacing=s.gap)
                row.add_widget(label(f"{title}\n{text}", s.small, halign="left", wrap=True,
                                     bg=list(PANEL), pad_x=8 * s.u, min_font=11))
                if reminder.get("resettable"):
                    b = button(_("Service done"),
                               (lambda c=reminder.get("code"): self.reset(c)), s.small,
                               fill=GREEN, size_hint_x=0.45)
                    b.disabled = app.busy
                    row.add_widget(b)
                self.list.add_widget(row)
            if not reminders:
                self.list.add_widget(label(
                    _("Nothing is due.") if reminders is not None else _("Loading\u2026"),
                    s.normal, size_hint_y=None, height=s.target, color=MUTED))
        self.msg.text = app.message_for("maintenance")

    # -- data and requests ----------------------------------------------------------------------

    def enter(self):
        self.status = None
        self.app.call("maintenance.status", None, self._loaded, self.app.failed("maintenance"))

    def forget(self):
        self.status = None

    def _loaded(self, result):
        self.app.busy = False
        self.status = result if isinstance(result, dict) else {}
        self.app.route()

    def reset(self, code):
        app = self.app
        if app.busy:
            return
        app.busy = True
        app.call("maintenance.reset", {"code": code, "pin": app.staff_pin("service") or ""},
                 self._reset_done, app.failed("maintenance"))
        app.route()

    def _reset_done(self, result):
        self.app.say("maintenance", _("Done. The reminder counts again from now."))
        self._loaded(result)
