"""Warm the mat now (clinic PIN, from Home): a pre-warm by hand for a chosen time
(``prewarm.start``). Home then shows its target and time left, and Stop warming."""

from __future__ import annotations

from kivy.uix.gridlayout import GridLayout

from kiosk import logic
from kiosk.i18n import _
from kiosk.screens.base import KScreen
from kiosk.widgets import GREEN, MUTED, button, label

MINUTES = (10, 20, 30, 45)


class WarmScreen(KScreen):
    role = "clinic"

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.minutes = 20

    def build(self):
        s = self.s
        self.top_bar(_("Warm the mat now"), back=True)
        self.target_label = label("", s.large, wrap=True, max_lines=2, size_hint_y=0.5)
        self.body.add_widget(self.target_label)
        self.body.add_widget(label(_("For how long?"), s.normal, color=MUTED, halign="left",
                                   size_hint_y=None, height=36 * s.u))
        grid = GridLayout(cols=2 if s.portrait else len(MINUTES), spacing=s.gap,
                          size_hint_y=None,
                          height=(s.target * 2 + s.gap) if s.portrait else s.target * 1.3)
        self.minute_buttons = {}
        for minutes in MINUTES:
            b = button(logic.fmt_minutes(minutes), (lambda m=minutes: self.choose(m)), s.large)
            self.minute_buttons[minutes] = b
            grid.add_widget(b)
        self.body.add_widget(grid)
        self.msg = label("", s.normal, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=0.6)
        self.body.add_widget(self.msg)
        self.start_btn = button(_("Start warming"), self.start, s.big, fill=GREEN,
                                size_hint_y=None, height=(100 if s.portrait else 76) * s.u)
        self.body.add_widget(self.start_btn)

    def refresh(self):
        app = self.app
        target = app.levels.get("low")
        self.target_label.text = _(
            "The mat warms to {t} without a session and switches off by itself. Anyone can stop "
            "it on the start screen.").format(t=logic.fmt_temp(target))
        for minutes, b in self.minute_buttons.items():
            b.selected = minutes == self.minutes
        self.msg.text = app.message_for("warm")
        self.start_btn.disabled = app.busy or not app.live()

    def choose(self, minutes):
        self.minutes = minutes
        self.app.route()

    def start(self):
        app = self.app
        if app.busy:
            return
        app.busy = True
        app.call("prewarm.start", {"minutes": self.minutes, "pin": app.staff_pin("clinic") or ""},
                 self._started, app.failed("warm"))
        app.route()

    def _started(self, state):
        app = self.app
        if isinstance(state, dict) and "session" in state:
            app.on_state(state, app.meta)
        app.leave_staff()   # back to Home, which shows the warming and Stop warming
