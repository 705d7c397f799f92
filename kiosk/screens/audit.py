"""Audit log (service PIN): settings changes, acknowledgments, calibrations, service resets and
the rest of ``history.audit``, newest first."""

from __future__ import annotations

from kivy.uix.gridlayout import GridLayout

from kiosk.i18n import N_, _
from kiosk.screens.base import KScreen, fmt_when
from kiosk.widgets import MUTED, button, label, scroll

ACTIONS = {
    "settings.set": N_("Settings changed"), "fault.acknowledge": N_("Alarm acknowledged"),
    "pin.wrong": N_("Wrong PIN"), "selftest": N_("Self-test"),
    "selftest.skipped": N_("Self-test skipped"), "prewarm.start": N_("Pre-warm started"),
    "prewarm.end": N_("Pre-warm ended"), "prewarm.skipped": N_("Pre-warm skipped"),
    "alarm.silence": N_("Sound paused"), "tune.start": N_("Calibration started"),
    "tune.apply": N_("Calibration used"), "maintenance.reset": N_("Service done"),
}
ROLES = {"user": N_("anyone"), "clinic": N_("clinic staff"), "service": N_("service"),
         "system": N_("the controller"), "schedule": N_("the schedule")}


def details_text(details) -> str:
    """The entry's details in one short line (PINs never appear: the appliance leaves them out)."""
    if not isinstance(details, dict) or not details:
        return ""
    parts = []
    for key, value in details.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "\u2013"
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) or "\u2013"
        parts.append(f"{key}: {value}")
    text = "; ".join(parts)
    return text if len(text) <= 90 else text[:89] + "\u2026"


def audit_row_text(entry: dict) -> str:
    action = entry.get("action") or ""
    what = _(ACTIONS[action]) if action in ACTIONS else action
    role = entry.get("role") or ""
    who = _(ROLES[role]) if role in ROLES else role
    return f"{fmt_when(entry.get('at'))}  {what} ({who})\n{details_text(entry.get('details'))}"


class AuditScreen(KScreen):
    role = "service"

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.entries: list | None = None
        self._rows_key = None

    def build(self):
        s = self.s
        self.top_bar(_("Audit log"), back=True)
        self.msg = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=None,
                         height=30 * s.u)
        self.body.add_widget(self.msg)
        self.list = GridLayout(cols=1, spacing=s.gap * 0.6, size_hint_y=None)
        self.list.bind(minimum_height=self.list.setter("height"))
        self.body.add_widget(scroll(self.list))
        self._rows_key = None

    def refresh(self):
        s = self.s
        self.msg.text = self.app.message_for("audit")
        key = (id(self.entries), self.app.lang)
        if key == self._rows_key:
            return
        self._rows_key = key
        self.list.clear_widgets()
        for entry in self.entries or []:
            b = button(audit_row_text(entry), None, s.small, wrap=True, max_lines=2,
                       halign="left", size_hint_y=None, height=s.target * 1.05, min_font=11)
            self.list.add_widget(b)
        if not self.entries:
            self.list.add_widget(label(_("Nothing recorded yet.") if self.entries is not None
                                       else _("Loading\u2026"), s.normal, size_hint_y=None,
                                       height=s.target, color=MUTED))

    def enter(self):
        self.entries = None
        self.app.call("history.audit", {"limit": 100, "offset": 0}, self._loaded,
                      self.app.failed("audit"))

    def forget(self):
        self.entries = None

    def _loaded(self, result):
        self.entries = list((result or {}).get("entries") or [])
        self.app.route()
