"""The mat heater: a solid-state relay driven by slow PWM, an optional series relay, a heartbeat.

A zero-crossing AC SSR can only switch at mains zero crossings, so the element is driven by
*time-proportional* PWM: at the default 1 Hz one period holds 50 (or 60) half-cycles and the duty
steps in 2 % of a period. A DC heater behind a MOSFET can use a faster ``frequency_hz``.

The series relay is a mechanical break in the heater supply, closed only while the appliance is
healthy and heat is wanted. SSRs usually fail *closed* (welded, stuck on); the relay is what the
software can still open then.

Two things the pins do on a real Pi that a plain mock does not (DOMAIN.md §10):

- lgpio's software PWM applies a duty change at the start of the next cycle, so at 1 Hz writing
  duty 0 could leave the SSR conducting for up to a second. :meth:`Heater.off` therefore stops
  PWM and writes the line to its off level directly, *then* opens the relay (so the relay never
  breaks load current the SSR is still carrying); the next :meth:`Heater.set_duty` re-arms PWM.
- gpiozero releases a line as an input with the pull disabled (it floats). Every output here is
  released by :func:`release_to_off_level`: an input with the internal pull towards its off
  level, which the kernel keeps after the process let go. The external pull-downs of
  ``hw/README.md`` remain required: nothing holds a line while the Pi boots, crashes or resets.
"""

import logging

from gpiozero import DigitalOutputDevice, OutputDevice, PWMOutputDevice

log = logging.getLogger(__name__)


def release_to_off_level(device, *, off_high: bool = False) -> None:
    """Close a gpiozero output and leave its line an input pulled to its off level.

    gpiozero's close (and its factory's close at exit) claims the line as an input with the pull
    disabled, so the pull is set afterwards and the pin is handed out of the factory's care: the
    line stays claimed, pulled, until the process ends and the kernel keeps the pull from then on.
    """
    pin, factory = device.pin, device.pin_factory
    device.close()
    if pin is None:
        return
    pin.function = "input"
    pin.pull = "up" if off_high else "down"
    pins = getattr(factory, "pins", None)
    if isinstance(pins, dict) and pins.get(pin.info) is pin:
        del pins[pin.info]


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
        self._frequency_hz = frequency_hz
        self._ssr_active_high = ssr_active_high
        self._relay_active_high = relay_active_high
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
    def pin_factory(self):
        """The gpiozero pin factory the outputs use."""
        return self._ssr.pin_factory

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
        """Drive the SSR at ``duty`` (clamped to 0..1); re-arms PWM after :meth:`off`."""
        duty = min(1.0, max(0.0, float(duty)))
        if duty != self._duty:
            if duty and self._ssr.pin.frequency is None:
                self._ssr.pin.frequency = self._frequency_hz
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
        """SSR off *now* (PWM stopped, line written), then the relay open. Never raises: it is
        called from every failure path."""
        self._duty = 0.0
        try:
            pin = self._ssr.pin
            pin.frequency = None
            pin.state = 0 if self._ssr_active_high else 1
        except Exception:  # noqa: BLE001 - the off path must reach the relay
            log.exception("could not drive the SSR off")
            try:
                self._ssr.value = 0     # at least at the next PWM cycle
            except Exception:  # noqa: BLE001
                log.exception("could not drive the SSR off as a duty either")
        if self._relay is not None:
            try:
                self._relay.value = 0
            except Exception:  # noqa: BLE001
                log.exception("could not open the relay")

    def close(self) -> None:
        """Turn off, then release each line as an input pulled to its off level."""
        self.off()
        for device, active_high in ((self._ssr, self._ssr_active_high),
                                    (self._relay, self._relay_active_high)):
            if device is not None:
                try:
                    release_to_off_level(device, off_high=not active_high)
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
        """Stop toggling (the gate opens) and release the line pulled low."""
        try:
            self._device.off()
            release_to_off_level(self._device)
        except Exception:  # noqa: BLE001
            log.exception("could not release the heartbeat pin")


def failsafe_off(pins: list[tuple[int, bool]], *, pin_factory=None) -> list[str]:
    """Drive each ``(pin, active_high)`` to its inactive level, then leave it an input pulled to
    that level; return the problems met.

    For ``lumbarest-appliance --failsafe-off``, run by systemd after the appliance stopped for
    any reason (even SIGKILL), when the pins may have been left at their last level.
    """
    problems = []
    for pin, active_high in pins:
        try:
            device = OutputDevice(pin, active_high=active_high, initial_value=False,
                                  pin_factory=pin_factory)
            device.off()
            release_to_off_level(device, off_high=not active_high)
        except Exception as exc:  # noqa: BLE001 - try every pin whatever fails
            problems.append(f"GPIO{pin}: {exc}")
    return problems
