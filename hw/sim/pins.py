"""gpiozero mock pins wired to the thermal model.

:class:`MatPinFactory` is gpiozero's :class:`~gpiozero.pins.mock.MockFactory` with PWM-capable
pins that report every level change, so the heater code drives mock pins exactly as it drives
real ones, and the mat model sees the result at the moment it happens.
"""

import math
from typing import Callable

from gpiozero.pins.mock import MockFactory, MockPWMPin


class ObservedPWMPin(MockPWMPin):
    """A :class:`MockPWMPin` that tells its factory about every change of its output level."""

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed:
            self.factory.pin_changed(self.info.name, float(value))
        return changed


class MatPinFactory(MockFactory):
    """A mock pin factory whose output changes are delivered to ``on_change(pin_name, level)``."""

    def __init__(self, on_change: Callable[[str, float], None]):
        super().__init__(pin_class=ObservedPWMPin)
        self._on_change = on_change

    def pin_changed(self, name: str, level: float) -> None:
        self._on_change(name, level)


class LgpioPWMPin(MockPWMPin):
    """A mock pin that behaves as gpiozero's lgpio pins do on a Raspberry Pi, where
    :class:`MockPWMPin` is kinder (DOMAIN.md §10):

    - software PWM applies a duty change at the start of the next PWM cycle, and a PWM that was
      just started begins its first cycle one period later (at 1 Hz "off" written as a duty can
      lag a second);
    - stopping PWM (``frequency = None``) takes effect at once, and a plain write then drives the
      line at once;
    - opening and closing a pin claim the line as an input with the pull **disabled**, so a
      released line floats at whatever level it had, unless a pull is set after the close.

    ``line`` records what the line actually does, ``(t_s, level)``, on the factory's clock;
    :meth:`level` is the level now. ``states`` still records what was asked, as in gpiozero.
    """

    def __init__(self, factory, info):
        self._line_ready = False
        super().__init__(factory, info)
        self.line: list[tuple[float, float]] = [(self._now(), float(self._state))]
        self._pending: tuple[float, float] | None = None
        self._pwm_start_s = 0.0
        self._line_ready = True

    def _now(self) -> float:
        return self.factory.clock.monotonic()

    def _drive(self, t_s: float, level: float) -> None:
        if level != self.line[-1][1]:
            self.line.append((t_s, level))
            self.factory.events.append((t_s, self.info.name, level))

    def _settle(self) -> None:
        if self._pending is not None and self._pending[0] <= self._now():
            self._drive(*self._pending)
            self._pending = None

    def level(self) -> float:
        self._settle()
        return self.line[-1][1]

    def _change_state(self, value):
        changed = super()._change_state(value)
        if self._line_ready and self._function == "input" and self._pull != "floating":
            self._drive(self._now(), float(value))     # an input is held by its pull
        return changed

    def _set_state(self, value):
        self._settle()
        super()._set_state(value)
        now = self._now()
        if self._frequency:
            period_s = 1.0 / self._frequency
            cycles = max(1, math.ceil((now - self._pwm_start_s) / period_s - 1e-9))
            self._pending = (self._pwm_start_s + cycles * period_s, float(value))
        else:
            self._drive(now, float(bool(value)))

    def _set_frequency(self, value):
        self._settle()
        if value is not None:
            assert self._function == "output"
            if self._frequency is None:
                self._pwm_start_s = self._now()
        else:
            self._pending = None   # cancelled at once; the line stays where it was until written
        self._frequency = value

    def close(self):
        self.frequency = None
        self.when_changed = None
        self._pull = "floating"       # lgpio: gpio_claim_input(..., SET_PULL_NONE)
        self.function = "input"


class LgpioMockFactory(MockFactory):
    """A :class:`MockFactory` of :class:`LgpioPWMPin` on ``clock``; ``events`` lists every change
    of any line as ``(t_s, pin name, level)`` in the order it happened."""

    def __init__(self, clock):
        super().__init__(pin_class=LgpioPWMPin)
        self.clock = clock
        self.events: list[tuple[float, str, float]] = []
