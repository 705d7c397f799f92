"""Calibrate (service PIN): the relay test that measures the mat (``tune.start``), with a live
plot and its progress, then the fitted model beside the one in use in plain words, and
**Use it** (``tune.apply``) or **Discard**. Every refusal is shown as the appliance words it."""

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout

from kiosk import logic
from kiosk.i18n import _
from kiosk.screens.base import KScreen, now
from kiosk.widgets import GREEN, MUTED, PANEL, RED, TrendPlot, button, label

POLL_S = 1.0
# model keys in the order shown, with their words and units
MODEL_WORDS = (("heater_w", "Heater {new} W, was {old} W", 0),
               ("element_j_per_k", "Heat stored in the element {new} J/K, was {old} J/K", 0),
               ("surface_j_per_k", "Heat stored in the surface {new} J/K, was {old} J/K", 0),
               ("sensor_tau_s", "Sensor delay {new} s, was {old} s", 1))


def model_lines(result: dict) -> list[str]:
    """``Heater 78 W, was 80 W`` for each fitted value beside the one in use."""
    new = ((result.get("proposed") or {}).get("model")) or {}
    old = ((result.get("current") or {}).get("model")) or {}
    lines = []
    for key, words, decimals in MODEL_WORDS:
        if key in new:
            lines.append(_(words).format(new=logic.fmt_number(new[key], decimals),
                                         old=logic.fmt_number(old.get(key), decimals)
                                         if old.get(key) is not None else logic.DASH))
    return lines


class CalibrateScreen(KScreen):
    role = "service"

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.forget()

    def forget(self):
        self.status: dict | None = None     # tune.status
        self.result: dict | None = None     # tune.result once done
        self.applied = False
        self.discarded = False
        self._result_asked = False
        self.points: list = []
        self._next_poll = 0.0
        self._last_t = None

    def enter(self):
        self.forget()
        self.poll()

    def build(self):
        s = self.s
        self.action_btn = button("", self.action, s.normal, fill=GREEN, size_hint_x=None,
                                 width=max(s.target * 2.6, 170 * s.u))
        self.top_bar(_("Calibrate the mat"), back=True, extra=[self.action_btn])
        main = BoxLayout(orientation="vertical" if s.portrait else "horizontal", spacing=s.gap)
        left = BoxLayout(orientation="vertical", spacing=s.gap)
        self.words = label("", s.small, wrap=True, halign="left", bg=list(PANEL), pad_x=10 * s.u)
        left.add_widget(self.words)
        self.msg = label("", s.small, wrap=True, max_lines=3, color=(1, 0.85, 0.5, 1),
                         size_hint_y=None, height=60 * s.u)
        left.add_widget(self.msg)
        main.add_widget(left)
        right = BoxLayout(orientation="vertical", spacing=s.gap,
                          size_hint=(1, 0.9) if s.portrait else (0.9, 1))
        self.progress = label("", s.normal, wrap=True, max_lines=2, size_hint_y=None,
                              height=60 * s.u)
        right.add_widget(self.progress)
        self.plot = TrendPlot(font=14 * s.u, window_s=3600, min_span_s=120)
        right.add_widget(self.plot)
        self.choice = BoxLayout(size_hint_y=None, height=s.target * 1.1, spacing=s.gap)
        self.use_btn = button(_("Use it"), self.use, s.normal, fill=GREEN)
        self.discard_btn = button(_("Discard"), self.discard, s.normal)
        self.choice.add_widget(self.use_btn)
        self.choice.add_widget(self.discard_btn)
        right.add_widget(self.choice)
        main.add_widget(right)
        self.body.add_widget(main)

    def phase(self) -> str:
        status = self.status or {}
        if self.applied:
            return "applied"
        if status.get("active"):
            return "running"
        if self.discarded:
            return "intro"
        if status.get("done") and status.get("ended") in (None, "finished"):
            return "result"
        if status.get("ended"):
            return "ended"
        return "intro"

    def refresh(self):
        app = self.app
        self._sample()
        polling = self.status is None or (self.status or {}).get("active")
        if polling and now() >= self._next_poll and self.app.staff == self.name:
            self.poll()
        phase = self.phase()
        status = self.status or {}
        test_c = status.get("test_c") or app.levels.get("low")
        if phase == "intro":
            self.words.text = _(
                "The calibration measures this mat: it heats the empty mat to {t} and lets it "
                "cool a few times. Take everything off the mat and let it cool to room "
                "temperature first. It takes about 30 minutes; every safety rule stays on and "
                "you can stop it at any time.").format(t=logic.fmt_temp(test_c))
        elif phase == "running":
            self.words.text = _("Calibration running. Leave the mat empty. Stop ends it and "
                                "switches the heat off.")
        elif phase == "result":
            result = self.result or {}
            if not result:
                self.words.text = _("Working out the result\u2026")
            else:
                verdict = _("The measurement is good enough to use.") if result.get("ok") else \
                    _("The measurement is not good enough to use. Discard it and try again "
                      "with the mat empty and cool.")
                self.words.text = "\n".join(model_lines(result) + [verdict])
        elif phase == "applied":
            self.words.text = _("Done. The controller and the safety checks use the new "
                                "model now.")
        else:
            self.words.text = _("The calibration did not finish: {why}. Nothing was "
                                "changed.").format(why=status.get("ended"))
        if phase == "running" or (phase == "result" and self.points):
            minutes = logic.fmt_mmss(status.get("elapsed_s"))
            self.progress.text = _("{t} \u00b7 {n} of {total} cycles measured").format(
                t=minutes, n=status.get("cycles", 0), total=status.get("cycles_needed", 3))
        else:
            self.progress.text = ""
        self.plot.opacity = 1 if self.points else 0
        self.plot.points = list(self.points)
        show_choice = phase == "result" and bool(self.result)
        self.choice.opacity = 1 if show_choice else 0
        self.use_btn.disabled = not show_choice or not (self.result or {}).get("ok") or app.busy
        self.discard_btn.disabled = not show_choice or app.busy
        if phase == "running":
            self.action_btn.text, self.action_btn.fill = _("Stop"), list(RED)
        else:
            self.action_btn.text, self.action_btn.fill = _("Start calibration"), list(GREEN)
        self.action_btn.disabled = app.busy or phase == "result"
        self.action_btn.opacity = 0 if phase == "result" else 1
        self.msg.text = app.message_for("calibrate")
        self.msg.color = (1, 0.85, 0.5, 1) if self.msg.text else MUTED

    def _sample(self):
        """The mat temperature from the pushed states while the test runs (one point a second)."""
        app = self.app
        if not (self.status or {}).get("active") or app.state is None:
            return
        t = app.state_time
        if self._last_t is not None and t - self._last_t < 0.9:
            return
        self._last_t = t
        mat = app.state.get("mat_c")
        self.points.append((t, mat if isinstance(mat, (int, float)) else None,
                            (self.status or {}).get("test_c")))

    # -- requests -------------------------------------------------------------------------------

    def poll(self):
        self._next_poll = now() + POLL_S
        self.app.call("tune.status", None, self._status, None)

    def _status(self, status):
        self.status = status if isinstance(status, dict) else None
        if self.phase() == "result" and not self._result_asked:
            self._result_asked = True
            self.app.call("tune.result", None, self._result, self.app.failed("calibrate"))
        self.app.route()

    def _result(self, result):
        self.result = result if isinstance(result, dict) else {}
        self.app.route()

    def action(self):
        app = self.app
        if app.busy:
            return
        if self.phase() == "running":
            app.call("tune.stop", None, lambda r: self.poll(), app.failed("calibrate"))
            return
        app.busy = True
        self.points, self.result, self.applied, self.discarded = [], None, False, False
        self._result_asked = False
        app.call("tune.start", {"pin": app.staff_pin("service") or ""}, self._started,
                 app.failed("calibrate"))
        app.route()

    def _started(self, status):
        self.app.busy = False
        self._status(status)

    def use(self):
        app = self.app
        app.busy = True
        app.call("tune.apply", {"pin": app.staff_pin("service") or "", "confirm": True},
                 self._applied, app.failed("calibrate"))
        app.route()

    def _applied(self, result):
        self.app.busy = False
        self.applied = True
        self.app.route()

    def discard(self):
        self.app.say("calibrate", _("Discarded. Nothing was changed."))
        self.discarded, self.result, self.points = True, None, []
        self.app.route()
