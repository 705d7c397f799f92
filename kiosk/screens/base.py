"""What every screen shares: the window's sizes, the :class:`KScreen` base class and small
formatting helpers.

A screen module holds one :class:`KScreen` subclass (sometimes a helper screen next to it, like
the settings keyboard). The screen owns its layout (:meth:`KScreen.build`), its update from the
app's state (:meth:`KScreen.refresh`), the data it loads (:meth:`KScreen.enter`,
:meth:`KScreen.forget`) and the requests its buttons send (methods that call ``self.app.call``).
The app only connects, routes and shows alarms; see ``docs/ui.md`` for how to add a screen.
"""

from __future__ import annotations

import time
from datetime import datetime

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

from kiosk import logic
from kiosk.i18n import _
from kiosk.widgets import BG, PANEL, Fill, button, label

DONE_TIMEOUT_S = 60.0


def now() -> float:
    return time.monotonic()


def first(row: dict, *keys, default=None):
    for key in keys:
        if row.get(key) is not None:
            return row[key]
    return default


def fmt_when(value) -> str:
    """A wall-clock time from the history ('2026-11-26T10:15:02+00:00' or epoch seconds)."""
    if value is None:
        return logic.DASH
    try:
        if isinstance(value, (int, float)):
            dt = datetime.fromtimestamp(value)
        else:
            dt = datetime.fromisoformat(str(value))
            if dt.tzinfo is not None:
                dt = dt.astimezone()
        return dt.strftime("%d.%m. %H:%M")
    except (ValueError, OSError, OverflowError):
        return str(value)[:16]


def alarm_title(code: str) -> str:
    """The plain-words title of a fault code, from the appliance's alarm catalogue."""
    try:
        from appliance.alarms import CATALOGUE
    except ImportError:
        return code
    spec = CATALOGUE.get(code)
    return _(spec.title) if spec else code


class Sizes:
    """Type and element sizes for the window: ``u`` = 1 on 800x480, 1.5 on 1280x720 / 720x1280."""

    def __init__(self, width: float, height: float):
        self.w, self.h = width, height
        self.portrait = height > width
        self.u = min(max(width, height) / 800.0, min(width, height) / 480.0)
        u = self.u
        self.huge = 84 * u
        self.big = 38 * u
        self.large = 30 * u
        self.normal = 24 * u
        self.small = 20 * u
        self.bar = 64 * u
        self.target = 64 * u
        self.gap = 8 * u


class KScreen(Screen):
    """A screen built from the app's sizes and refreshed from its model.

    Class attributes a screen sets:

    ``role``
        ``None`` for a screen anyone sees (home, session, ...), ``"clinic"`` or ``"service"``
        for a staff screen: :meth:`KioskApp.open_staff` asks for that PIN first.
    ``stays_open``
        a screen opened with :meth:`KioskApp.open_staff` that does not close itself after the
        staff timeout (the Rooms board at the front desk).
    """

    role: str | None = None
    stays_open: bool = False
    #: keep the widgets when the screen is left (the screens shown all day); the others are
    #: dropped with their textures and built again when next shown
    keep_built: bool = False

    def __init__(self, app, **kwargs):
        super().__init__(**kwargs)
        self.app = app
        self.built_for = None
        self._built_attrs: tuple = ()

    # -- lifecycle ----------------------------------------------------------------------------

    def invalidate(self):
        """Build again before the next time this screen is shown (saves memory and start time:
        screens nobody opens are never built)."""
        self.built_for = None

    def release(self):
        """Drop the widgets (and with them their textures) of a screen that was left; it is
        built again when it is next shown."""
        if self.built_for is not None:
            self.clear_widgets()
            for name in self._built_attrs:    # the screen's references to its widgets too
                self.__dict__.pop(name, None)
            self._built_attrs = ()
            self.built_for = None

    def ensure_built(self):
        if self.built_for != self.app.build_key():
            self.rebuild()

    def rebuild(self):
        before = set(self.__dict__) - set(self._built_attrs)
        self.built_for = self.app.build_key()
        self.clear_widgets()
        self.s = self.app.sizes
        root = Fill(bg=list(BG))
        self.body = BoxLayout(orientation="vertical", padding=self.s.gap, spacing=self.s.gap)
        root.add_widget(self.body)
        self.add_widget(root)
        self.build()
        self._built_attrs = tuple(set(self.__dict__) - before - {"built_for"})
        self.refresh()

    def enter(self):
        """A staff screen is opened (after its PIN): load what it shows."""

    def forget(self):
        """Staff left: drop loaded data so the next visit starts fresh."""

    # -- layout ---------------------------------------------------------------------------------

    def build(self):
        pass

    def refresh(self):
        pass

    def top_bar(self, title: str, back: bool = False, extra=()):
        s = self.s
        bar = BoxLayout(size_hint_y=None, height=s.bar, spacing=s.gap)
        if back:
            bar.add_widget(button(_("Back"), self.app.leave_staff, s.normal,
                                  size_hint_x=None, width=max(s.target * 1.8, 120 * s.u),
                                  wrap=False))
        self.title_label = label(title, s.large, halign="left", wrap=True, max_lines=2,
                                 ellipsize=True, min_font=16 * s.u)
        bar.add_widget(self.title_label)
        for widget in extra:
            bar.add_widget(widget)
        self.body.add_widget(bar)
        return bar

    def nav_row(self, entries):
        """A row of buttons to other staff screens: ``[(text, screen name), ...]``."""
        s = self.s
        row = BoxLayout(size_hint_y=None, height=s.target, spacing=s.gap)
        for text, name in entries:
            row.add_widget(button(text, (lambda n=name: self.app.open_staff(n)), s.small,
                                  min_font=12))
        self.body.add_widget(row)
        return row

    def form_row(self, text):
        """One line of a form: its words on the left; add the controls to the returned row."""
        s = self.s
        row = BoxLayout(size_hint_y=None, height=s.target * 1.1, spacing=s.gap)
        row.add_widget(label(text, s.normal, halign="left", wrap=True, max_lines=2,
                             size_hint_x=1.3 if not s.portrait else 1.1))
        return row

    def stepper_row(self, text, on_step):
        """``text  [−] value [+]``; ``on_step(-1 or +1)``. Returns (row, value label)."""
        s = self.s
        row = self.form_row(text)
        row.add_widget(button("\u2212", (lambda: on_step(-1)), s.big,
                              size_hint_x=None, width=s.target * 1.2, wrap=False))
        value = label("", s.large, wrap=False, bg=list(PANEL))
        row.add_widget(value)
        row.add_widget(button("+", (lambda: on_step(+1)), s.big,
                              size_hint_x=None, width=s.target * 1.2, wrap=False))
        return row, value
