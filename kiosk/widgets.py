"""Kivy widgets of the kiosk: self-fitting labels and buttons, hold-to-stop, progress ring, trend
plot, number pad, and the layout checker used by the screenshot run."""

from __future__ import annotations

import time

from kivy.clock import Clock
from kivy.core.text import Label as CoreLabel
from kivy.graphics import Color, Line, Rectangle, RoundedRectangle
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, ObjectProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

from kiosk import logic

# Palette: light text on a dark blue-grey; every text/background pair is at least 7:1 except the
# muted secondary text (>= 4.5:1).
BG = (0.05, 0.07, 0.10, 1)
PANEL = (0.12, 0.15, 0.20, 1)
PANEL_HI = (0.19, 0.24, 0.32, 1)
TEXT = (1, 1, 1, 1)
MUTED = (0.80, 0.84, 0.90, 1)
ACCENT = (0.10, 0.38, 0.78, 1)
GREEN = (0.04, 0.42, 0.20, 1)
RED = (0.66, 0.08, 0.08, 1)
RED_HI = (0.95, 0.35, 0.30, 1)
HEAT = (1.0, 0.55, 0.10, 1)
TARGET = (0.55, 0.85, 1.0, 1)
DISABLED = (0.22, 0.24, 0.28, 1)
DISABLED_TEXT = (0.62, 0.65, 0.70, 1)

RING_PX = 5  # the white ring around a selected button
MIN_TOUCH_PX = 60  # 9 mm on a 7-inch 800x480 panel

# Bold by default: thin strokes are hard to read for older eyes.
FONT = "Roboto"
SYMBOL_FONT = "data/fonts/DejaVuSans.ttf"  # ships with Kivy; has arrows and the open-box space


def measure_fits(text: str, font_size: float, font_name: str, bold: bool, width: float,
                 height: float, wrap: bool, max_lines: int = 0) -> bool:
    """Whether ``text`` at ``font_size`` fits into ``width`` x ``height`` without clipping."""
    if not text:
        return True
    if width <= 0 or height <= 0:
        return False
    core = CoreLabel(text=text, font_size=font_size, font_name=font_name, bold=bold,
                     text_size=(width, None) if wrap else (None, None), halign="center")
    tw, th = core.render()  # the layout only: no texture is made
    if th > height + 0.5:
        return False
    if wrap:
        words = text.split()
        widest = max((core.get_extents(word)[0] for word in words), default=0)
        if widest > width - 1:  # Kivy breaks a word that does not fit, mid-word
            return False
        if max_lines:
            line_h = core.get_extents("Ag")[1]
            if th > line_h * max_lines * 1.35:
                return False
        return True
    return tw <= width - 1  # at the exact width Kivy would wrap the line


class FitLabel(Label):
    """A label that shrinks its font (down to ``min_font``) until its text fits its box.

    ``wrap`` lets the text break into lines; otherwise it stays on one line per ``\\n``.
    ``bg`` paints a rounded background.
    """

    base_font = NumericProperty(24)
    min_font = NumericProperty(12)
    wrap = BooleanProperty(False)
    max_lines = NumericProperty(0)
    pad_x = NumericProperty(6)
    pad_y = NumericProperty(2)
    bg = ListProperty([0, 0, 0, 0])
    radius = NumericProperty(10)
    fits = BooleanProperty(True)
    ellipsize = BooleanProperty(False)  # last resort: shorten with "…" at the minimum font

    def __init__(self, **kwargs):
        self._full = kwargs.get("text", "")
        kwargs.setdefault("bold", True)
        kwargs.setdefault("color", TEXT)
        kwargs.setdefault("halign", "center")
        kwargs.setdefault("valign", "middle")
        kwargs.setdefault("font_name", FONT)
        if "font_size" in kwargs and "base_font" not in kwargs:
            kwargs["base_font"] = kwargs["font_size"]
        super().__init__(**kwargs)
        with self.canvas.before:
            self._bg_color = Color(*self.bg)
            self._bg_rect = RoundedRectangle(pos=self.pos, size=self.size, radius=[self.radius])
        self._fit_trigger = Clock.create_trigger(self._fit, -1)
        self.bind(size=self._fit_trigger, text=self._fit_trigger, base_font=self._fit_trigger,
                  wrap=self._fit_trigger, bold=self._fit_trigger)
        self.bind(pos=self._paint, size=self._paint, bg=self._paint, radius=self._paint)
        self.font_size = self.base_font
        self._fit_trigger()

    def _paint(self, *_):
        self._bg_color.rgba = self.bg
        self._bg_rect.pos = self.pos
        self._bg_rect.size = self.size
        self._bg_rect.radius = [self.radius]

    def inner(self) -> tuple[float, float]:
        return (self.width - 2 * self.pad_x, self.height - 2 * self.pad_y)

    def set_text(self, text: str) -> None:
        """Set the text; an ``ellipsize`` label shows its last fitted short form at once."""
        if not self.ellipsize:
            self.text = text
            return
        self._full = text
        cache = getattr(self, "_short_cache", None)
        if cache and cache[0] == (text, tuple(self.size)):
            self.text = cache[1]
        else:
            self.text = text
            self._fit_trigger()

    def _fit(self, *_):
        w, h = self.inner()
        if w <= 2 or h <= 2:
            return
        cache = getattr(self, "_short_cache", None)
        if self.text != self._full and not (cache and cache[1] == self.text):
            self._full = self.text  # set directly through .text
        full = self._full if self.ellipsize else self.text
        # whole pixel sizes: SDL2_ttf keeps one open font per distinct size (up to 64), so
        # fractional sizes from the shrinking would each cost a font and its glyph cache
        size = float(int(self.base_font))
        while True:
            ok = measure_fits(full, size, self.font_name, self.bold, w, h, self.wrap,
                              self.max_lines)
            if ok or size <= self.min_font:
                break
            size = max(float(int(self.min_font)), float(int(size * 0.9)))
        text = full
        if not ok and self.ellipsize:
            words = full.split(" ")
            while len(words) > 1 and not ok:
                words.pop()
                text = " ".join(words).rstrip(" -\u2013,") + "\u2026"
                ok = measure_fits(text, size, self.font_name, self.bold, w, h, self.wrap,
                                  self.max_lines)
        self._short_cache = ((full, tuple(self.size)), text)
        if text != self.text:
            self.text = text
        self.fits = ok
        self.font_size = size
        self.text_size = (w, None)

    def fit_now(self):
        self._fit()
        self.texture_update()


def label(text="", size=24, **kwargs) -> FitLabel:
    return FitLabel(text=text, base_font=size, min_font=kwargs.pop("min_font", max(12, size * 0.5)),
                    **kwargs)


class KButton(ButtonBehavior, FitLabel):
    """A large, flat, rounded button with a solid colour; ``selected`` marks a chosen option."""

    fill = ListProperty(list(PANEL_HI))
    selected = BooleanProperty(False)
    callback = ObjectProperty(None, allownone=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("wrap", True)
        super().__init__(**kwargs)
        # the selection ring: the background turns white and this inner fill is inset by
        # RING_PX (a 3 px wide Kivy Line costs ~0.6 MB of vertices per button under llvmpipe)
        with self.canvas.before:
            self._inner_color = Color(0, 0, 0, 0)
            self._inner = RoundedRectangle(pos=self.pos, size=self.size, radius=[7])
        self.bind(fill=self._paint, state=self._paint, selected=self._paint,
                  disabled=self._paint)
        self._paint()

    def _paint(self, *_):
        if self.disabled:
            color = DISABLED
            self.color = DISABLED_TEXT
        else:
            color = ACCENT if self.selected else self.fill
            self.color = TEXT
        if self.state == "down":
            color = [c * 0.7 for c in color[:3]] + [1]
        ringed = self.selected and not self.disabled
        self.bg = [1, 1, 1, 1] if ringed else list(color)
        super()._paint()
        if hasattr(self, "_inner"):
            self._inner_color.rgba = list(color) if ringed else (0, 0, 0, 0)
            self._inner.pos = (self.x + RING_PX, self.y + RING_PX)
            self._inner.size = (max(0, self.width - 2 * RING_PX),
                                max(0, self.height - 2 * RING_PX))

    def on_release(self):
        if self.callback:
            self.callback()


def button(text, callback=None, size=26, fill=PANEL_HI, **kwargs) -> KButton:
    return KButton(text=text, base_font=size, min_font=kwargs.pop("min_font", max(13, size * 0.5)),
                   fill=list(fill), callback=callback, **kwargs)


class HoldButton(FitLabel):
    """Press and hold ``hold_s`` to fire ``on_hold``; a bar fills while it is held. A short tap
    does nothing but show ``hint``."""

    hold_s = NumericProperty(logic.HOLD_TO_STOP_S)
    progress = NumericProperty(0.0)
    fill = ListProperty(list(RED))
    hold_action = ObjectProperty(None, allownone=True)
    short_action = ObjectProperty(None, allownone=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("wrap", True)
        super().__init__(**kwargs)
        self.timer = logic.HoldTimer(self.hold_s)
        self._ev = None
        self._touch = None
        with self.canvas.before:
            self._pcolor = Color(*RED_HI)
            self._prect = RoundedRectangle(pos=self.pos, size=(0, self.height), radius=[10])
        self.bind(pos=self._paint_progress, size=self._paint_progress,
                  progress=self._paint_progress, fill=self._paint, disabled=self._paint)
        self._paint()

    def _paint(self, *_):
        self.bg = list(DISABLED if self.disabled else self.fill)
        self.color = DISABLED_TEXT if self.disabled else TEXT
        super()._paint()

    def _paint_progress(self, *_):
        self._prect.pos = self.pos
        self._prect.size = (self.width * self.progress, self.height)

    def on_touch_down(self, touch):
        if self.disabled or not self.collide_point(*touch.pos) or self._touch is not None:
            return super().on_touch_down(touch)
        touch.grab(self)
        self._touch = touch
        self.timer.press(time.monotonic())
        self._ev = Clock.schedule_interval(self._tick, 1 / 30)
        return True

    def _tick(self, *_):
        now = time.monotonic()
        self.progress = self.timer.progress(now)
        if self.timer.update(now):
            self._fire()

    def _fire(self):
        self.progress = 1.0
        if self.hold_action:
            self.hold_action()

    def on_touch_up(self, touch):
        if touch.grab_current is not self:
            return super().on_touch_up(touch)
        touch.ungrab(self)
        self._touch = None
        if self._ev:
            self._ev.cancel()
            self._ev = None
        fired_before = self.timer.fired
        if self.timer.release(time.monotonic()):
            self._fire()
        elif not fired_before and self.short_action:
            self.short_action()
        self.progress = 0.0
        return True


class Panel(BoxLayout):
    """A box with a solid rounded background."""

    bg = ListProperty(list(PANEL))
    radius = NumericProperty(12)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.canvas.before:
            self._c = Color(*self.bg)
            self._r = RoundedRectangle(pos=self.pos, size=self.size, radius=[self.radius])
        self.bind(pos=self._paint, size=self._paint, bg=self._paint)

    def _paint(self, *_):
        self._c.rgba = self.bg
        self._r.pos = self.pos
        self._r.size = self.size
        self._r.radius = [self.radius]


class Fill(FloatLayout):
    """A full-size layer painted with one colour."""

    bg = ListProperty(list(BG))

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.canvas.before:
            self._c = Color(*self.bg)
            self._r = Rectangle(pos=self.pos, size=self.size)
        self.bind(pos=self._paint, size=self._paint, bg=self._paint)

    def _paint(self, *_):
        self._c.rgba = self.bg
        self._r.pos = self.pos
        self._r.size = self.size


class ProgressRing(Widget):
    """A ring that fills clockwise with ``value`` (0..1)."""

    value = NumericProperty(0.0)
    thickness = NumericProperty(14)
    color = ListProperty(list(ACCENT))

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.canvas:
            self._bgc = Color(*PANEL_HI)
            self._bgl = Line(circle=(0, 0, 1), width=self.thickness)
            self._fgc = Color(*self.color)
            self._fgl = Line(circle=(0, 0, 1, 0, 0), width=self.thickness, cap="round")
        self.bind(pos=self._paint, size=self._paint, value=self._paint, color=self._paint,
                  thickness=self._paint)

    def _paint(self, *_):
        r = max(1.0, min(self.width, self.height) / 2 - self.thickness - 2)
        cx, cy = self.center
        self._bgl.width = self._fgl.width = self.thickness
        self._bgl.circle = (cx, cy, r)
        self._fgc.rgba = self.color
        angle = 360.0 * max(0.0, min(1.0, self.value))
        self._fgl.circle = (cx, cy, r, 0, angle if angle > 0.5 else 0.5)
        self._fgc.a = 1 if angle > 0.5 else 0


class TrendPlot(FloatLayout):
    """Mat temperature (solid) and target (thin, light blue) over the last minutes."""

    points = ListProperty([])       # [(t_s, mat_c|None, setpoint_c|None), ...]
    window_s = NumericProperty(600)   # the longest span shown
    min_span_s = NumericProperty(120)  # a fresh curve is drawn over at least this span
    font = NumericProperty(16)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hi_label = label("", self.font, halign="left", size_hint=(None, None), wrap=False)
        self.lo_label = label("", self.font, halign="left", size_hint=(None, None), wrap=False)
        self.add_widget(self.hi_label)
        self.add_widget(self.lo_label)
        with self.canvas.before:
            Color(*PANEL)
            self._bg = RoundedRectangle(pos=self.pos, size=self.size, radius=[10])
        self._trigger = Clock.create_trigger(self._draw, 0)
        self.bind(pos=self._trigger, size=self._trigger, points=self._trigger)

    def _draw(self, *_):
        self._bg.pos, self._bg.size = self.pos, self.size
        self.canvas.after.clear()
        lw = self.font * 3.6
        self.hi_label.size = self.lo_label.size = (lw, self.font * 1.5)
        self.hi_label.pos = (self.x + 2, self.top - self.font * 1.6)
        self.lo_label.pos = (self.x + 2, self.y + 2)
        px0, px1 = self.x + lw + 4, self.right - 10
        py0, py1 = self.y + 10, self.top - 10
        pts = list(self.points)
        setpoint = next((s for _, _, s in reversed(pts) if s is not None), None)
        lo, hi = logic.plot_range(pts, setpoint)
        self.hi_label.text = logic.fmt_temp(hi, 0)
        self.lo_label.text = logic.fmt_temp(lo, 0)
        if px1 - px0 < 10 or py1 - py0 < 10:
            return
        t_end = pts[-1][0] if pts else 0.0
        data_span = t_end - pts[0][0] if pts else 0.0
        if data_span <= self.window_s:   # a young curve starts at the left and grows rightwards
            span = max(self.min_span_s, data_span)
            t0 = pts[0][0] if pts else 0.0
        else:
            span = self.window_s
            t0 = t_end - span

        def xy(t, v):
            x = px0 + (px1 - px0) * max(0.0, (t - t0) / span)
            y = py0 + (py1 - py0) * (v - lo) / (hi - lo)
            return x, y

        with self.canvas.after:
            Color(0.35, 0.40, 0.48, 1)
            Line(points=[px0, py0, px1, py0], width=1)
            Line(points=[px0, py0, px0, py1], width=1)
            # target line
            Color(*TARGET)
            seg = []
            for t, _, s in pts:
                if s is None:
                    if len(seg) >= 4:
                        Line(points=seg, width=1.5)
                    seg = []
                    continue
                seg += xy(t, s)
            if len(seg) >= 4:
                Line(points=seg, width=1.5)
            # mat temperature: gaps where the reading was invalid
            Color(*HEAT)
            seg = []
            for t, m, _ in pts:
                if m is None:
                    if len(seg) >= 4:
                        Line(points=seg, width=2.5)
                    seg = []
                    continue
                seg += xy(t, m)
            if len(seg) >= 4:
                Line(points=seg, width=2.5)


class NumberPad(GridLayout):
    """A 3 x 4 telephone-style pad: 1-9, back, 0, OK."""

    def __init__(self, on_key, ok_text="OK", font=30, **kwargs):
        kwargs.setdefault("spacing", 8)
        super().__init__(cols=3, **kwargs)
        self.keys = {}
        for key in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "back", "0", "ok"]:
            text = {"back": "\u2190", "ok": ok_text}.get(key, key)
            fill = GREEN if key == "ok" else PANEL_HI
            b = button(text, (lambda k=key: on_key(k)), size=font, fill=fill, wrap=False)
            if key == "back":
                b.font_name = SYMBOL_FONT
            b.key = key
            self.keys[key] = b
            self.add_widget(b)


def fill_fields(grid: GridLayout, rows, size: float) -> dict:
    """Name/value rows into a two-column ``grid`` (names muted); returns the value labels by key,
    for the screen to fill on refresh. ``rows``: (key, name) pairs."""
    fields = {}
    for key, text in rows:
        grid.add_widget(label(text, size, halign="left", color=MUTED, wrap=True, max_lines=2))
        fields[key] = label("", size, halign="left", wrap=True, max_lines=2)
        grid.add_widget(fields[key])
    return fields


def scroll(child) -> ScrollView:
    view = ScrollView(do_scroll_x=False, bar_width=10, scroll_type=["bars", "content"])
    view.add_widget(child)
    return view


# ---------------------------------------------------------------------------------------------
# Layout checks (the screenshot run fails when any of these finds a problem)

def _visible_walk(widget, inside_scroll=False):
    if widget.opacity <= 0.01:
        return
    yield widget, inside_scroll
    inner = inside_scroll or isinstance(widget, ScrollView)
    for child in widget.children:
        yield from _visible_walk(child, inner)


def layout_problems(root, window_size, where: str = "") -> list[str]:
    """Clipped text, widgets outside the window or their layout box, too-small touch targets."""
    problems = []
    ww, wh = window_size
    for widget, in_scroll in _visible_walk(root):
        name = f"{where}: {type(widget).__name__}"
        text = getattr(widget, "text", "")
        if isinstance(widget, Label) and text:
            name += f" {text[:40]!r}"
        if widget.width < 0 or widget.height < 0:
            problems.append(f"{name} has a negative size {widget.size}")
            continue
        if isinstance(widget, FitLabel) and text:
            w, h = widget.inner()
            if not measure_fits(text, widget.font_size, widget.font_name, widget.bold, w, h,
                                widget.wrap, widget.max_lines):
                problems.append(f"{name} is clipped (font {widget.font_size:.0f} in "
                                f"{widget.width:.0f}x{widget.height:.0f})")
            elif widget.font_size < 11.5:
                problems.append(f"{name} needs a font below 12 px ({widget.font_size:.1f})")
            else:
                widget.texture_update()
                lines = getattr(widget._label, "_cached_lines", None)
                if lines is not None and not widget.wrap and len(lines) > text.count("\n") + 1:
                    problems.append(f"{name} wraps although it must stay on one line")
                elif lines is not None:
                    rendered = [w for line in lines
                                for w in " ".join(x.text for x in line.words).split()]
                    if rendered and rendered != text.split():
                        problems.append(f"{name} breaks a word across lines")
        elif isinstance(widget, Label) and text:
            widget.texture_update()
            tw, th = widget.texture_size
            if tw > widget.width + 1 or th > widget.height + 1:
                problems.append(f"{name} is clipped ({tw}x{th} in {widget.size})")
        if in_scroll:
            continue
        x0, y0 = widget.to_window(widget.x, widget.y)
        x1, y1 = widget.to_window(widget.right, widget.top)
        if x0 < -1 or y0 < -1 or x1 > ww + 1 or y1 > wh + 1:
            problems.append(f"{name} is outside the window ({x0:.0f},{y0:.0f})-({x1:.0f},{y1:.0f})")
        parent = widget.parent
        if isinstance(parent, (BoxLayout, GridLayout)) and not isinstance(widget, Label) or \
                isinstance(parent, (BoxLayout, GridLayout)):
            if (widget.x < parent.x - 1 or widget.y < parent.y - 1
                    or widget.right > parent.right + 1 or widget.top > parent.top + 1):
                problems.append(f"{name} overflows its {type(parent).__name__}")
        if isinstance(widget, (ButtonBehavior, HoldButton)) and not widget.disabled:
            if min(widget.width, widget.height) < MIN_TOUCH_PX - 0.5:
                problems.append(f"{name} is a touch target of only "
                                f"{widget.width:.0f}x{widget.height:.0f} px")
    return problems
