"""Home: choose a program and a heat, Start; the pre-warm line and Stop warming."""

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout

from kiosk import logic
from kiosk.i18n import _
from kiosk.screens.base import KScreen
from kiosk.screens.maintenance import reminder_words
from kiosk.widgets import GREEN, HEAT, MUTED, PANEL_HI, RED, TARGET, button, label

#: the staff screens reached from Home (clinic profile), in button order; before them Rooms
#: when a broker is configured (kiosk/screens/rooms.py)
STAFF_NAV = ("history", "settings", "service")
#: the pre-warm button's width beside Start (a share of the layout, so it is right from the
#: first frame, before the row has its final width)
PREWARM_SHARE = 0.35 / 0.65


class HomeScreen(KScreen):
    keep_built = True

    def nav_buttons(self):
        app = self.app
        titles = {"rooms": _("Rooms"), "history": _("History"), "settings": _("Settings"),
                  "service": _("Service")}
        names = (("rooms",) if app.screens["rooms"].available else ()) + STAFF_NAV
        return [(titles[name], (lambda n=name: app.open_staff(n))) for name in names]

    def build(self):
        s, app = self.s, self.app
        clinic = app.profile == "clinic"
        self.temp_label = label("", s.large, size_hint_x=None,
                                width=(210 if not s.portrait else 200) * s.u, wrap=False)
        extra = [self.temp_label]
        if clinic and not s.portrait:
            for text, cb in self.nav_buttons():
                extra.append(button(text, cb, s.small, size_hint_x=None, width=116 * s.u,
                                    min_font=12))
        self.top_bar("", extra=extra)
        if clinic and s.portrait:
            nav = BoxLayout(size_hint_y=None, height=s.target, spacing=s.gap)
            for text, cb in self.nav_buttons():
                nav.add_widget(button(text, cb, s.normal))
            self.body.add_widget(nav)

        programs = logic.sorted_programs(app.programs)
        levels = logic.sorted_levels(app.levels)
        self.heading = label(_("Choose a program"), s.normal, color=MUTED, halign="left",
                             size_hint_y=None, height=36 * s.u)
        self.body.add_widget(self.heading)
        cols = 2 if s.portrait and len(programs) > 2 else max(1, len(programs))
        rows = -(-len(programs) // cols) if programs else 1
        grid = GridLayout(cols=cols, spacing=s.gap, size_hint_y=None,
                          height=rows * (120 if s.portrait else 96) * s.u + (rows - 1) * s.gap)
        self.program_buttons = {}
        for name, minutes in programs:
            text = f"{logic.program_label(name)}\n{logic.fmt_minutes(minutes)}"
            b = button(text, (lambda n=name: self.choose_program(n)), s.large, max_lines=3)
            self.program_buttons[name] = b
            grid.add_widget(b)
        self.body.add_widget(grid)

        self.body.add_widget(label(_("Choose the heat"), s.normal, color=MUTED, halign="left",
                                   size_hint_y=None, height=36 * s.u))
        cols = 2 if s.portrait and len(levels) > 2 else max(1, len(levels))
        rows = -(-len(levels) // cols) if levels else 1
        grid = GridLayout(cols=cols, spacing=s.gap, size_hint_y=None,
                          height=rows * (100 if s.portrait else 84) * s.u + (rows - 1) * s.gap)
        self.level_buttons = {}
        for name, celsius in levels:
            text = logic.level_label(name)
            if celsius is not None:
                text += "\n" + logic.fmt_temp(celsius, 0 if float(celsius).is_integer() else 1)
            b = button(text, (lambda n=name: self.choose_level(n)), s.large, max_lines=3)
            self.level_buttons[name] = b
            grid.add_widget(b)
        self.body.add_widget(grid)
        self.msg = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1))
        self.body.add_widget(self.msg)
        # clinic portrait: a lower Start row leaves a line for the maintenance notice
        row = BoxLayout(size_hint_y=None, spacing=s.gap,
                        height=((100 if clinic else 130) if s.portrait else 80) * s.u)
        self.start = button(_("Start"), self.start_session, s.big, fill=GREEN)
        row.add_widget(self.start)
        # a pre-warm heats the mat without a session: anyone may stop it (no PIN); on the
        # clinic panel the same place starts one (clinic PIN)
        self.prewarm_btn = button(_("Stop warming"), self.prewarm_action, s.normal, fill=RED,
                                  size_hint_x=None, width=0, opacity=0, disabled=True)
        row.add_widget(self.prewarm_btn)
        self.body.add_widget(row)

    def refresh(self):
        app = self.app
        state = app.state or {}
        self.title_label.set_text(app.unit_name() if app.profile == "clinic" else _("Lumbarest"))
        self.temp_label.text = _("Mat {t}").format(t=logic.fmt_temp(state.get("mat_c")))
        for name, b in self.program_buttons.items():
            b.selected = name == app.sel_program
        heatless = logic.program_is_heatless(app.sel_program)
        for name, b in self.level_buttons.items():
            b.selected = name == app.effective_level()
            b.disabled = heatless and name != "off"
        self.msg.text = app.message_for("home")
        prewarm = state.get("prewarm") if isinstance(state.get("prewarm"), dict) else {}
        if prewarm.get("active"):
            self.heading.text = _("Warming the mat to {t}: {left} left").format(
                t=logic.fmt_temp(prewarm.get("setpoint_c") or state.get("setpoint_c")),
                left=logic.fmt_mmss(prewarm.get("remaining_s")))
            self.heading.color = HEAT
            self.prewarm_btn.opacity, self.prewarm_btn.disabled = 1, False
            self.prewarm_btn.size_hint_x = PREWARM_SHARE
            self.prewarm_btn.text, self.prewarm_btn.fill = _("Stop warming"), list(RED)
        elif app.profile == "clinic":
            self.heading.text = _("Choose a program")
            self.heading.color = MUTED
            self.prewarm_btn.opacity = 1
            self.prewarm_btn.disabled = not app.live() or state.get("ready") is False
            self.prewarm_btn.size_hint_x = PREWARM_SHARE
            self.prewarm_btn.text, self.prewarm_btn.fill = _("Warm the mat now"), list(PANEL_HI)
        else:
            self.heading.text = _("Choose a program")
            self.heading.color = MUTED
            self.prewarm_btn.opacity, self.prewarm_btn.disabled = 0, True
            self.prewarm_btn.size_hint_x, self.prewarm_btn.width = None, 0
        self.msg.color = (1, 0.85, 0.5, 1)
        if not self.msg.text and app.profile == "clinic" and state.get("reminders"):
            # maintenance for staff: Home only, so never over a session
            titles = [reminder_words(r)[0] for r in state["reminders"] if isinstance(r, dict)]
            self.msg.text = _("Maintenance: {what} (Service › Maintenance)").format(
                what="; ".join(titles))
            self.msg.color = TARGET
        if state.get("ready") is False:      # the appliance's start-up self-test is running
            self.start.text = _("Please wait\u2026")
            self.start.disabled = True
            self.msg.text = self.msg.text or _("The controller is checking itself.")
        elif app.busy:
            self.start.text = _("Starting\u2026")
            self.start.disabled = True
        else:
            self.start.text = _("Start")
            self.start.disabled = not (app.live() and app.sel_program)

    # -- requests -------------------------------------------------------------------------------

    def choose_program(self, name):
        self.app.sel_program = name
        self.app.route()

    def choose_level(self, name):
        self.app.sel_level = name
        self.app.route()

    def start_session(self):
        app = self.app
        if app.busy or not app.sel_program:
            return
        app.busy = True
        app.dismissed = logic.ended_key(app.state)
        app.trend.reset()
        app.call("session.start", {"program": app.sel_program, "level": app.effective_level()},
                 self._started, app.failed("home"))
        app.route()

    def _started(self, state):
        app = self.app
        app.busy = False
        if isinstance(state, dict) and "session" in state:
            app.on_state(state, app.meta)
        app.route()

    def prewarm_action(self):
        prewarm = (self.app.state or {}).get("prewarm")
        if isinstance(prewarm, dict) and prewarm.get("active"):
            self.stop_prewarm()
        elif self.app.profile == "clinic":
            self.app.open_staff("warm")

    def stop_prewarm(self):
        self.app.call("prewarm.stop", None, self.app.done, self.app.failed("home"))
