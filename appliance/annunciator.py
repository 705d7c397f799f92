"""What the panel's buzzer and status LED do, computed from the state object and monotonic time.

Pure logic: :meth:`Annunciator.update` takes the state (``Appliance.snapshot()``) and
``time.monotonic()`` seconds and returns an :class:`Output`; :mod:`hw.panel` plays it. The
control loop calls it every tick (0.25 s), which is too coarse for 100 ms pulses, so a sound is
handed over as a whole :class:`Pattern`: ``Output.alarm`` is the repeating alarm pattern that
should be sounding now (the buzzer device repeats it on its own thread, with exact timing, until
it changes) and ``Output.once`` a one-off signal to play now (a new LOW alarm, the chime).

Burst patterns (IEC 60601-1-8 conventions, ``../shared/DOMAIN.md`` §2):

========  ======  =======  =======  ===========  ==============================================
priority  pulses  pulse    gap      burst        repeat (start to start) / silence in between
========  ======  =======  =======  ===========  ==============================================
HIGH      10      100 ms   50 ms    1.45 s       every 3.97 s / 2.52 s
MEDIUM    3       150 ms   150 ms   0.75 s       every 8.0 s / 7.25 s
LOW       2       150 ms   150 ms   0.45 s       once, when a new LOW alarm appears
chime     1       400 ms   —        0.4 s        once, when a session finishes (information)
========  ======  =======  =======  ===========  ==============================================

The HIGH figures satisfy "10-pulse burst repeating every 2.5–4 s" whether the repeat is read as
start-to-start (3.97 s) or as the silence between bursts (2.52 s), with pulses in 100–200 ms and
the gap within IEC's 50–125 ms pulse spacing for HIGH. That only works near the edges (10 pulses
of at least 100 ms and 9 gaps of at least 50 ms take 1.45 s). The buzzer thread never shortens a
pulse or a gap (a late wake-up lengthens them) and times each burst from the previous burst's
start, so the period holds and thread latency comes out of the silence (measured on mock pins:
pulses 100–106 ms, gaps 50–55 ms, period 3.98 s, silence 2.50 s). The chime's single 400 ms tone is longer
than any alarm pulse so it cannot be mistaken for one.

Status LED: HIGH alarm → fast blink 2 Hz (IEC 1.4–2.8 Hz); MEDIUM → 0.67 Hz (IEC 0.4–0.8 Hz);
heating (session or pre-warm) → slow blink 0.25 Hz; otherwise steady on (idle, LOW alarms — IEC
shows LOW steady; the screen says which).

Audio paused (``state["audio"]["paused"]``, ``alarm.silence``): no alarm sound; the LED keeps
showing the alarm. The alarm itself is never cleared here.
"""

from __future__ import annotations

from dataclasses import dataclass

PRIORITIES = ("high", "medium", "low")


@dataclass(frozen=True)
class Pattern:
    name: str
    pulses: int
    on_s: float
    off_s: float
    repeat_s: float | None        # start-to-start; None: played once

    @property
    def burst_s(self) -> float:
        return self.pulses * self.on_s + (self.pulses - 1) * self.off_s

    @property
    def silence_s(self) -> float | None:
        return None if self.repeat_s is None else self.repeat_s - self.burst_s

    def level_at(self, t_s: float) -> bool:
        """Whether the buzzer sounds ``t_s`` after the burst started (within one burst)."""
        if t_s < 0 or t_s >= self.burst_s:
            return False
        return (t_s % (self.on_s + self.off_s)) < self.on_s


@dataclass(frozen=True)
class Blink:
    on_s: float
    off_s: float | None            # None: steady on

    @property
    def hz(self) -> float | None:
        return None if self.off_s is None else 1.0 / (self.on_s + self.off_s)


PATTERNS = {
    "high": Pattern("high", 10, 0.100, 0.050, 3.97),
    "medium": Pattern("medium", 3, 0.150, 0.150, 8.0),
    "low": Pattern("low", 2, 0.150, 0.150, None),
    "chime": Pattern("chime", 1, 0.400, 0.0, None),
}

LED = {
    "high": Blink(0.25, 0.25),        # 2 Hz
    "medium": Blink(0.75, 0.75),      # 0.67 Hz
    "heating": Blink(2.0, 2.0),       # 0.25 Hz
    "steady": Blink(1.0, None),
}


@dataclass(frozen=True)
class Output:
    led: str                       # a key of LED
    alarm: Pattern | None          # the repeating alarm sound wanted now (None: quiet)
    once: Pattern | None           # a one-off signal to start now
    priority: str | None           # the highest alarm priority present
    audio_paused: bool

    @property
    def blink(self) -> Blink:
        return LED[self.led]


def buzzer_level(pattern: Pattern, since_start_s: float) -> bool:
    """Whether a repeating ``pattern`` started ``since_start_s`` ago sounds now."""
    if pattern.repeat_s is None:
        return pattern.level_at(since_start_s)
    return pattern.level_at(since_start_s % pattern.repeat_s)


class Annunciator:
    """Remembers what it already signalled; everything else comes from the state and the time."""

    def __init__(self):
        self._low_heard: set[str] = set()
        self._last_session_state: str | None = None

    def update(self, state: dict, now_s: float) -> Output:
        alarms = [a for a in state.get("alarms") or [] if a.get("priority") in PRIORITIES]
        top = min((a["priority"] for a in alarms), key=PRIORITIES.index, default=None)
        paused = bool((state.get("audio") or {}).get("paused"))
        session_state = (state.get("session") or {}).get("state")
        finished = session_state == "done" and self._last_session_state not in (None, "done")
        self._last_session_state = session_state

        low_codes = {a["code"] for a in alarms if a["priority"] == "low"}
        new_low = low_codes - self._low_heard
        self._low_heard &= low_codes               # a LOW alarm that comes back sounds again

        alarm = PATTERNS[top] if top in ("high", "medium") and not paused else None
        once = None
        if new_low and not paused and top not in ("high", "medium"):
            once = PATTERNS["low"]
        self._low_heard |= new_low                 # heard, or masked by a higher alarm or paused
        if once is None and finished and top is None:
            once = PATTERNS["chime"]

        if top == "high":
            led = "high"
        elif top == "medium":
            led = "medium"
        elif state.get("heating") or (state.get("prewarm") or {}).get("active") or \
                (session_state == "running" and state.get("setpoint_c") is not None):
            led = "heating"
        else:
            led = "steady"
        return Output(led, alarm, once, top, paused)
