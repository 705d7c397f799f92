"""What the heater's pins do on a real Pi (gpiozero 2.0.1 with lgpio), on mock pins that behave
like lgpio where it differs from gpiozero's MockPWMPin (hw.sim.pins.LgpioPWMPin): software PWM
applies a duty at the next cycle, closing a pin disables its pull."""

import pytest

from appliance.config import Config, ConfigError, from_dict, load
from appliance.main import run_failsafe_off
from hw.clock import VirtualClock
from hw.heater import Heartbeat, Heater
from hw.sim.pins import LgpioMockFactory


@pytest.fixture
def pi():
    clock = VirtualClock()
    return clock, LgpioMockFactory(clock)


def test_the_mock_applies_a_duty_at_the_next_pwm_cycle_as_lgpio_does(pi):
    clock, factory = pi
    heater = Heater(23, frequency_hz=1.0, pin_factory=factory)
    ssr = factory.pin(23)
    clock.advance_to(0.2)
    heater.set_duty(0.6)
    assert ssr.level() == 0.0                  # the first cycle starts a period after PWM did
    clock.advance_to(1.0)
    assert ssr.level() == 0.6
    clock.advance_to(1.3)
    ssr.state = 0.0                            # "off" written as a duty...
    assert ssr.level() == 0.6                  # ...still conducting for the rest of the cycle
    clock.advance_to(2.0)
    assert ssr.level() == 0.0


def test_off_is_immediate_at_the_pin_and_comes_before_the_relay_opens(pi):
    clock, factory = pi
    heater = Heater(23, relay_pin=24, frequency_hz=1.0, pin_factory=factory)
    ssr, relay = factory.pin(23), factory.pin(24)
    heater.close_relay()
    heater.set_duty(0.6)
    clock.advance_to(2.3)
    assert ssr.level() == 0.6 and relay.level() == 1.0
    heater.off()
    assert ssr.level() == 0.0 and relay.level() == 0.0     # at 2.3 s, not at the next cycle
    assert ssr.frequency is None                           # PWM stopped
    at_off = [e for e in factory.events if e[0] == 2.3]
    assert [e[1] for e in at_off] == ["GPIO23", "GPIO24"]  # SSR off first, then the relay
    clock.advance_to(5.0)
    assert ssr.level() == 0.0
    # Heat resumes: PWM is re-armed and drives the SSR again.
    heater.close_relay()
    heater.set_duty(0.5)
    assert ssr.frequency == 1.0
    clock.advance_to(6.0)
    assert ssr.level() == 0.5
    clock.advance_to(6.4)
    heater.off()
    assert ssr.level() == 0.0


def test_release_leaves_every_line_an_input_pulled_to_its_off_level(pi):
    """gpiozero's close claims the line as an input with the pull disabled: it would float."""
    clock, factory = pi
    heater = Heater(23, relay_pin=24, frequency_hz=1.0, pin_factory=factory)
    beat = Heartbeat(25, pin_factory=factory)
    pins = [factory.pin(n) for n in (23, 24, 25)]
    heater.close_relay()
    heater.set_duty(1.0)
    beat.beat()
    clock.advance_to(1.5)
    heater.close()
    beat.close()
    factory.close()                            # what gpiozero does at exit
    for pin in pins:
        assert pin.function == "input" and pin.pull == "down" and pin.level() == 0.0, pin


def test_failsafe_off_drives_then_leaves_every_safety_line_pulled_down(pi):
    clock, factory = pi
    config = Config(mode="hardware", hardware=load(None).hardware)
    pins = []
    for number in (23, 24, 25):                # a killed process left them high
        pin = factory.pin(number)
        pin.function = "output"
        pin.state = 1
        pins.append(pin)
    assert run_failsafe_off(config, pin_factory=factory) == 0
    factory.close()                            # the --failsafe-off process exits
    for pin in pins:
        assert pin.function == "input" and pin.pull == "down" and pin.level() == 0.0, pin


@pytest.mark.parametrize("key", ["heater_active_high", "relay_active_high"])
def test_active_low_outputs_are_refused_in_hardware_mode(key):
    """lgpio starts PWM with its line low and applies the first duty a period later: an
    active-low SSR would conduct for up to a second at every start."""
    with pytest.raises(ConfigError, match=key):
        from_dict({"mode": "hardware", "hardware": {key: False}})
    assert not getattr(from_dict({"mode": "simulation", "hardware": {key: False}}).hardware, key)
