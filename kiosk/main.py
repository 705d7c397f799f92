"""``lumbarest-kiosk``: the touchscreen UI process.

    lumbarest-kiosk [--socket PATH] [--profile bedside|clinic] [--size WxH] [--fullscreen]
                    [--lang en|de]
    lumbarest-kiosk --screenshots DIR [--size WxH] [--profile P]

The second form renders every screen with representative states to PNG files without an appliance,
checks that nothing is clipped, and exits (0 when every screen passed the layout checks).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

PROCESS_START = time.time()


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        size = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 800x480, not {text!r}") from None
    if min(size) < 200 or max(size) > 8192:
        raise argparse.ArgumentTypeError(f"size {text} is out of range")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lumbarest-kiosk",
                                     description="Lumbarest touchscreen kiosk")
    parser.add_argument("--socket", help="the appliance socket (default: the standard path)")
    parser.add_argument("--profile", choices=("bedside", "clinic"),
                        default=os.environ.get("LUMBAREST_PROFILE") or "bedside")
    parser.add_argument("--size", type=parse_size, default=(800, 480), metavar="WxH")
    parser.add_argument("--fullscreen", action="store_true")
    parser.add_argument("--lang", choices=("en", "de"), default=None)
    parser.add_argument("--screenshots", metavar="DIR",
                        help="render every screen to PNG files in DIR and exit")
    return parser


def configure_kivy(size, fullscreen: bool, fixed_size: bool = False) -> None:
    """Everything Kivy must know before its window module is imported."""
    os.environ["KIVY_NO_ARGS"] = "1"
    os.environ["KIVY_NO_FILELOG"] = "1"
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    from kivy.config import Config
    Config.set("kivy", "log_level", "warning")
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("graphics", "width", str(size[0]))
    Config.set("graphics", "height", str(size[1]))
    # A compositor (cage) may resize the window to the panel: the screens rebuild for the new
    # size. Screenshots keep exactly the size asked for.
    Config.set("graphics", "resizable", "0" if fixed_size else "1")
    Config.set("graphics", "fullscreen", "auto" if fullscreen else "0")
    Config.set("graphics", "show_cursor", "1")
    Config.set("graphics", "vsync", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.profile not in ("bedside", "clinic"):
        args.profile = "bedside"
    configure_kivy(args.size, args.fullscreen and not args.screenshots,
                   fixed_size=bool(args.screenshots))
    import logging
    logging.basicConfig(level=logging.WARNING)

    from kiosk.ui import KioskApp

    if args.screenshots:
        from kiosk.shots import ScreenshotApp
        app = ScreenshotApp(outdir=args.screenshots, profile=args.profile,
                            lang=args.lang or "en")
        app.run()
        return app.exit_code

    from kivy.clock import Clock

    from appliance.paths import default_socket_path
    from kiosk.api import ApiLink

    socket_path = args.socket or default_socket_path()

    def api_factory(app):
        def dispatch(fn):
            Clock.schedule_once(lambda dt: fn(), 0)
        return ApiLink(socket_path, dispatch, app.on_state, app.on_connection)

    app = KioskApp(profile=args.profile, lang=args.lang or "en", api_factory=api_factory,
                   lang_forced=args.lang is not None)
    if os.environ.get("LUMBAREST_KIOSK_BENCH"):
        _bench_markers(app)
    app.run()
    return 0


def _bench_markers(app) -> None:
    """For bench/kiosk_bench.py: print when the first frame and the first live frame are shown."""
    from kivy.core.window import Window
    marks = {"first": False, "live": False}

    def on_flip(*_):
        if not marks["first"]:
            marks["first"] = True
            print(f"FIRST_FRAME {time.time():.3f}", flush=True)
        if not marks["live"] and app.live():
            marks["live"] = True
            print(f"FIRST_LIVE_FRAME {time.time():.3f}", flush=True)

    Window.bind(on_flip=on_flip)
    if os.environ.get("LUMBAREST_KIOSK_BENCH_TOUR"):
        _bench_tour(app)


def _bench_tour(app) -> None:
    """For bench/kiosk_bench.py: once live, show every screen once (two frames each), go back
    to Home and print ``TOUR_DONE``, so the memory of a kiosk that has been everywhere can be
    measured."""
    from kivy.clock import Clock

    names: list[str] = []

    def step(dt):
        if not names:
            if not app.live():
                Clock.schedule_once(step, 0.2)
                return
            names.extend(name for name in app.screens if name != "home")
            names.append(None)
        name = names.pop(0)
        if name is None:
            app.leave_staff()
            print(f"TOUR_DONE {time.time():.3f}", flush=True)
            return
        app._enter_staff(name)      # without the PIN: the bench only wants every screen built
        Clock.schedule_once(step, 0.1)

    Clock.schedule_once(step, 0.5)


if __name__ == "__main__":
    sys.exit(main())
