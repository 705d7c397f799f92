"""No connection to the appliance: what that means for the mat and what to do."""

from __future__ import annotations

from kivy.uix.widget import Widget

from kiosk.i18n import _
from kiosk.screens.base import KScreen, now
from kiosk.widgets import MUTED, label


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
