"""Presentation rules of the kiosk, free of Kivy so they can be unit-tested without a display.

Formatting of the state object, which screen to show, the alarm presentation (IEC 60601-1-8
colours and flash rates), hold-to-stop timing, PIN entry with lockout, idle dimming and the trend
buffer behind the session plot.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from kiosk.i18n import N_, _, language

# ---------------------------------------------------------------------------------------------
# Formatting

DASH = "\u2013"  # shown instead of a number that is not valid


def fmt_number(value: float, decimals: int = 1) -> str:
    text = f"{value:.{decimals}f}"
    return text.replace(".", ",") if language() == "de" else text


def fmt_temp(value_c: float | None, decimals: int = 1) -> str:
    """A temperature for display; ``None`` (invalid reading) is a dash, never an old number."""
    if value_c is None or not isinstance(value_c, (int, float)) or math.isnan(value_c):
        return f"{DASH} \u00b0C"
    return f"{fmt_number(float(value_c), decimals)} \u00b0C"


def fmt_mmss(seconds: float | None) -> str:
    """Remaining time as mm:ss, rounded up so 0:00 is shown only at the very end."""
    if seconds is None or seconds < 0:
        seconds = 0
    total = int(math.ceil(seconds - 1e-6))
    minutes, secs = divmod(total, 60)
    return f"{minutes:02d}:{secs:02d}"


def fmt_minutes(minutes: float | int | None) -> str:
    if minutes is None:
        return DASH
    return _("{n} min").format(n=int(round(minutes)))


PROGRAM_NAMES = {
    "quick": N_("Short"),
    "short": N_("Short"),
    "standard": N_("Standard"),
    "deep": N_("Long"),
    "long": N_("Long"),
    "traction": N_("Traction only"),
}

LEVEL_NAMES = {
    "off": N_("Off"),
    "low": N_("Low"),
    "medium": N_("Medium"),
    "high": N_("High"),
}

LEVEL_ORDER = ("off", "low", "medium", "high")


def program_label(name: str | None) -> str:
    if not name:
        return DASH
    return _(PROGRAM_NAMES[name]) if name in PROGRAM_NAMES else name.replace("_", " ").title()


def level_label(name: str | None) -> str:
    if not name:
        return DASH
    return _(LEVEL_NAMES[name]) if name in LEVEL_NAMES else name.replace("_", " ").title()


def program_is_heatless(name: str | None) -> bool:
    return name == "traction"


def sorted_programs(programs: dict) -> list[tuple[str, float]]:
    """Programs by duration, the heat-free traction program last."""
    return sorted(programs.items(), key=lambda kv: (kv[0] == "traction", kv[1] or 0, kv[0]))


def sorted_levels(levels: dict) -> list[tuple[str, float | None]]:
    def key(kv):
        name, value = kv
        return (LEVEL_ORDER.index(name) if name in LEVEL_ORDER else 99, value or 0, name)
    return sorted(levels.items(), key=key)


def phase_text(session: dict | None) -> str:
    """The phase in plain words."""
    if not session:
        return ""
    state = session.get("state")
    if state == "paused":
        return _("Paused")
    if state == "running":
        if session.get("phase") == "warming":
            return _("Warming up")
        return _("Therapy")
    return ""


OUTCOME_TEXT = {
    "done": N_("Session complete"),
    "stopped": N_("Session stopped"),
    "fault": N_("Session ended because of a fault"),
    "interrupted": N_("The last session was interrupted"),
}


def outcome_text(session: dict | None) -> str:
    state = (session or {}).get("state")
    if state in OUTCOME_TEXT:
        return _(OUTCOME_TEXT[state])
    return ""


ACTIVE_STATES = ("running", "paused")
ENDED_STATES = ("done", "stopped", "fault", "interrupted")


def session_active(state: dict | None) -> bool:
    return bool(state) and (state.get("session") or {}).get("state") in ACTIVE_STATES


def ended_key(state: dict | None) -> tuple | None:
    """An identity for an ended session, so the Done screen can be dismissed once per session."""
    session = (state or {}).get("session") or {}
    if session.get("state") not in ENDED_STATES:
        return None
    return (session.get("state"), session.get("program"), session.get("level"),
            session.get("planned_s"), round(float(session.get("elapsed_s") or 0), 0))


def main_screen_for(state: dict | None, connected: bool, dismissed: tuple | None) -> str:
    """Which of the session-flow screens the state calls for: lost, session, done or home."""
    if not connected or state is None:
        return "lost"
    session = state.get("session") or {}
    if session.get("state") in ACTIVE_STATES:
        return "session"
    key = ended_key(state)
    if key is not None and key != dismissed:
        return "done"
    return "home"


def progress_fraction(session: dict | None) -> float:
    session = session or {}
    planned = float(session.get("planned_s") or 0)
    remaining = float(session.get("remaining_s") or 0)
    if planned <= 0:
        return 0.0
    return max(0.0, min(1.0, 1.0 - remaining / planned))


# ---------------------------------------------------------------------------------------------
# Alarms (IEC 60601-1-8)

PRIORITY_RANK = {"high": 3, "medium": 2, "low": 1, "info": 0}


@dataclass(frozen=True)
class AlarmStyle:
    background: tuple      # RGBA while lit
    dim_background: tuple  # RGBA in the dark half of a flash
    text: tuple            # RGBA of the text, high contrast on both backgrounds
    flash_hz: float        # 0 = steady
    label: str             # untranslated priority name


ALARM_STYLES = {
    # HIGH: red, flashing 2 Hz (1.4-2.8 Hz allowed).
    "high": AlarmStyle((0.80, 0.05, 0.05, 1), (0.45, 0.02, 0.02, 1), (1, 1, 1, 1), 2.0,
                       N_("Urgent alarm")),
    # MEDIUM: yellow, flashing 0.5 Hz (0.4-0.8 Hz allowed).
    "medium": AlarmStyle((1.0, 0.80, 0.0, 1), (0.75, 0.58, 0.0, 1), (0, 0, 0, 1), 0.5,
                         N_("Alarm")),
    # LOW: cyan, steady.
    "low": AlarmStyle((0.0, 0.78, 0.85, 1), (0.0, 0.78, 0.85, 1), (0, 0, 0, 1), 0.0,
                      N_("Notice")),
}


def alarm_style(priority: str) -> AlarmStyle:
    return ALARM_STYLES.get(priority, ALARM_STYLES["low"])


def flash_lit(priority: str, t: float) -> bool:
    """Whether the alarm colour is lit at time ``t`` (seconds): 50 % duty at the flash rate."""
    hz = alarm_style(priority).flash_hz
    if hz <= 0:
        return True
    return (t * hz) % 1.0 < 0.5


def overlay_alarms(alarms: list | None) -> list[dict]:
    """Alarms that get the overlay (high, medium, low), the most urgent and oldest first.

    Information signals (priority ``info``) clear themselves and are not shown as an alarm.
    """
    shown = [a for a in (alarms or []) if PRIORITY_RANK.get(a.get("priority"), 0) > 0]
    return sorted(shown, key=lambda a: (-PRIORITY_RANK[a["priority"]], a.get("since") or ""))


# Texts the appliance sends in its alarms (English); shown translated when the catalogue knows
# them, as sent otherwise.
APPLIANCE_TEXTS = (
    N_("Temperature sensor fault"),
    N_("The mat's temperature sensor is not connected or is broken."),
    N_("The heater is off. The session can go on without heat. Call service if this repeats."),
)


def _tr(text: str | None) -> str:
    return _(text) if text else ""


def notice_text(notices: list | None) -> str:
    """The first LOW notice of ``status.notices`` in the kiosk's language (its numbers come as
    parameters), or ""; a notice is a line on the session screen, never an overlay."""
    for notice in notices or []:
        params = notice.get("params") or {}
        if notice.get("code") == "cannot_reach" and "holding_c" in params:
            return _("The mat cannot reach {level}; it holds {c} °C. The session goes on.").format(
                level=level_label(params.get("level")), c=f"{params['holding_c']:.1f}")
        return notice.get("text") or ""
    return ""


def alarm_lines(alarm: dict) -> dict:
    """The words of the overlay: what happened, whether the heater is off, what to do."""
    return {
        "title": _tr(alarm.get("title")) or _("Alarm"),
        "text": _tr(alarm.get("text")),
        "heater": _("The heater is off.") if alarm.get("heater_off") else "",
        "advice": _tr(alarm.get("advice")),
        "still_present": bool(alarm.get("present")),
        "needs": alarm.get("needs") or "ack",
    }


AUDIO_PAUSE_S = 120.0  # IEC 60601-1-8 audio paused: the signal returns by itself


@dataclass
class AudioPause:
    """Alarm audio pause: silence for :data:`AUDIO_PAUSE_S`, ended early by a new alarm."""

    until: float = 0.0
    codes: frozenset = frozenset()

    def pause(self, now: float, codes) -> None:
        self.until = now + AUDIO_PAUSE_S
        self.codes = frozenset(codes)

    def paused(self, now: float, codes) -> bool:
        if now >= self.until:
            return False
        return frozenset(codes) <= self.codes


# ---------------------------------------------------------------------------------------------
# Hold to stop

HOLD_TO_STOP_S = 1.5


@dataclass
class HoldTimer:
    """Press and hold: fires once when held for ``hold_s``; a shorter press does nothing."""

    hold_s: float = HOLD_TO_STOP_S
    pressed_at: float | None = None
    fired: bool = False

    def press(self, now: float) -> None:
        self.pressed_at = now
        self.fired = False

    def progress(self, now: float) -> float:
        if self.pressed_at is None:
            return 0.0
        return max(0.0, min(1.0, (now - self.pressed_at) / self.hold_s))

    def update(self, now: float) -> bool:
        """Call while held; True exactly once, when the hold time is reached."""
        if self.pressed_at is None or self.fired:
            return False
        if now - self.pressed_at >= self.hold_s:
            self.fired = True
            return True
        return False

    def release(self, now: float) -> bool:
        """The finger lifted; True if this completed the hold (and it had not fired yet)."""
        fire = self.update(now)
        self.pressed_at = None
        return fire


# ---------------------------------------------------------------------------------------------
# PIN entry

PIN_MAX = 8


@dataclass
class PinEntry:
    """On-screen PIN entry; the appliance checks the PIN and enforces the lockout."""

    digits: str = ""
    locked_until: float = 0.0
    message: str = ""

    def press(self, key: str, now: float) -> None:
        if self.locked(now):
            return
        if key == "back":
            self.digits = self.digits[:-1]
        elif key == "clear":
            self.digits = ""
        elif key.isdigit() and len(key) == 1 and len(self.digits) < PIN_MAX:
            self.digits += key
            self.message = ""

    def masked(self) -> str:
        return "\u25cf " * len(self.digits) if self.digits else ""

    def can_submit(self, now: float) -> bool:
        return bool(self.digits) and not self.locked(now)

    def take(self) -> str:
        pin, self.digits = self.digits, ""
        return pin

    def locked(self, now: float) -> bool:
        return now < self.locked_until

    def locked_remaining(self, now: float) -> float:
        return max(0.0, self.locked_until - now)

    def rejected(self, now: float, data: dict | None, message: str = "") -> None:
        """The appliance refused the PIN (-32003); ``data.locked_s`` means locked out."""
        data = data or {}
        locked_s = data.get("locked_s")
        self.digits = ""
        if locked_s:
            self.locked_until = now + float(locked_s)
            self.message = ""
        else:
            left = data.get("tries_left")
            if left is not None:
                self.message = _("Wrong PIN. {n} tries left.").format(n=left)
            else:
                self.message = _("Wrong PIN. Please try again.")

    def lock_text(self, now: float) -> str:
        if not self.locked(now):
            return ""
        return _("Too many wrong tries. Locked for {t}.").format(
            t=fmt_mmss(self.locked_remaining(now)))


# ---------------------------------------------------------------------------------------------
# Idle dimming

@dataclass
class IdleDimmer:
    """The screen dims after ``sleep_min`` without a touch, never during a session or an alarm."""

    sleep_min: float = 5.0
    last_activity: float = 0.0

    def touch(self, now: float) -> None:
        self.last_activity = now

    def should_dim(self, now: float, session_running: bool, alarm_shown: bool) -> bool:
        if session_running or alarm_shown or not self.sleep_min or self.sleep_min <= 0:
            return False
        return now - self.last_activity >= self.sleep_min * 60.0


# ---------------------------------------------------------------------------------------------
# Trend plot data

@dataclass
class TrendBuffer:
    """Mat temperature and setpoint from the pushed states, the last ``window_s`` seconds.

    Invalid readings (``mat_c`` null) are kept as gaps, never filled with the last value.
    """

    window_s: float = 600.0
    points: deque = field(default_factory=deque)
    session_key: tuple | None = None

    def add(self, t: float, state: dict) -> None:
        session = state.get("session") or {}
        key = (session.get("program"), session.get("level"), session.get("planned_s"))
        if session.get("state") not in ACTIVE_STATES:
            return
        if key != self.session_key:
            self.points.clear()
            self.session_key = key
        if self.points and t - self.points[-1][0] < 0.9:
            return  # one point a second is plenty for a plot of minutes
        mat = state.get("mat_c")
        if not isinstance(mat, (int, float)):
            mat = None
        setpoint = state.get("setpoint_c")
        if not isinstance(setpoint, (int, float)):
            setpoint = None
        self.points.append((t, mat, setpoint))
        while self.points and t - self.points[0][0] > self.window_s:
            self.points.popleft()

    def reset(self) -> None:
        self.points.clear()
        self.session_key = None


def plot_range(points, setpoint: float | None = None) -> tuple[float, float]:
    """A y range in °C that includes the data and the target with a margin, at least 6 °C tall."""
    values = [p for _, m, s in points for p in (m, s) if p is not None]
    if setpoint is not None:
        values.append(setpoint)
    if not values:
        return (20.0, 42.0)
    lo, hi = min(values), max(values)
    lo, hi = lo - 1.0, hi + 1.0
    if hi - lo < 6.0:
        mid = (hi + lo) / 2
        lo, hi = mid - 3.0, mid + 3.0
    return (math.floor(lo), math.ceil(hi))


def summary(state: dict | None) -> dict:
    """The Done screen's numbers."""
    session = (state or {}).get("session") or {}
    elapsed = session.get("elapsed_s")
    return {
        "outcome": outcome_text(session),
        "minutes": fmt_minutes((elapsed or 0) / 60.0) if elapsed is not None else DASH,
        "mean": fmt_temp(session.get("mean_c")),
        "program": program_label(session.get("program")),
        "level": level_label(session.get("level")),
        "reason": session.get("reason") or "",
    }
