"""Fixtures for the kiosk tests: a Kivy window under the test display, a fake appliance API, and
helpers that drive touches and let the event loop run."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("LUMBAREST_KIOSK_MUTE", "1")  # no alarm sounds from the test runs
HAVE_DISPLAY = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
NO_DISPLAY = "needs an X display: run under Xvfb (make test does)"


def kivy_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("kivy") is not None


@pytest.fixture
def short_tmp():
    """A short temporary directory (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="lk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Harness:
    """One kiosk app inside this test process, built without ``App.run()``."""

    def __init__(self, socket_path, profile="bedside", lang="en"):
        from kiosk.main import configure_kivy
        configure_kivy((800, 480), False)
        from kivy.base import EventLoop
        from kivy.clock import Clock
        from kivy.core.window import Window

        from kiosk.api import ApiLink
        from kiosk.ui import KioskApp

        EventLoop.ensure_window()
        self.Window, self.EventLoop, self.Clock = Window, EventLoop, Clock

        def api_factory(app):
            def dispatch(fn):
                Clock.schedule_once(lambda dt: fn(), 0)
            return ApiLink(socket_path, dispatch, app.on_state, app.on_connection,
                           stale_s=2.0, retry_s=0.3)

        self.app = KioskApp(profile=profile, lang=lang, api_factory=api_factory,
                            lang_forced=True)
        self.root = self.app.build()
        self.app.root = self.root
        Window.add_widget(self.root)
        self.app.on_start()

    def close(self):
        self.Clock.unschedule(self.app._tick)
        if self.app.api is not None:
            self.app.api.stop()
        self.Window.remove_widget(self.root)
        self.pump(0.05)

    # event loop and touches ------------------------------------------------------------------

    def pump(self, seconds=0.0):
        end = time.monotonic() + seconds
        while True:
            self.EventLoop.idle()
            if time.monotonic() >= end:
                return
            time.sleep(0.005)

    def wait(self, condition, timeout=5.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.EventLoop.idle()
            if condition():
                return True
            time.sleep(0.005)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def _touch(self, widget):
        from kivy.tests.common import UnitTestTouch
        assert widget.get_root_window() is not None, f"{widget} is not on screen"
        # a screen change takes a frame; the ScreenManager ignores touches until it is done
        self.wait(lambda: not self.app.sm.transition.is_active, 2, "the screen change")
        from kivy.uix.scrollview import ScrollView
        parent = widget.parent
        while parent is not None and not isinstance(parent, ScrollView):
            if parent.parent is parent:    # the Window is its own parent
                parent = None
                break
            parent = parent.parent
        if parent is not None:             # scroll it into view first, as a finger would
            parent.scroll_to(widget, animate=False)
            self.pump(0.05)
        x, y = widget.to_window(*widget.center)
        return UnitTestTouch(x, y)

    def tap(self, widget):
        touch = self._touch(widget)
        touch.touch_down()
        self.pump(0.05)
        touch.touch_up()
        self.pump(0.05)

    def hold(self, widget, seconds):
        touch = self._touch(widget)
        touch.touch_down()
        self.pump(seconds)
        touch.touch_up()
        self.pump(0.05)

    @property
    def screen(self) -> str:
        return self.app.sm.current

    def overlay_shown(self) -> bool:
        return self.app.overlay.parent is not None
