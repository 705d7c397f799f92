"""Building the devices for the core: simulated at the bus, or the Pi's real ones.

Both paths construct the *same* driver classes (:class:`hw.heater.Heater`,
:class:`hw.rtd.RtdSensor`); only what is underneath differs.
"""

import logging
import time

from appliance.config import Config
from appliance.core import Devices
from hw.heater import Heater, Heartbeat
from hw.rtd import RtdSensor

log = logging.getLogger(__name__)


def _sensor(config: Config, spi, cs, faults: list[str], clock=time):
    hw = config.hardware
    if spi is None:
        faults.append("sensor_missing")
        return None
    try:
        return RtdSensor(spi, cs, nominal_ohm=hw.rtd_nominal_ohm, ref_resistor_ohm=hw.rtd_ref_ohm,
                         wires=hw.rtd_wires, mains_hz=hw.mains_hz,
                         probe_period_s=hw.rtd_probe_period_s, clock=clock)
    except Exception as exc:  # noqa: BLE001 - no sensor means no heat, not no appliance
        log.error("temperature sensor unavailable: %s", exc)
        faults.append("sensor_missing")
        return None


def _outputs(config: Config, pin_factory, faults: list[str]):
    hw = config.hardware
    heater = heartbeat = None
    try:
        heater = Heater(hw.heater_pin, relay_pin=hw.relay_pin, frequency_hz=hw.ssr_frequency_hz,
                        ssr_active_high=hw.heater_active_high,
                        relay_active_high=hw.relay_active_high, pin_factory=pin_factory)
        if hw.heartbeat_pin is not None:
            heartbeat = Heartbeat(hw.heartbeat_pin, pin_factory=pin_factory)
    except Exception as exc:  # noqa: BLE001
        log.error("heater outputs unavailable: %s", exc)
        faults.append("output_missing")
    return heater, heartbeat


def build_simulated(config: Config, clock, *, seed: int = 0) -> Devices:
    """The real drivers on a fake MAX31865 and mock pins, closing the loop through the mat model."""
    from hw.sim.rig import SimulatedRig  # noqa: PLC0415 - simulation only

    hw = config.hardware
    rig = SimulatedRig(config.plant, clock, heater_pin=hw.heater_pin, relay_pin=hw.relay_pin,
                       heater_active_high=hw.heater_active_high,
                       relay_active_high=hw.relay_active_high, nominal_ohm=hw.rtd_nominal_ohm,
                       ref_resistor_ohm=hw.rtd_ref_ohm, seed=seed)
    faults: list[str] = []
    sensor = _sensor(config, rig.spi, rig.cs, faults, clock)
    heater, heartbeat = _outputs(config, rig.pin_factory, faults)
    return Devices(heater, sensor, heartbeat, rig, faults)


def build_hardware(config: Config) -> Devices:
    """The Pi's SPI bus and GPIO; anything missing becomes a latched fault, never a crash."""
    faults: list[str] = []
    notes: dict[str, dict] = {}
    spi = cs = None
    try:
        from hw.pi import build_spi  # noqa: PLC0415

        spi, cs = build_spi(config.hardware.rtd_cs_pin)
    except Exception as exc:  # noqa: BLE001
        log.error("SPI bus unavailable: %s", exc)
        notes["sensor_missing"] = {"error": str(exc)}
    sensor = _sensor(config, spi, cs, faults)
    heater = heartbeat = None
    try:
        pin_factory = pin_factory_for_hardware()
    except Exception as exc:  # noqa: BLE001 - no GPIO means no heat, not no appliance
        log.error("GPIO unavailable: %s", exc)
        faults.append("output_missing")
        notes["output_missing"] = {"error": str(exc)}
    else:
        heater, heartbeat = _outputs(config, pin_factory, faults)
    return Devices(heater, sensor, heartbeat, None, faults, notes)


def pin_factory_for_hardware():
    """gpiozero's lgpio factory for this board (:mod:`hw.gpio`), made gpiozero's default so that
    every device (the panel's too) uses it; raises when the board cannot be identified."""
    from gpiozero import Device  # noqa: PLC0415

    from hw.gpio import make_pin_factory  # noqa: PLC0415

    factory = make_pin_factory()
    log.info("GPIO: %s, board revision %s from %s", type(factory).__name__,
             f"{factory.board_info.revision}", factory.revision_source)
    Device.pin_factory = factory
    return factory


def output_pins(config: Config) -> list[tuple[int, bool]]:
    """Every output whose off level matters, for ``--failsafe-off``: the SSR, the relay and the
    heartbeat gate's input (a heartbeat held low lets the gate open)."""
    hw = config.hardware
    pins = [(hw.heater_pin, hw.heater_active_high)]
    if hw.relay_pin is not None:
        pins.append((hw.relay_pin, hw.relay_active_high))
    if hw.heartbeat_pin is not None:
        pins.append((hw.heartbeat_pin, True))
    return pins
