"""The Kivy application: connects to the appliance, routes between the screens and shows alarms.

The app never decides anything about the heater: each touch becomes an API request
(:class:`kiosk.api.ApiLink`), and every screen is redrawn from the last pushed ``state``. The
screens, with their layouts and requests, are in :mod:`kiosk.screens`.
"""

from __future__ import annotations

import time

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.screenmanager import NoTransition, ScreenManager
from kivy.uix.widget import Widget

from kiosk import i18n, logic
from kiosk.backlight import DIM_LEVEL, Backlight
from kiosk.i18n import _
from kiosk.screens import SCREENS
from kiosk.screens.alarm import AlarmOverlay
from kiosk.screens.base import DONE_TIMEOUT_S, Sizes, now
from kiosk.sound import AlarmSound
from kiosk.widgets import BG

STAFF_TIMEOUT_S = 120.0
MESSAGE_S = 8.0
STALE_S = 4.0
SETTINGS_POLL_S = 60.0

__all__ = ["KioskApp", "now", "DONE_TIMEOUT_S"]


def free_memory() -> None:
    """After a screen was dropped: collect its widgets (Kivy's bindings make reference cycles)
    and hand the freed heap back to the system (glibc), so a kiosk that has shown every screen
    does not stay at its high-water mark."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass    # not glibc: the memory is reused by the process instead


# -------------------------------------------------------------------------------------------------
# The root: screens, alarm overlay, brightness overlay

class Root(FloatLayout):
    def __init__(self, app: "KioskApp", **kwargs):
        super().__init__(**kwargs)
        self.app = app

    def on_touch_down(self, touch):
        if self.app.user_activity():
            return True  # the touch that wakes a dimmed screen does nothing else
        return super().on_touch_down(touch)


class Shade(Widget):
    """The dark layer for brightness and idle dimming; passes touches through."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from kivy.graphics import Color, Rectangle
        with self.canvas:
            self._c = Color(0, 0, 0, 0)
            self._r = Rectangle(pos=self.pos, size=self.size)
        self.bind(pos=self._paint, size=self._paint)

    def _paint(self, *_):
        self._r.pos, self._r.size = self.pos, self.size

    def set_alpha(self, alpha: float):
        self._c.a = alpha


class KioskApp(App):
    """The kiosk. ``api`` is an :class:`kiosk.api.ApiLink` or ``None`` (screenshots)."""

    title = "Lumbarest"

    def __init__(self, profile: str = "bedside", lang: str = "en", api_factory=None,
                 lang_forced: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.profile = profile if profile in ("bedside", "clinic") else "bedside"
        self.lang = i18n.set_language(lang)
        self.lang_forced = lang_forced
        self.api_factory = api_factory
        self.api = None
        self.state: dict | None = None
        self.meta: dict = {}
        self.connected = False
        self.state_time = 0.0
        self.lost_since: float | None = now()
        self.programs: dict = {}
        self.levels: dict = {}
        self.sel_program: str | None = None
        self.sel_level: str | None = None
        self.dismissed: tuple | None = None
        self.done_since: float | None = None
        self.trend = logic.TrendBuffer(window_s=600)
        self.staff: str | None = None          # pin, settings, keyboard, history, service
        self.staff_target: str | None = None
        self.pin_role = "clinic"
        self.pins = {"clinic": logic.PinEntry(), "service": logic.PinEntry()}
        self.auth: dict = {"clinic": None, "service": None}
        self.messages: dict = {}
        self.busy = False
        self.audio = logic.AudioPause()
        self.sound = AlarmSound()
        self.alarm_pin_code: str | None = None
        self.dimmer = logic.IdleDimmer(sleep_min=5.0, last_activity=now())
        self.dimmed = False
        self.brightness = 100.0
        self.backlight = Backlight()
        self.freeze_flash: bool | None = None  # screenshots: force the lit phase
        self.first_frame_cb = None
        self.overlay_since: float | None = None
        self._next_settings_poll = now() + SETTINGS_POLL_S
        self.alarm_state_at: float | None = None
        self.sizes = Sizes(*Window.size)
        self._built_for = None

    # -- building -------------------------------------------------------------------------------

    def build(self):
        Window.clearcolor = BG
        self.root_widget = Root(self)
        self.sm = ScreenManager(transition=NoTransition())
        self.screens = {}
        for name, cls in SCREENS:
            screen = cls(self, name=name)
            self.screens[name] = screen
            self.sm.add_widget(screen)
        self.root_widget.add_widget(self.sm)
        self.overlay = AlarmOverlay(self)
        self.shade = Shade()
        self.root_widget.add_widget(self.shade)
        self.rebuild()
        Window.bind(size=lambda *_: Clock.schedule_once(lambda dt: self.rebuild(), 0.05))
        Clock.schedule_interval(self._tick, 0.1)
        return self.root_widget

    def build_key(self) -> tuple:
        return self._built_for

    def rebuild(self):
        """Rebuild for the current window size, language and data: the overlay and the screen
        on show now, the others when they are next shown."""
        self.sizes = Sizes(*Window.size)
        self._built_for = (tuple(Window.size), self.lang, tuple(self.programs.items()),
                           tuple(self.levels.items()))
        for screen in self.screens.values():
            screen.invalidate()
        self.overlay.rebuild()
        self.route()

    def on_start(self):
        if self.sound.enabled:
            import threading
            from kiosk.sound import wav_file
            threading.Thread(target=lambda: [wav_file(p, self.sound.volume) for p in
                                             ("high", "medium", "low", "info")],
                             daemon=True).start()   # ready before the first alarm needs them
        if self.api_factory is not None:
            self.api = self.api_factory(self)
            self.api.start()
        Window.bind(on_flip=self._on_flip)

    def _on_flip(self, *_):
        if self.first_frame_cb is not None:
            cb, self.first_frame_cb = self.first_frame_cb, None
            cb(live=self.connected)

    def on_stop(self):
        if self.api is not None:
            self.api.stop()

    def call(self, method, params=None, on_result=None, on_error=None):
        if self.api is None:
            return
        self.api.call(method, params, on_result, on_error)

    # -- data from the link (UI thread) ---------------------------------------------------------

    def on_state(self, state: dict, meta: dict):
        if state.get("alarms") and not (self.state or {}).get("alarms"):
            self.alarm_state_at = now()  # when the first alarm arrived (for the e2e test)
        self.state = state
        self.meta = meta
        self.state_time = now()
        if self.lost_since is not None and self.connected:
            self.lost_since = None
        if meta.get("programs"):
            self.programs = dict(meta["programs"])
        if meta.get("levels"):
            self.levels = dict(meta["levels"])
        if self.sel_program not in self.programs:
            self.sel_program = "standard" if "standard" in self.programs else \
                next(iter(logic.sorted_programs(self.programs)), (None,))[0]
        if self.sel_level not in self.levels:
            self.sel_level = "medium" if "medium" in self.levels else \
                next(iter(logic.sorted_levels(self.levels)), (None,))[0]
        self.trend.add(self.state_time, state)
        if self._built_for is not None and self._built_for[2:] != (
                tuple(self.programs.items()), tuple(self.levels.items())):
            self.rebuild()
        self.route()

    def on_connection(self, connected: bool):
        self.connected = connected
        if connected:
            self.lost_since = None
            self.call("settings.get", None, self.apply_settings, None)
        else:
            self.lost_since = self.lost_since or now()
            self.busy = False
        self.route()

    def live(self) -> bool:
        return self.connected and self.state is not None and now() - self.state_time < STALE_S

    def unit_name(self) -> str:
        return (self.state or {}).get("unit_name") or self.meta.get("unit_name") or "Lumbarest"

    def alarms(self) -> list:
        return logic.overlay_alarms((self.state or {}).get("alarms"))

    def effective_level(self):
        return "off" if logic.program_is_heatless(self.sel_program) and "off" in self.levels \
            else self.sel_level

    # -- routing --------------------------------------------------------------------------------

    def route(self):
        live = self.live()
        if not live and self.lost_since is None:
            self.lost_since = now()
        if not live:
            target = "lost"
        elif self.staff:
            target = self.staff
        else:
            target = logic.main_screen_for(self.state, True, self.dismissed)
        if target == "done" and self.sm.current != "done":
            self.done_since = now()
            if (self.state or {}).get("session", {}).get("state") == "done" and \
                    not self.appliance_sounds():
                self.sound.play_once("info")  # the information signal: the session is over
        if target == "home" and self.sm.current in ("session", "done", "lost"):
            self.busy = False
        screen = self.screens[target]
        screen.ensure_built()
        if self.sm.current != target:
            left = self.screens.get(self.sm.current)
            self.sm.current = target
            if left is not None and not left.keep_built and left.built_for is not None:
                left.release()
                Clock.schedule_once(lambda dt: free_memory(), 0)
        screen.refresh()
        self._update_overlay(live)

    def _update_overlay(self, live: bool):
        alarms = self.alarms() if live else []
        if alarms:
            alarm = alarms[0]
            if self.freeze_flash is not None:
                lit = self.freeze_flash
            else:
                lit = logic.flash_lit(alarm.get("priority"), time.monotonic())
            if self.overlay.parent is None:
                self.root_widget.add_widget(self.overlay, index=1)
                self.alarm_pin_code = None
                self.overlay_since = now()
            self.overlay.refresh(alarm, len(alarms) - 1, lit)
        elif self.overlay.parent is not None:
            self.root_widget.remove_widget(self.overlay)
            self.alarm_pin_code = None

    def _tick(self, dt):
        t = now()
        if self.connected and self.state is not None and t - self.state_time >= STALE_S:
            self.lost_since = self.lost_since or t
        name = self.sm.current
        if name == "done" and self.done_since and t - self.done_since >= DONE_TIMEOUT_S:
            self.dismiss_done()
        if self.staff and not self.screens[self.staff].stays_open and \
                t - self.dimmer.last_activity >= STAFF_TIMEOUT_S:
            self.leave_staff()
        if self.connected and not self.staff and t >= self._next_settings_poll:
            # brightness, sleep and language may be changed from elsewhere (CLI, another panel)
            self._next_settings_poll = t + SETTINGS_POLL_S
            self.call("settings.get", None, self.apply_settings, None)
        for key, (_text, until) in list(self.messages.items()):
            if t >= until:
                del self.messages[key]
        # never dim during a session, nor while the mat heats for a pre-warm
        session_running = logic.session_active(self.state) or \
            bool((self.state or {}).get("heating"))
        alarm_shown = self.overlay.parent is not None
        alarms = self.alarms() if alarm_shown else []
        codes = [a.get("code") for a in alarms]
        sounding = alarms[0].get("priority") if alarms and not self.audio.paused(t, codes) \
            and not self.appliance_sounds() else None
        self.sound.update(t, sounding)
        should_dim = self.dimmer.should_dim(t, session_running, alarm_shown) \
            and self.freeze_flash is None
        if should_dim != self.dimmed:
            self.dimmed = should_dim
            self.apply_brightness()
        self.route()

    # -- messages -------------------------------------------------------------------------------

    def say(self, where: str, text: str, seconds: float = MESSAGE_S):
        self.messages[where] = (text, now() + seconds)

    def message_for(self, where: str) -> str:
        return self.messages.get(where, ("", 0))[0]

    def failed(self, where: str):
        def handler(code, message, data):
            self.busy = False
            if code == 0:
                self.say(where, _("The controller did not answer. Please try again."))
            else:
                self.say(where, message or _("That did not work."))
            self.route()
        return handler

    def done(self, *_):
        self.busy = False
        self.route()

    # -- activity, brightness -------------------------------------------------------------------

    def user_activity(self) -> bool:
        """A touch: returns True when it only woke the screen."""
        self.dimmer.touch(now())
        if self.dimmed:
            self.dimmed = False
            self.apply_brightness()
            return True
        return False

    def apply_brightness(self):
        level = DIM_LEVEL if self.dimmed else self.brightness
        alpha = self.backlight.apply(level)
        self.shade.set_alpha(alpha)

    def apply_settings(self, settings):
        if not isinstance(settings, dict):
            return
        if isinstance(settings.get("volume"), (int, float)):
            self.sound.volume = int(settings["volume"])
        if isinstance(settings.get("sleep_min"), (int, float)):
            self.dimmer.sleep_min = float(settings["sleep_min"])
        if isinstance(settings.get("brightness"), (int, float)):
            self.brightness = float(settings["brightness"])
            self.apply_brightness()
        lang = settings.get("language")
        if lang in i18n.LANGUAGES and lang != self.lang and not self.lang_forced:
            self.set_language(lang)

    def set_language(self, lang: str):
        self.lang = i18n.set_language(lang)
        self.rebuild()

    # -- the done screen ----------------------------------------------------------------------

    def dismiss_done(self):
        self.dismissed = logic.ended_key(self.state)
        self.done_since = None
        self.route()

    # -- alarms ---------------------------------------------------------------------------------

    def appliance_sounds(self) -> bool:
        """The appliance drives its own sounder (its state carries ``audio``); then the kiosk
        only asks it to pause, and makes no sound itself."""
        return isinstance((self.state or {}).get("audio"), dict)

    def audio_paused(self) -> tuple[bool, float]:
        """(paused, seconds left) from the appliance when it sounds, else the kiosk's own."""
        if self.appliance_sounds():
            audio = self.state["audio"]
            return bool(audio.get("paused")), float(audio.get("remaining_s") or 0)
        t = now()
        return (self.audio.paused(t, [a.get("code") for a in self.alarms()]),
                max(0.0, self.audio.until - t))


    # -- staff screens --------------------------------------------------------------------------

    def open_staff(self, target: str):
        """Open a staff screen, asking for its role's PIN first unless given in this visit."""
        self.dimmer.touch(now())
        role = self.screens[target].role
        if role is None or self.staff_pin(role):     # None: a screen anyone may see (Rooms)
            self._enter_staff(target)
            return
        self.pin_role = role
        self.staff_target = target
        self.pins[role].take()
        self.staff = "pin"
        self.screens["pin"].rebuild()
        self.route()

    def grant(self, role: str, pin: str):
        """The appliance accepted ``pin`` for ``role``: go on to the screen it was asked for."""
        self.auth[role] = pin
        self._enter_staff(self.staff_target or "home")

    def staff_pin(self, role: str) -> str | None:
        """The PIN given in this visit that is good for ``role`` (the service PIN also does what
        the clinic PIN does, as in the appliance)."""
        return self.auth.get(role) or (self.auth.get("service") if role == "clinic" else None)

    def leave_staff(self):
        self.staff = None
        self.staff_target = None
        self.auth = {"clinic": None, "service": None}
        for screen in self.screens.values():
            screen.forget()
        self.busy = False
        self.route()

    def pin_entry(self) -> logic.PinEntry:
        return self.pins[self.pin_role]

    def _enter_staff(self, target):
        self.staff = target
        self.screens[target].enter()
        self.route()
