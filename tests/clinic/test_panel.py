"""The panel: stop button on mock pins (press pauses, long press stops), buzzer patterns per
priority within DOMAIN.md §2 (the pure annunciator and the mock pin's recorded states), LED."""

import asyncio
import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from appliance.annunciator import LED, PATTERNS, Annunciator, buzzer_level
from appliance.config import PanelConfig
from hw.panel import AlarmBuzzer, Panel, StatusLed

BUTTON, BUZZER, LED_PIN = 17, 18, 27
JITTER_S = 0.06     # thread wake-up jitter allowed on the real pin (the patterns are exact)


@pytest.fixture
def factory():
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


# -- the pure annunciator ----------------------------------------------------------------------

def state(*alarms, heating=False, session="idle", paused=False, prewarm=False):
    return {"alarms": [{"code": c, "priority": p} for c, p in alarms], "heating": heating,
            "session": {"state": session}, "audio": {"paused": paused},
            "prewarm": {"active": prewarm}, "setpoint_c": None}


def test_patterns_are_within_the_domain_ranges():
    high, medium, low, chime = (PATTERNS[k] for k in ("high", "medium", "low", "chime"))
    for p in (high, medium, low):
        assert 0.100 <= p.on_s <= 0.200                    # pulses ~100-200 ms
    assert high.pulses == 10 and medium.pulses == 3 and low.pulses in (1, 2)
    # HIGH repeats every 2.5-4 s, read as start-to-start and as the silence between bursts.
    assert 2.5 <= high.repeat_s <= 4.0 and 2.5 <= high.silence_s <= 4.0
    assert 0.050 <= high.off_s <= 0.125                    # IEC pulse spacing, HIGH
    assert 0.125 <= medium.off_s <= 0.250 and 0.125 <= low.off_s <= 0.250
    assert medium.silence_s >= 2.5 and low.repeat_s is None
    assert chime.pulses == 1 and chime.on_s > 0.2          # unlike any alarm pulse
    assert 1.4 <= LED["high"].hz <= 2.8 and 0.4 <= LED["medium"].hz <= 0.8
    assert LED["heating"].hz < LED["medium"].hz and LED["steady"].off_s is None
    # The level function says the same as the numbers: 10 pulses in each HIGH period.
    samples = [buzzer_level(high, i * 0.01) for i in range(int(high.repeat_s * 100))]
    edges = sum(1 for a, b in zip(samples, samples[1:]) if b and not a) + samples[0]
    assert edges == 10


def test_annunciator_decisions():
    a = Annunciator()
    out = a.update(state(), 0)
    assert out.alarm is None and out.once is None and out.led == "steady"
    assert a.update(state(heating=True, session="running"), 1).led == "heating"
    assert a.update(state(prewarm=True), 1.25).led == "heating"
    out = a.update(state(("rtd_open", "medium")), 2)
    assert out.alarm is PATTERNS["medium"] and out.led == "medium"
    out = a.update(state(("rtd_open", "medium"), ("over_temperature", "high")), 3)
    assert out.alarm is PATTERNS["high"] and out.led == "high" and out.priority == "high"
    out = a.update(state(("over_temperature", "high"), paused=True), 4)
    assert out.alarm is None and out.led == "high" and out.audio_paused   # visual stays
    out = a.update(state(("heating_time_cap", "low")), 5)
    assert out.once is PATTERNS["low"] and out.alarm is None and out.led == "steady"
    assert a.update(state(("heating_time_cap", "low")), 5.25).once is None  # once only
    a.update(state(session="running"), 6)
    out = a.update(state(session="done"), 7)
    assert out.once is PATTERNS["chime"]
    assert a.update(state(session="done"), 7.25).once is None


# -- the buzzer on a mock pin -------------------------------------------------------------------

def _pulses(states):
    """(on durations, off durations) from gpiozero's recorded pin states."""
    on, off = [], []
    for prev, cur in zip(states, states[1:]):
        (on if prev.state else off).append(cur.timestamp)
    return on, off


@pytest.mark.parametrize("priority", ["high", "medium"])
def test_buzzer_pin_plays_the_burst(factory, priority):
    pattern = PATTERNS[priority]
    buzzer = AlarmBuzzer(BUZZER, pin_factory=factory)
    pin = factory.pin(BUZZER)
    try:
        pin.clear_states()
        buzzer.set_alarm(pattern)
        time.sleep(pattern.burst_s + 0.3)
        buzzer.set_alarm(None)
        time.sleep(0.05)
    finally:
        buzzer.close()
    states = list(pin.states)
    on, off = _pulses(states)
    assert len(on) == pattern.pulses, states
    for d in on:
        assert abs(d - pattern.on_s) < JITTER_S
    for d in off[1:pattern.pulses]:           # the gaps inside the burst
        assert abs(d - pattern.off_s) < JITTER_S


def test_buzzer_repeats_high_every_four_seconds(factory):
    buzzer = AlarmBuzzer(BUZZER, pin_factory=factory)
    pin = factory.pin(BUZZER)
    try:
        pin.clear_states()
        buzzer.set_alarm(PATTERNS["high"])
        time.sleep(PATTERNS["high"].repeat_s + 0.5)
    finally:
        buzzer.close()
    # Start times of each pulse relative to the first.
    starts, t = [], 0.0
    for prev, cur in zip(pin.states, pin.states[1:]):
        t += cur.timestamp
        if cur.state:
            starts.append(t)
    assert len(starts) >= 11
    period = starts[10] - starts[0]
    assert 2.5 <= period <= 4.0 + JITTER_S, period        # start to start
    silence = [cur.timestamp for prev, cur in zip(pin.states, pin.states[1:])
               if not prev.state and cur.state][10]      # the off time before the 11th pulse
    assert 2.5 - JITTER_S <= silence <= 4.0, silence      # the silence between bursts


# -- the stop button ----------------------------------------------------------------------------

def test_short_press_pauses_and_long_press_stops(stack, factory):
    s = stack()
    events = []

    async def main():
        loop = asyncio.get_running_loop()
        panel = Panel(PanelConfig(stop_button_pin=BUTTON, long_press_s=0.3),
                      on_press=lambda: (events.append("press"), s.core.panel_press()),
                      on_long_press=lambda: (events.append("long"), s.core.panel_long_press()),
                      dispatch=loop.call_soon_threadsafe, pin_factory=factory)
        pin = factory.pin(BUTTON)
        try:
            s.core.start_session("standard", "medium")
            s.tick(30)
            assert s.core.heating
            # A short press (released before hold_time): pause, heater off.
            pin.drive_low()
            await asyncio.sleep(0.05)
            pin.drive_high()
            await asyncio.sleep(0.5)
            assert events == ["press"]
            s.tick(0.5)
            assert s.core.session.state == "paused" and s.core.duty == 0
            s.core.resume()
            s.tick(5)
            # A long press: pause at once, then stop when held for long_press_s.
            pin.drive_low()
            await asyncio.sleep(0.05)
            assert s.core.session.state == "paused"
            await asyncio.sleep(0.5)
            pin.drive_high()
            await asyncio.sleep(0.05)
            assert events == ["press", "press", "long"]
            assert s.core.session.state == "stopped" and s.core.duty == 0
            # The button never turns heat on: pressing while idle changes nothing.
            pin.drive_low(); await asyncio.sleep(0.05); pin.drive_high()
            await asyncio.sleep(0.05)
            s.tick(1)
            assert s.core.session.state == "stopped" and s.core.duty == 0
        finally:
            panel.close()
    asyncio.run(main())


def test_press_ends_a_prewarm(stack, factory):
    s = stack()

    async def main():
        loop = asyncio.get_running_loop()
        panel = Panel(PanelConfig(stop_button_pin=BUTTON), on_press=s.core.panel_press,
                      on_long_press=s.core.panel_long_press, dispatch=loop.call_soon_threadsafe,
                      pin_factory=factory)
        try:
            s.core.start_prewarm(600)
            s.tick(10)
            factory.pin(BUTTON).drive_low()
            await asyncio.sleep(0.05)
            factory.pin(BUTTON).drive_high()
            s.tick(0.5)
            assert not s.core.snapshot()["prewarm"]["active"] and s.core.duty == 0
        finally:
            panel.close()
    asyncio.run(main())


def test_led_modes_on_a_mock_pin(factory):
    led = StatusLed(LED_PIN, pin_factory=factory)
    pin = factory.pin(LED_PIN)
    try:
        led.show("steady", LED["steady"])
        assert pin.state
        pin.clear_states()
        led.show("high", LED["high"])
        time.sleep(1.1)
        on, off = _pulses(list(pin.states))
        assert len(on) >= 2 and all(abs(d - 0.25) < 0.05 for d in on)
    finally:
        led.close()


def test_panel_in_simulation_uses_the_rigs_pin_factory(stack):
    s = stack()
    panel = Panel(PanelConfig(stop_button_pin=BUTTON, buzzer_pin=BUZZER, led_pin=LED_PIN),
                  on_press=s.core.panel_press, on_long_press=s.core.panel_long_press,
                  pin_factory=s.rig.pin_factory)
    try:
        a = Annunciator()
        s.core.inject("rtd_open")
        s.tick(1)
        out = a.update(s.core.snapshot(), s.clock.monotonic())
        panel.apply(out)
        assert panel.buzzer.alarm is PATTERNS["medium"] and panel.led.mode == "medium"
        s.core.silence(60)
        panel.apply(a.update(s.core.snapshot(), s.clock.monotonic()))
        assert panel.buzzer.alarm is None and panel.led.mode == "medium"
    finally:
        panel.close()
