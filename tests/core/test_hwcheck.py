"""`lumbarest hwcheck`: the first power-on check, on the simulated rig (real driver, fake
MAX31865, mock pins, mat model) with the appliance stopped, and through a running appliance."""

import pytest

import hw.pi
from appliance.cli import main as cli_main
from appliance.config import from_dict
from appliance.hwcheck import run_standalone
from hw.clock import VirtualClock
from hw.gpio import with_revision
from hw.sim.plant import MatParams
from hw.sim.rig import SimulatedRig


@pytest.fixture
def rig(monkeypatch):
    """The rig as a Pi 4 would present it to hwcheck; Blinka's import itself is tested in a
    subprocess with the board forced (tests/test_units_and_image_scripts.py)."""
    monkeypatch.setattr(hw.pi, "blinka_board", lambda: "RASPBERRY_PI_4B")
    clock = VirtualClock()
    return SimulatedRig(MatParams(sensor_noise_c=0.0), clock, heater_pin=23, relay_pin=24), clock


def standalone(rig, tmp_path, **kwargs):
    rig, clock = rig
    spidev = tmp_path / "spidev0.0"
    spidev.write_bytes(b"")
    factory = rig.pin_factory

    def make_factory():
        factory.revision_source = "/proc/device-tree/model (Raspberry Pi 4 Model B Rev 1.5)"
        return factory

    config = from_dict({"mode": "simulation"})
    checks = run_standalone(config, clock=clock, spidev=spidev, make_factory=make_factory,
                            build_spi=lambda cs_pin: (rig.spi, rig.cs), **kwargs)
    return {c.name: c for c in checks}, checks


def test_every_check_passes_on_a_working_unit_and_the_heater_ends_off(rig, tmp_path):
    by_name, checks = standalone(rig, tmp_path, outputs=True)
    assert [c.name for c in checks] == ["SPI device", "Blinka board", "pin factory",
                                        "MAX31865 registers", "fault-detection cycle", "RTD reading",
                                        "relay", "SSR and element"], [c.line() for c in checks]
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert "3-wire" in by_name["MAX31865 registers"].detail
    assert "after" in by_name["SSR and element"].detail
    mat = rig[0].mat
    assert mat.power_w == 0.0 and not mat.relay_closed            # off again afterwards
    assert mat.max_surface_c < 24.0                                # a brief pulse on an empty mat


def test_a_dead_heater_path_fails_with_what_to_fix(rig, tmp_path):
    rig[0].inject("heater_open")
    by_name, _ = standalone(rig, tmp_path, outputs=True)
    line = by_name["SSR and element"].line()
    assert line.startswith("FAIL") and "transistor" in line and "cut-out" in line
    assert rig[0].mat.relay_closed is False


def test_a_stopped_converter_and_an_open_rtd_are_named(rig, tmp_path):
    rig[0].inject("stale")
    by_name, _ = standalone(rig, tmp_path, outputs=False)
    assert not by_name["fault-detection cycle"].ok
    assert "CYCLE_TIMEOUT" in by_name["fault-detection cycle"].detail
    assert "converter does not run" in by_name["fault-detection cycle"].line()
    rig[0].clear_faults()
    rig[0].inject("rtd_open")
    by_name, _ = standalone(rig, tmp_path, outputs=True)
    assert "3-wire jumpers" in by_name["RTD reading"].line()
    assert by_name["outputs"].line().startswith("FAIL outputs: not pulsed")


def test_missing_spidev_says_how_to_enable_spi(rig, tmp_path):
    from appliance.hwcheck import check_spidev

    line = check_spidev(tmp_path / "nope").line()
    assert line.startswith("FAIL SPI device") and "dtparam=spi=on" in line


def test_the_cli_checks_directly_when_the_appliance_is_stopped(tmp_path, capsys):
    """On this PC nothing of the Pi is there: every hardware line fails and says why."""
    config = tmp_path / "appliance.toml"
    config.write_text('mode = "hardware"\n')
    code = cli_main(["--socket", str(tmp_path / "none.sock"), "hwcheck", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 1
    assert "not running: checking the hardware directly" in out
    assert "FAIL SPI device: /dev/spidev0.0" in out or "ok   SPI device" in out
    assert "FAIL pin factory" in out and "linux,revision" in out
    assert out.rstrip().endswith("Hardware check FAILED: fix the lines marked FAIL, top first.")


def test_with_revision_makes_any_gpiozero_factory_use_it():
    from gpiozero.pins.mock import MockFactory

    factory = with_revision(MockFactory, 0xC03114)()
    assert factory.board_info.model == "4B"
