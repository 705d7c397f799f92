"""History (clinic PIN): sessions with their trace, faults, and Copy to USB."""

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout

from kiosk import logic, usb
from kiosk.i18n import _
from kiosk.screens.base import KScreen, alarm_title, first, fmt_when
from kiosk.widgets import MUTED, Panel, TrendPlot, button, label, scroll


def session_row_text(row) -> str:
    when = fmt_when(first(row, "started_at", "start", "start_time", "started"))
    minutes = first(row, "actual_min", "minutes", "duration_min")
    if minutes is None and first(row, "actual_s", "elapsed_s") is not None:
        minutes = first(row, "actual_s", "elapsed_s") / 60.0
    outcome = first(row, "outcome", default="")
    outcome = _(logic.OUTCOME_TEXT[outcome]) if outcome in logic.OUTCOME_TEXT else outcome
    return (f"{when}  {logic.program_label(row.get('program'))} \u00b7 "
            f"{logic.level_label(row.get('level'))} \u00b7 {logic.fmt_minutes(minutes)}\n"
            f"{outcome}")


def session_detail_text(row) -> str:
    return _("Average {mean}, highest {max}").format(
        mean=logic.fmt_temp(first(row, "mean_c")), max=logic.fmt_temp(first(row, "max_c")))


def fault_row_text(row) -> str:
    when = fmt_when(first(row, "time", "at", "since", "raised_at"))
    title = first(row, "title", default="") or alarm_title(first(row, "code", default=""))
    acked = first(row, "acknowledged_at", "acked_at")
    tail = _("acknowledged") if acked else _("not acknowledged")
    return f"{when}  {title} ({first(row, 'priority', default='')})\n{tail}"


class HistoryScreen(KScreen):
    role = "clinic"

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.history_tab = "sessions"
        self.history_sessions: list | None = None
        self.history_faults: list | None = None
        self.history_sel: dict | None = None
        self.history_trace: list | None = None

    def build(self):
        s = self.s
        self.tab_sessions = button(_("Sessions"), lambda: self.history_tab_set("sessions"),
                                   s.small, wrap=False)
        self.tab_faults = button(_("Faults"), lambda: self.history_tab_set("faults"), s.small,
                                 wrap=False)
        self.export_btn = button(_("Copy to USB"), self.export_usb, s.small, wrap=True,
                                 size_hint_x=0.6)
        self.top_bar(_("History"), back=True, extra=[self.export_btn])
        tabs = BoxLayout(size_hint_y=None, height=s.target, spacing=s.gap)
        tabs.add_widget(self.tab_sessions)
        tabs.add_widget(self.tab_faults)
        self.body.add_widget(tabs)
        self.msg = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=None,
                         height=30 * s.u)
        self.body.add_widget(self.msg)
        main = BoxLayout(orientation="vertical" if s.portrait else "horizontal", spacing=s.gap)
        self.list = GridLayout(cols=1, spacing=s.gap * 0.6, size_hint_y=None)
        self.list.bind(minimum_height=self.list.setter("height"))
        main.add_widget(scroll(self.list))
        self.detail = Panel(orientation="vertical", padding=6 * s.u, spacing=4 * s.u,
                            size_hint=(1, 0.9) if s.portrait else (0.8, 1))
        self.detail_title = label("", s.normal, wrap=True, max_lines=2, size_hint_y=0.25)
        self.detail_text = label("", s.small, wrap=True, color=MUTED, size_hint_y=0.3)
        self.detail_plot = TrendPlot(font=14 * s.u, window_s=60, min_span_s=60)
        self.detail.add_widget(self.detail_title)
        self.detail.add_widget(self.detail_text)
        self.detail.add_widget(self.detail_plot)
        main.add_widget(self.detail)
        self.body.add_widget(main)
        self._rows_key = None

    def refresh(self):
        s, app = self.s, self.app
        tab = self.history_tab
        self.tab_sessions.selected = tab == "sessions"
        self.tab_faults.selected = tab == "faults"
        self.msg.text = app.message_for("history")
        rows = self.history_sessions if tab == "sessions" else self.history_faults
        key = (tab, id(rows), self.history_sel)
        if key != self._rows_key:
            self._rows_key = key
            self.list.clear_widgets()
            for i, row in enumerate(rows or []):
                if tab == "sessions":
                    text = session_row_text(row)
                    cb = (lambda r=row: self.history_select(r))
                else:
                    text = fault_row_text(row)
                    cb = None
                b = button(text, cb, s.small, wrap=True, max_lines=2, halign="left",
                           size_hint_y=None, height=s.target * 1.05, min_font=12)
                b.selected = tab == "sessions" and self.history_sel is row
                self.list.add_widget(b)
            if not rows:
                self.list.add_widget(label(_("Nothing recorded yet.") if rows is not None
                                           else _("Loading\u2026"), s.normal, size_hint_y=None,
                                           height=s.target, color=MUTED))
        sel = self.history_sel if tab == "sessions" else None
        self.detail.opacity = 1 if sel else 0
        if sel:
            self.detail_title.text = session_row_text(sel).split("\n")[0]
            self.detail_text.text = session_detail_text(sel)
            pts = self.history_trace or []
            span = (pts[-1][0] - pts[0][0]) if len(pts) > 1 else 60
            self.detail_plot.window_s = max(60.0, span)
            self.detail_plot.points = [(p[0], p[1], p[2] if len(p) > 2 else None) for p in pts]

    # -- data and requests ----------------------------------------------------------------------

    def enter(self):
        app = self.app
        self.history_sessions = self.history_faults = None
        self.history_sel = self.history_trace = None
        app.call("history.sessions", {"limit": 50, "offset": 0}, self._sessions_loaded,
                 app.failed("history"))
        app.call("history.faults", {"limit": 50, "offset": 0}, self._faults_loaded,
                 app.failed("history"))

    def forget(self):
        self.history_sel = self.history_trace = None

    def _sessions_loaded(self, result):
        self.history_sessions = list((result or {}).get("sessions") or [])
        self.app.route()

    def _faults_loaded(self, result):
        self.history_faults = list((result or {}).get("faults") or [])
        self.app.route()

    def history_tab_set(self, tab):
        self.history_tab = tab
        self.app.route()

    def history_select(self, row):
        self.history_sel = row
        self.history_trace = None
        sid = first(row, "id", "session_id")
        if sid is not None:
            self.app.call("history.trace", {"session_id": sid}, self._trace_loaded,
                          self.app.failed("history"))
        self.app.route()

    def _trace_loaded(self, result):
        self.history_trace = list((result or {}).get("points") or [])
        self.app.route()

    def export_usb(self):
        app = self.app
        drives = usb.find_usb_drives()
        if not drives:
            app.say("history", _("No USB drive found. Plug in a USB stick and try again."))
            app.route()
            return
        app.busy = True
        collected: dict = {}

        def got(kind, result):
            collected[kind] = list((result or {}).get(kind) or [])
            if len(collected) == 2:
                try:
                    paths = usb.export(drives[0], collected["sessions"], collected["faults"],
                                       app.unit_name())
                    app.say("history", _("Saved {n} files to {drive}.").format(
                        n=len(paths), drive=drives[0].name))
                except OSError as exc:
                    app.say("history", _("Could not write to the USB drive: {e}").format(
                        e=exc.strerror or exc))
                app.busy = False
                app.route()

        app.call("history.sessions", {"limit": 500, "offset": 0},
                 lambda r: got("sessions", r), app.failed("history"))
        app.call("history.faults", {"limit": 500, "offset": 0},
                 lambda r: got("faults", r), app.failed("history"))
        app.route()
