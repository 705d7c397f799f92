"""The clinic panel's physical controls: a stop button, a buzzer and a status LED (gpiozero).

Every device is optional (``[panel]`` in the configuration, BCM pins, none by default). They run
on gpiozero's own threads; nothing here touches the appliance core directly:

- :class:`StopButton` hands its events to the asyncio loop with ``loop.call_soon_threadsafe``
  (the core is single-threaded). A press calls ``on_press`` at once; holding it for
  ``long_press_s`` calls ``on_long_press`` (gpiozero ``when_held`` with ``hold_time``).
- :class:`AlarmBuzzer` repeats an alarm :class:`~appliance.annunciator.Pattern` on its own
  thread, with exact pulse timing, until told otherwise; one-off signals interrupt it once.
- :class:`StatusLed` blinks (gpiozero ``LED.blink``) or stays on.

:class:`Panel` bundles them and applies an :class:`~appliance.annunciator.Output`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from gpiozero import LED, Button, Buzzer, TonalBuzzer
from gpiozero.tones import Tone

log = logging.getLogger(__name__)


class StopButton:
    """A momentary push button to ground (internal pull-up) or to 3V3 (``pull_up=False``).

    :param dispatch: how callbacks reach the control loop, e.g. ``loop.call_soon_threadsafe``.
    """

    def __init__(self, pin: int, *, on_press: Callable[[], None], on_long_press: Callable[[], None],
                 long_press_s: float = 2.0, pull_up: bool = True,
                 dispatch: Callable[[Callable[[], None]], object] | None = None, pin_factory=None):
        self._dispatch = dispatch or (lambda fn: fn())
        self._on_press = on_press
        self._on_long_press = on_long_press
        self.device = Button(pin, pull_up=pull_up, bounce_time=None, hold_time=long_press_s,
                             hold_repeat=False, pin_factory=pin_factory)
        self.device.when_pressed = self._pressed
        self.device.when_held = self._held

    def _pressed(self) -> None:        # gpiozero's thread (or the caller's, on mock pins)
        self._dispatch(self._on_press)

    def _held(self) -> None:           # gpiozero's hold thread
        self._dispatch(self._on_long_press)

    def close(self) -> None:
        self.device.close()


class AlarmBuzzer:
    """An active buzzer (on/off) or a passive one driven with a tone (``tone_hz``, PWM)."""

    def __init__(self, pin: int, *, active_high: bool = True, tone_hz: float | None = None,
                 pin_factory=None):
        if tone_hz is not None:
            self.device = TonalBuzzer(pin, mid_tone=Tone(frequency=tone_hz), octaves=1,
                                      pin_factory=pin_factory)
            self._tone = Tone(frequency=tone_hz)
        else:
            self.device = Buzzer(pin, active_high=active_high, initial_value=False,
                                 pin_factory=pin_factory)
            self._tone = None
        self._alarm = None
        self._once = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="buzzer", daemon=True)
        self._thread.start()

    def _on(self) -> None:
        if self._tone is not None:
            self.device.play(self._tone)
        else:
            self.device.on()

    def _off(self) -> None:
        if self._tone is not None:
            self.device.stop()
        else:
            self.device.off()

    @property
    def alarm(self):
        return self._alarm

    def set_alarm(self, pattern) -> None:
        """Repeat ``pattern`` (None: quiet) from now on; a change takes effect at once."""
        with self._lock:
            if pattern == self._alarm:
                return
            self._alarm = pattern
        self._wake.set()

    def play_once(self, pattern) -> None:
        with self._lock:
            self._once = pattern
        self._wake.set()

    def _burst(self, pattern) -> bool:
        """Play one burst; False if interrupted (a change or close). Pulses and gaps are timed
        from the actual edge, so a late wake-up lengthens, never shortens, a pulse or a gap; the
        repeat is timed from the burst's start (in :meth:`_run`), so the period does not drift."""
        for i in range(pattern.pulses):
            self._on()
            interrupted = self._wake.wait(pattern.on_s)
            self._off()
            if interrupted:
                return False
            if i < pattern.pulses - 1 and self._wake.wait(pattern.off_s):
                return False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._wake.clear()
                once, self._once = self._once, None
                alarm = self._alarm
            try:
                if once is not None:
                    if self._burst(once):
                        self._wake.wait(0.3)
                    continue
                if alarm is None:
                    self._wake.wait()
                    continue
                started = time.monotonic()
                if self._burst(alarm):      # next burst timed from this one's start: no drift
                    self._wake.wait(max(0.0, started + alarm.repeat_s - time.monotonic()))
            except Exception:  # noqa: BLE001 - the buzzer must not die silently; log and retry
                log.exception("buzzer failed")
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2.0)
        try:
            self._off()
            self.device.close()
        except Exception:  # noqa: BLE001
            log.exception("could not release the buzzer")


class StatusLed:
    def __init__(self, pin: int, *, active_high: bool = True, pin_factory=None):
        self.device = LED(pin, active_high=active_high, initial_value=False,
                          pin_factory=pin_factory)
        self.mode = None

    def show(self, mode: str, blink) -> None:
        """``blink``: an :class:`~appliance.annunciator.Blink`; changes only when ``mode`` does."""
        if mode == self.mode:
            return
        self.mode = mode
        if blink.off_s is None:
            self.device.on()
        else:
            self.device.blink(on_time=blink.on_s, off_time=blink.off_s, background=True)

    def close(self) -> None:
        try:
            self.device.off()
            self.device.close()
        except Exception:  # noqa: BLE001
            log.exception("could not release the LED")


class Panel:
    """Whatever of button, buzzer and LED the configuration names; all optional."""

    def __init__(self, panel_config, *, on_press: Callable[[], None],
                 on_long_press: Callable[[], None], dispatch=None, pin_factory=None):
        cfg = panel_config
        self.button = self.buzzer = self.led = None
        try:
            if cfg.stop_button_pin is not None:
                self.button = StopButton(cfg.stop_button_pin, on_press=on_press,
                                         on_long_press=on_long_press,
                                         long_press_s=cfg.long_press_s, pull_up=cfg.button_pull_up,
                                         dispatch=dispatch, pin_factory=pin_factory)
            if cfg.buzzer_pin is not None:
                self.buzzer = AlarmBuzzer(cfg.buzzer_pin, active_high=cfg.buzzer_active_high,
                                          tone_hz=cfg.buzzer_tone_hz, pin_factory=pin_factory)
            if cfg.led_pin is not None:
                self.led = StatusLed(cfg.led_pin, active_high=cfg.led_active_high,
                                     pin_factory=pin_factory)
        except Exception:
            self.close()
            raise

    @property
    def empty(self) -> bool:
        return self.button is None and self.buzzer is None and self.led is None

    def apply(self, output) -> None:
        """Drive buzzer and LED from an :class:`~appliance.annunciator.Output`."""
        if self.buzzer is not None:
            self.buzzer.set_alarm(output.alarm)
            if output.once is not None:
                self.buzzer.play_once(output.once)
        if self.led is not None:
            self.led.show(output.led, output.blink)

    def close(self) -> None:
        for device in (self.button, self.buzzer, self.led):
            if device is not None:
                try:
                    device.close()
                except Exception:  # noqa: BLE001
                    log.exception("could not release %s", device)
