"""PIN entry on an on-screen pad before a staff screen; the appliance checks the PIN and enforces
the lockout (``auth.check``)."""

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout

from kiosk.i18n import _
from kiosk.screens.base import KScreen, now
from kiosk.widgets import PANEL, SYMBOL_FONT, NumberPad, label


class PinScreen(KScreen):
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
        self.pad = NumberPad(self.pin_key, ok_text=_("OK"), font=s.big, spacing=s.gap)
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

    # -- requests -------------------------------------------------------------------------------

    def pin_key(self, key):
        app = self.app
        entry = app.pin_entry()
        if key == "ok":
            if entry.can_submit(now()) and not app.busy:
                pin = entry.take()
                role = app.pin_role
                app.busy = True
                app.call("auth.check", {"role": role, "pin": pin},
                         lambda result, r=role, p=pin: self._pin_ok(r, p, result),
                         self._pin_failed)
        else:
            entry.press(key, now())
        app.route()

    def _pin_ok(self, role, pin, result):
        app = self.app
        app.busy = False
        if isinstance(result, dict) and result.get("ok") is False:
            app.pins[role].rejected(now(), result)
            app.route()
            return
        app.grant(role, pin)

    def _pin_failed(self, code, message, data):
        app = self.app
        app.busy = False
        if code == -32003:
            app.pin_entry().rejected(now(), data, message)
        else:
            app.failed("pin")(code, message, data)
            return
        app.route()
