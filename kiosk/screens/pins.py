"""PINs: change the clinic PIN (clinic or service PIN given) or the service PIN (service PIN
given), the new PIN typed twice on the pad; ``settings.set {clinic_pin | service_pin}``."""

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout

from kiosk.i18n import _
from kiosk.screens.base import KScreen
from kiosk.widgets import PANEL, SYMBOL_FONT, NumberPad, button, label

MIN_DIGITS, MAX_DIGITS = 4, 8   # as the appliance checks them (appliance/pins.py)


class PinsScreen(KScreen):
    role = "clinic"

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.forget()

    def forget(self):
        self.which = "clinic"      # the PIN being changed
        self.first: str | None = None
        self.digits = ""
        self.status = ""

    def enter(self):
        self.forget()

    def build(self):
        s = self.s
        self.top_bar(_("PINs"), back=True)
        main = BoxLayout(orientation="vertical" if s.portrait else "horizontal", spacing=s.gap * 2)
        left = BoxLayout(orientation="vertical", spacing=s.gap,
                         size_hint=(1, 0.5) if s.portrait else (0.5, 1))
        tabs = BoxLayout(size_hint_y=None, height=s.target, spacing=s.gap)
        self.tab_clinic = button(_("Clinic PIN"), lambda: self.choose("clinic"), s.small)
        self.tab_service = button(_("Service PIN"), lambda: self.choose("service"), s.small)
        tabs.add_widget(self.tab_clinic)
        tabs.add_widget(self.tab_service)
        left.add_widget(tabs)
        self.prompt = label("", s.normal, wrap=True, max_lines=3, size_hint_y=0.5)
        left.add_widget(self.prompt)
        self.display = label("", s.big, bg=list(PANEL), wrap=False, size_hint_y=0.5)
        self.display.font_name = SYMBOL_FONT
        left.add_widget(self.display)
        self.msg = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1))
        left.add_widget(self.msg)
        main.add_widget(left)
        self.pad = NumberPad(self.key, ok_text=_("OK"), font=s.big, spacing=s.gap)
        main.add_widget(self.pad)
        self.body.add_widget(main)

    def refresh(self):
        app = self.app
        self.tab_clinic.selected = self.which == "clinic"
        self.tab_service.selected = self.which == "service"
        name = _("clinic PIN") if self.which == "clinic" else _("service PIN")
        allowed = bool(app.staff_pin(self.which))
        if not allowed:
            self.prompt.text = _("Changing the service PIN needs the service PIN: open PINs "
                                 "from Service.")
        elif self.first is None:
            self.prompt.text = _("Type the new {name} ({lo} to {hi} digits)").format(
                name=name, lo=MIN_DIGITS, hi=MAX_DIGITS)
        else:
            self.prompt.text = _("Type the new {name} again").format(name=name)
        self.display.text = "\u25cf" * len(self.digits)
        self.msg.text = app.message_for("pins") or self.status
        for key, b in self.pad.keys.items():
            b.disabled = not allowed or app.busy or (
                key == "ok" and len(self.digits) < MIN_DIGITS)

    # -- requests -------------------------------------------------------------------------------

    def choose(self, which):
        self.which, self.first, self.digits, self.status = which, None, "", ""
        self.app.route()

    def key(self, key):
        if key == "ok":
            self.submit()
        elif key == "back":
            self.digits = self.digits[:-1]
        elif len(self.digits) < MAX_DIGITS:
            self.digits += key
        self.app.route()

    def submit(self):
        app = self.app
        if len(self.digits) < MIN_DIGITS:
            return
        if self.first is None:
            self.first, self.digits, self.status = self.digits, "", ""
            return
        if self.digits != self.first:
            self.first, self.digits = None, ""
            self.status = _("The two PINs were not the same. Please start again.")
            return
        new, which = self.digits, self.which
        self.first, self.digits = None, ""
        app.busy = True
        app.call("settings.set", {"pin": app.staff_pin(which) or "",
                                  "changes": {f"{which}_pin": new}},
                 lambda result: self._changed(which, new), app.failed("pins"))

    def _changed(self, which, new):
        app = self.app
        app.busy = False
        if app.auth.get(which):
            app.auth[which] = new    # this visit goes on with the new PIN
        self.status = _("The {name} is changed.").format(
            name=_("clinic PIN") if which == "clinic" else _("service PIN"))
        app.route()
