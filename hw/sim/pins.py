"""gpiozero mock pins wired to the thermal model.

:class:`MatPinFactory` is gpiozero's :class:`~gpiozero.pins.mock.MockFactory` with PWM-capable
pins that report every level change, so the heater code drives mock pins exactly as it drives
real ones, and the mat model sees the result at the moment it happens.
"""

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
