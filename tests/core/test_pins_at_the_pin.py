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


# -- which Pi is this (gpiozero's lgpio factory needs the revision) ------------------------------

def device_tree(tmp_path, *, revision: bytes | None = None, model: str | None = None):
    root = tmp_path / "device-tree"
    (root / "system").mkdir(parents=True)
    if revision is not None:
        (root / "system" / "linux,revision").write_bytes(revision)
    if model is not None:
        (root / "model").write_bytes(model.encode() + b"\0")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\n")  # arm64: no Revision
    return root, cpuinfo


def test_gpiozero_itself_gives_up_without_the_revision_file(tmp_path, monkeypatch):
    """What the issue saw: gpiozero's own lookup reads fixed paths and raises PinUnknownPi on an
    arm64 kernel whose device tree lacks the node (its /proc/cpuinfo has no Revision line)."""
    import errno
    import io

    from gpiozero.exc import PinUnknownPi
    from gpiozero.pins import local

    _, cpuinfo = device_tree(tmp_path, model="Raspberry Pi 4 Model B Rev 1.5")
    real_open = io.open

    def pi_without_node(path, *args, **kwargs):
        if path.startswith("/proc/device-tree/"):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return real_open(cpuinfo if path == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr(io, "open", pi_without_node)
    with pytest.raises(PinUnknownPi):
        local.get_pi_revision()


def test_revision_from_the_device_tree(tmp_path):
    from gpiozero.pins.mock import MockFactory

    from hw.gpio import make_pin_factory

    root, cpuinfo = device_tree(tmp_path, revision=bytes.fromhex("00c03114"), model="whatever")
    factory = make_pin_factory(device_tree=root, cpuinfo=cpuinfo, factory_class=MockFactory)
    assert factory.board_info.revision == "c03114" and factory.board_info.model == "4B"
    assert factory.revision_source.endswith("system/linux,revision")


@pytest.mark.parametrize("model, expected", [
    ("Raspberry Pi 4 Model B Rev 1.5", "4B"), ("Raspberry Pi 3 Model B Plus Rev 1.3", "3B+"),
    ("Raspberry Pi 3 Model B Rev 1.2", "3B"), ("Raspberry Pi 400 Rev 1.0", "400"),
    ("Raspberry Pi Compute Module 4 Rev 1.0", "CM4"), ("Raspberry Pi Zero 2 W Rev 1.0", "Zero2W"),
])
def test_without_the_revision_file_the_model_name_identifies_the_board(tmp_path, model, expected):
    from gpiozero import OutputDevice
    from gpiozero.pins.mock import MockFactory

    from hw.gpio import make_pin_factory

    root, cpuinfo = device_tree(tmp_path, model=model)
    factory = make_pin_factory(device_tree=root, cpuinfo=cpuinfo, factory_class=MockFactory)
    assert factory.board_info.model == expected and "model" in factory.revision_source
    OutputDevice(23, pin_factory=factory).close()     # the header layout has GPIO23


def test_an_unknown_board_is_a_clear_fault_naming_the_file(tmp_path, monkeypatch, capsys):
    import appliance.wiring as wiring
    from hw.gpio import PiRevisionUnknown, make_pin_factory

    root, cpuinfo = device_tree(tmp_path, model="Some Other Board")
    with pytest.raises(PiRevisionUnknown, match=r"system/linux,revision is missing"):
        make_pin_factory(device_tree=root, cpuinfo=cpuinfo)

    def unknown():
        return make_pin_factory(device_tree=root, cpuinfo=cpuinfo)

    monkeypatch.setattr(wiring, "pin_factory_for_hardware", unknown)
    monkeypatch.setattr("appliance.main.pin_factory_for_hardware", unknown)
    config = from_dict({"mode": "hardware"})
    devices = wiring.build_hardware(config)     # on this PC the SPI bus is missing too
    assert devices.heater is None and "output_missing" in devices.startup_faults
    assert "linux,revision" in devices.startup_notes["output_missing"]["error"]
    clock = VirtualClock()
    from appliance.core import Appliance
    core = Appliance(config, devices, clock)
    fault = core.safety.latch.active["output_missing"]
    assert "linux,revision" in fault.readings["error"] and not core.heating
    assert run_failsafe_off(config) == 1
    assert "linux,revision" in capsys.readouterr().err
