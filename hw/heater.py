"""The mat heater: a solid-state relay driven by slow PWM, an optional series relay, a heartbeat.

A zero-crossing AC SSR can only switch at mains zero crossings, so the element is driven by
*time-proportional* PWM: at the default 1 Hz one period holds 50 (or 60) half-cycles and the duty
steps in 2 % of a period. A DC heater behind a MOSFET can use a faster ``frequency_hz``.

The series relay is a mechanical break in the heater supply, closed only while the appliance is
healthy and heat is wanted. SSRs usually fail *closed* (welded, stuck on); the relay is what the
software can still open then.
"""

import logging

from gpiozero import DigitalOutputDevice, OutputDevice, PWMOutputDevice

log = logging.getLogger(__name__)


class Heater:
    """The SSR output and the optional series relay, with one rule: :meth:`off` never raises.

    :param ssr_pin: GPIO of the SSR input.
    :param relay_pin: GPIO of the series relay coil driver, or ``None`` when none is fitted.
    :param frequency_hz: PWM frequency of the SSR output.
    :param ssr_active_high: ``True`` when a high pin turns the SSR on.
    :param relay_active_high: ``True`` when a high pin closes the relay.
    :param pin_factory: a gpiozero pin factory; ``None`` for gpiozero's default.
    """

    def __init__(self, ssr_pin: int, *, relay_pin: int | None = None, frequency_hz: float = 1.0,
                 ssr_active_high: bool = True, relay_active_high: bool = True, pin_factory=None):
        self._ssr = PWMOutputDevice(ssr_pin, active_high=ssr_active_high, initial_value=0,
                                    frequency=frequency_hz, pin_factory=pin_factory)
        self._relay = None
        if relay_pin is not None:
            try:
                self._relay = OutputDevice(relay_pin, active_high=relay_active_high,
                                           initial_value=False, pin_factory=pin_factory)
            except Exception:
                self._ssr.close()
                raise
        self._duty = 0.0
        self.relay_cycles = 0

    @property
    def has_relay(self) -> bool:
        return self._relay is not None

    @property
    def duty(self) -> float:
        """The commanded SSR duty, 0..1."""
        return self._duty

    @property
    def relay_closed(self) -> bool:
        """Whether the series relay is closed; ``True`` when no relay is fitted (nothing breaks)."""
        return self._relay is None or bool(self._relay.value)

    def set_duty(self, duty: float) -> None:
        """Drive the SSR at ``duty`` (clamped to 0..1)."""
        duty = min(1.0, max(0.0, float(duty)))
        if duty != self._duty:
            self._ssr.value = duty
            self._duty = duty

    def close_relay(self) -> None:
        if self._relay is not None and not self._relay.value:
            self._relay.on()
            self.relay_cycles += 1

    def open_relay(self) -> None:
        if self._relay is not None and self._relay.value:
            self._relay.off()

    def off(self) -> None:
        """SSR off and relay open. Never raises: it is called from every failure path."""
        self._duty = 0.0
        for device in (self._ssr, self._relay):
            if device is None:
                continue
            try:
                device.value = 0
            except Exception:  # noqa: BLE001 - the off path must reach the next device
                log.exception("could not drive %s off", device)

    def close(self) -> None:
        """Turn off, then release the pins (gpiozero leaves them as inputs: fit pull-downs)."""
        self.off()
        for device in (self._ssr, self._relay):
            if device is not None:
                try:
                    device.close()
                except Exception:  # noqa: BLE001
                    log.exception("could not release %s", device)


class Heartbeat:
    """A pin that toggles on every healthy control cycle.

    An external retriggerable monostable (see ``hw/README.md``) gates the SSR with it: when the
    toggling stops — hung process, crashed Pi, a pin frozen high or low — the gate opens within its
    timeout, whatever the SSR pin does.
    """

    def __init__(self, pin: int, *, pin_factory=None):
        self._device = DigitalOutputDevice(pin, initial_value=False, pin_factory=pin_factory)

    def beat(self) -> None:
        self._device.toggle()

    def close(self) -> None:
        try:
            self._device.off()
            self._device.close()
        except Exception:  # noqa: BLE001
            log.exception("could not release the heartbeat pin")


def failsafe_off(pins: list[tuple[int, bool]], *, pin_factory=None) -> list[str]:
    """Drive each ``(pin, active_high)`` to its inactive level; return the problems met.

    For ``lumbarest-appliance --failsafe-off``, run by systemd after the appliance stopped for
    any reason (even SIGKILL), when the pins may have been left at their last level.
    """
    problems = []
    for pin, active_high in pins:
        try:
            device = OutputDevice(pin, active_high=active_high, initial_value=False,
                                  pin_factory=pin_factory)
            device.off()
            device.close()
        except Exception as exc:  # noqa: BLE001 - try every pin whatever fails
            problems.append(f"GPIO{pin}: {exc}")
    return problems
