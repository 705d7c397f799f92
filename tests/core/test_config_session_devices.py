"""Configuration errors, the session state machine, the heater devices, fail-safe paths."""

import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from appliance.config import Config, ConfigError, load
from appliance.errors import NOT_ALLOWED, CommandError
from appliance.main import run_failsafe_off
from appliance.session import Plan, Session
from appliance.watchdog import LoopWatchdog, run_watchdog_thread
from hw.heater import Heater
from tests.core.conftest import run, scenario


# -- configuration -------------------------------------------------------------------------
def write(tmp_path, text: str):
    path = tmp_path / "appliance.toml"
    path.write_text(text)
    return path


def test_no_file_means_simulation_with_documented_defaults():
    config = load(None)
    assert config.mode == "simulation"
    assert config.levels == {"off": None, "low": 36.0, "medium": 38.0, "high": 40.0}
    assert {k: config.programs[k] for k in ("quick", "standard", "deep")} == \
        {"quick": 20.0, "standard": 30.0, "deep": 45.0}
    assert config.safety.trip_c == 42.0 and config.safety.max_setpoint_c == 40.0


@pytest.mark.parametrize("text, key, allowed", [
    ('mode = "turbo"', "mode", 'use "simulation" or "hardware"'),
    ("[safety]\ntrip_c = 55", "safety.trip_c", "from 30 to 45"),
    ("[safety]\ntrip_c = \"hot\"", "safety.trip_c", "use a number"),
    ("[safety]\nmax_setpoint_c = 41.0\ntrip_c = 41.5", "safety.max_setpoint_c", "below safety.trip_c"),
    ("[levels]\nhigh = 41.0", "levels.high", "max_setpoint_c"),
    ("[programs]\nquick = 0", "programs.quick", "minutes from 1"),
    ("[hardware]\nheater_pin = 40", "hardware.heater_pin", "from 2 to 27"),
    ("[hardware]\nrtd_wires = 5", "hardware.rtd_wires", "one of 2, 3, 4"),
    ("[safety]\ntrip_cc = 42", "safety.trip_cc", "known keys in [safety]"),
    ("[plant]\nheater_w = -5", "plant.heater_w", "from 0"),
    ("colour = 1", "colour", "known keys"),
])
def test_errors_name_file_key_value_and_what_is_allowed(tmp_path, text, key, allowed):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(str(path)) and key in message and allowed in message


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "mode = "))
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_a_relay_can_be_left_out(tmp_path):
    config = load(write(tmp_path, 'mode = "hardware"\n[hardware]\nrelay_pin = false\n'))
    assert config.mode == "hardware" and config.hardware.relay_pin is None


# -- sessions ------------------------------------------------------------------------------
def new_session() -> Session:
    return Session(max_session_s=3600, extend_step_s=300, max_pause_s=600)


def test_session_lifecycle_and_countdown():
    s = new_session()
    s.start(0.0, Plan("quick", "high", 1200, 40.0))
    assert s.heat_wanted and s.phase() == "warming"
    s.tick(100.0, 39.8, 0.5)
    assert s.phase() == "therapy"
    s.pause(200.0)
    assert not s.heat_wanted and s.remaining_s(500.0) == 1000.0
    s.resume(500.0)
    s.extend(500.0)
    assert s.remaining_s(500.0) == 1300.0
    assert s.tick(1799.0, 40.0, 0.5) is None
    assert s.tick(1800.0, 40.0, 0.5) == "done" and s.outcome == "completed"
    assert not s.heat_wanted


@pytest.mark.parametrize("action", ["pause", "resume", "stop", "extend"])
def test_invalid_transitions_change_nothing(action):
    s = new_session()
    with pytest.raises(CommandError) as err:
        getattr(s, action)(0.0)
    assert err.value.code == NOT_ALLOWED and s.state == "idle"


def test_extend_is_capped_and_a_long_pause_stops():
    s = new_session()
    s.start(0.0, Plan("deep", "low", 2700, 36.0))
    for _ in range(3):
        s.extend(10.0)
    with pytest.raises(CommandError):
        s.extend(10.0)
    assert s.plan.planned_s == 3600
    s.pause(20.0)
    assert s.tick(620.0, None, 0.5) is None
    assert s.tick(620.5, None, 0.5) == "stopped" and s.reason == "paused too long"


def test_traction_program_never_wants_heat():
    s = new_session()
    s.start(0.0, Plan("traction", "off", 1800, None))
    assert s.state == "running" and not s.heat_wanted and s.phase() == "therapy"


# -- devices -------------------------------------------------------------------------------
@pytest.fixture
def factory():
    return MockFactory(pin_class=MockPWMPin)


def test_heater_drives_ssr_pwm_and_relay(factory):
    heater = Heater(23, relay_pin=24, frequency_hz=1.0, pin_factory=factory)
    ssr, relay = factory.pin(23), factory.pin(24)
    assert ssr.frequency == 1.0 and ssr.state == 0 and relay.state == 0
    heater.close_relay()
    heater.set_duty(0.42)
    heater.set_duty(1.7)
    heater.off()
    assert [s.state for s in ssr.states] == [0, 0.42, 1.0, 0]
    assert [s.state for s in relay.states] == [False, True, False]
    assert heater.relay_cycles == 1


def test_active_low_ssr_and_relay_are_off_when_high(factory):
    heater = Heater(17, relay_pin=27, ssr_active_high=False, relay_active_high=False, pin_factory=factory)
    assert factory.pin(17).state == 1 and factory.pin(27).state == 1
    heater.close_relay()
    heater.set_duty(0.5)
    heater.off()
    assert factory.pin(17).state == 1 and factory.pin(27).state == 1


def test_heater_off_never_raises(factory):
    heater = Heater(23, relay_pin=24, pin_factory=factory)
    heater.close_relay()
    heater.set_duty(0.5)

    class Broken:
        def __setattr__(self, name, value):
            raise OSError("GPIO gone")

    heater._ssr = Broken()
    heater.off()  # must not raise, and must still open the relay
    assert factory.pin(24).state == 0


def test_failsafe_off_drives_both_pins_to_their_off_level(factory):
    config = load(None)
    config = Config(mode="hardware", hardware=config.hardware)
    # A process killed with the pins on: SSR high, relay high.
    for pin in (23, 24):
        p = factory.pin(pin)
        p.function = "output"
        p.state = 1
    pins = {pin: factory.pin(pin) for pin in (23, 24)}
    before = {pin: len(p.states) for pin, p in pins.items()}
    assert run_failsafe_off(config, pin_factory=factory) == 0
    for pin, p in pins.items():
        driven = [s.state for s in p.states[before[pin]:]]
        assert driven and driven[0] == 0 and 1 not in driven


def test_loop_watchdog_thread_forces_heater_off_when_the_loop_stalls():
    watchdog = LoopWatchdog(period_s=0.25, stall_s=0.5, now_s=time.monotonic())
    forced = threading.Event()
    stop = threading.Event()
    run_watchdog_thread(watchdog, forced.set, stop)
    try:
        for _ in range(8):  # a healthy loop for a second
            watchdog.beat(time.monotonic())
            time.sleep(0.125)
            assert not forced.is_set()
        stalled_at = time.monotonic()
        assert forced.wait(2.0)
        assert time.monotonic() - stalled_at <= 0.75 + 0.2
        assert watchdog.take_trip() is not None
    finally:
        stop.set()


# -- the whole stack -------------------------------------------------------------------------
def test_deep_high_session_reaches_and_holds_the_setpoint():
    result, runner = run(scenario(duration_s=3000, program="deep"))
    assert result["outcome"] == "completed" and result["faults"] == []
    assert result["time_to_band_s"] is not None and result["overshoot_c"] <= 0.5
    assert result["max_surface_c"] <= 41.0
    assert result["rms_error_c"] <= 0.15
    assert all(row[4] == 0.0 and not row[5] for row in runner.trace if row[0] > 2700.25)
    assert result["wall_s"] < 10.0


def test_startup_selftest_finds_a_chip_fault_and_a_warming_mat(stack):
    core, *_ = stack(before_core=lambda rig: rig.inject("rtd_open"))
    assert "selftest_failed" in core.safety.latch.active
    with pytest.raises(CommandError):
        core.start_session("standard", "high")

    def warming(rig):
        rig.inject("ssr_stuck_on")
        rig.mat.relay_closed = True  # welded SSR and no working relay: the mat warms by itself

    # The same check keeps running while idle. Below 36.5 °C a rise may be a patient lying on a
    # cool mat, so it counts from there: the first reading above it that keeps rising trips.
    core, rig, clock, tick = stack({"hardware": {"relay_pin": False}}, before_core=warming)
    while "heating_while_off" not in core.safety.latch.active and clock.monotonic() < 3600:
        tick(1.0)
    fault = core.safety.latch.active["heating_while_off"]
    assert 36.5 < fault.readings["mat_c"] <= 37.5


def test_setpoint_is_clamped_whatever_the_plan_says(stack):
    core, rig, clock, tick = stack()
    core.start_session("standard", "high")
    core.session.plan.setpoint_c = 45.0  # as if something upstream went wrong
    seen = []
    original = core.controller.update
    core.controller.update = lambda now, mat, sp: seen.append(sp) or original(now, mat, sp)
    tick(5.0)
    assert seen and max(seen) == 40.0
