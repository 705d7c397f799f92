"""The running session (remaining time, temperatures, trend, Pause / +5 min / Hold to stop) and
the summary after it (:class:`DoneScreen`)."""

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout

from kiosk import logic
from kiosk.i18n import _
from kiosk.screens.base import DONE_TIMEOUT_S, KScreen, now
from kiosk.widgets import (ACCENT, GREEN, HEAT, MUTED, PANEL, PANEL_HI, TARGET, HoldButton, Panel,
                           ProgressRing, TrendPlot, button, label)


class SessionScreen(KScreen):
    keep_built = True

    def build(self):
        s = self.s
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
        self.pause_btn = button("", self.pause_or_resume, s.large)
        self.extend_btn = button(_("+5 min"), self.extend_session, s.large,
                                 size_hint_x=0.6)
        self.stop_btn = HoldButton(text=_("Hold to stop"), base_font=s.large, min_font=14,
                                   hold_action=self.stop_session, short_action=self.stop_hint)
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
        msg = app.message_for("session") or logic.notice_text((app.state or {}).get("notices"))
        self.msg.text = msg or _("Mat temperature (orange) and target (blue), last 10 minutes")
        self.msg.color = (1, 0.85, 0.5, 1) if msg else MUTED

    # -- requests -------------------------------------------------------------------------------

    def pause_or_resume(self):
        app = self.app
        session = (app.state or {}).get("session") or {}
        method = "session.resume" if session.get("state") == "paused" else "session.pause"
        app.call(method, None, app.done, app.failed("session"))

    def extend_session(self):
        self.app.call("session.extend", None, self.app.done, self.app.failed("session"))

    def stop_session(self):
        self.app.call("session.stop", None, self.app.done, self.app.failed("session"))

    def stop_hint(self):
        self.app.say("session", _("To stop, keep your finger on the button until the bar is "
                                  "full."), 5)
        self.app.route()


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
