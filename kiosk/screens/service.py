"""Service (service PIN): the sensor's raw values, heater duty, relay, and the self-test."""

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout

from kiosk import logic
from kiosk.i18n import _
from kiosk.screens.base import KScreen
from kiosk.screens.rooms import configured_unit_id
from kiosk.widgets import PANEL, button, fill_fields, label


def selftest_text(selftest: dict | None) -> str:
    if not selftest:
        return _("Press Self-test to check the sensor, the relay and the heater.")
    if selftest.get("running"):
        return _("Self-test running\u2026")
    lines = [_("Self-test passed") if selftest.get("passed") else _("Self-test FAILED")]
    for check in selftest.get("checks") or []:
        if isinstance(check, dict):
            ok = check.get("passed", check.get("ok"))
            name = check.get("name") or check.get("check") or "?"
            detail = check.get("detail") or check.get("message") or ""
            lines.append(f"{'OK' if ok else '!!'}  {name} {detail}".rstrip())
        else:
            lines.append(str(check))
    return "\n".join(lines[:9])


class ServiceScreen(KScreen):
    role = "service"

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.selftest: dict | None = None

    def build(self):
        s = self.s
        self.selftest_btn = button(_("Self-test"), self.run_selftest, s.small,
                                   size_hint_x=0.6, wrap=True)
        self.top_bar(_("Service"), back=True, extra=[self.selftest_btn])
        self.msg = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=None,
                         height=30 * s.u)
        self.body.add_widget(self.msg)
        self.nav_row([(_("Calibrate"), "calibrate"), (_("Maintenance"), "maintenance"),
                      (_("Audit log"), "audit"), (_("PINs"), "pins")])
        main = BoxLayout(orientation="vertical" if s.portrait else "horizontal", spacing=s.gap)
        grid = GridLayout(cols=2, spacing=s.gap * 0.5)
        self.fields = fill_fields(grid, (
            ("resistance", _("RTD resistance")), ("code", _("RTD code")),
            ("bits", _("Fault bits")), ("bad", _("Bad reads")),
            ("mat", _("Mat temperature")), ("setpoint", _("Target")),
            ("duty", _("Heater duty")), ("relay", _("Series relay")),
            ("mode", _("Mode")), ("clients", _("Screens connected")),
            ("unit_id", _("Unit id (network)"))), s.small)
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
        # the bridge file's unit_id wins over the appliance's (docs/fleet.md)
        f["unit_id"].text = configured_unit_id(self.app) or state.get("unit_id") or logic.DASH
        self.results.text = selftest_text(self.selftest)
        self.selftest_btn.disabled = app.busy
        self.msg.text = app.message_for("service")

    # -- requests -------------------------------------------------------------------------------

    def forget(self):
        self.selftest = None

    def run_selftest(self):
        app = self.app
        app.busy = True
        self.selftest = {"running": True}
        app.call("system.selftest", None, self._selftest_done, app.failed("service"))
        app.route()

    def _selftest_done(self, result):
        self.app.busy = False
        self.selftest = result if isinstance(result, dict) else {}
        self.app.route()
