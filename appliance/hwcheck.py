"""``lumbarest hwcheck``: the first power-on check of the Pi's hardware, one line per check.

Each check says what it found and, when it fails, what to fix. The checks, in order: the SPI
device node, Adafruit Blinka's board import, gpiozero's pin factory and the board revision it
found, the MAX31865's configuration and fault registers, its fault-detection cycle, an RTD
reading, and — only with ``--outputs``, on an empty mat, with the appliance stopped — a brief
pulse of the series relay and then of the SSR through the relay while watching the reading rise.

With the appliance running it owns the SPI bus and the pins: the CLI asks it over the socket
(``system.hwcheck``, service PIN) and it checks with its own devices; the outputs are refused
then. With the appliance stopped the CLI opens the hardware itself (as root or as the
``lumbarest`` user, which is in the ``gpio`` and ``spi`` groups). See ``hw/README.md``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from hw.rtd import CYCLE_TIMEOUT, NO_RESPONSE

SPIDEV = Path("/dev/spidev0.0")
RELAY_CLICK_S = 0.5
SSR_PULSE_MAX_S = 60.0
RISE_C = 0.3
COOLER_THAN_SETPOINT_C = 5.0
SAMPLE_S = 0.25


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"
        return text + (f" — fix: {self.fix}" if self.fix and not self.ok else "")

    def as_dict(self) -> dict:
        return asdict(self)


def check_spidev(path: Path = SPIDEV) -> Check:
    if not path.exists():
        return Check("SPI device", False, f"{path} is missing",
                     "enable SPI (dtparam=spi=on in /boot/firmware/config.txt; the image sets it) "
                     "and reboot")
    if not os.access(path, os.R_OK | os.W_OK):
        return Check("SPI device", False, f"{path} is not readable and writable by this user",
                     "run as root or as the lumbarest user (group spi)")
    return Check("SPI device", True, f"{path} present")


def check_blinka() -> Check:
    from hw.pi import blinka_board  # noqa: PLC0415

    try:
        return Check("Blinka board", True, f"{blinka_board()}: board, busio, digitalio import")
    except Exception as exc:  # noqa: BLE001
        return Check("Blinka board", False, f"{type(exc).__name__}: {exc}",
                     "install the image's packages (gpiod for Blinka's Pi pin module: the 'pi' "
                     "extra); see docs/image.md")


def describe_factory(factory) -> str:
    info = factory.board_info
    source = getattr(factory, "revision_source", "gpiozero's own lookup")
    return f"{type(factory).__name__}, Raspberry Pi {info.model} (revision {info.revision} from {source})"


def check_pin_factory(make=None):
    """``(Check, factory or None)``."""
    if make is None:
        from hw.gpio import make_pin_factory as make  # noqa: PLC0415
    try:
        factory = make()
    except Exception as exc:  # noqa: BLE001
        return Check("pin factory", False, f"{type(exc).__name__}: {exc}",
                     "run on a Raspberry Pi 3/4/400/CM4/Zero 2 W with lgpio installed; "
                     "check /proc/device-tree/model"), None
    return Check("pin factory", True, describe_factory(factory)), factory


_READING_FIXES = {
    "HIGHTHRESH": "the RTD reads open: check its wires and, for a 3-wire PT100, the breakout's "
                  "3-wire jumpers",
    "LOWTHRESH": "the RTD reads shorted: check its wires for a short",
    "REFINLOW": "reference input fault: check the breakout's 2/3/4-wire jumpers and the RTD's "
                "FORCE wires",
    "REFINHIGH": "FORCE- open: check the RTD's wires and the breakout's jumpers",
    "RTDINLOW": "FORCE- open: check the RTD's wires and the breakout's jumpers",
    "OVUV": "an input is over- or under-voltage: check the breakout's 3.3 V supply and wiring",
    CYCLE_TIMEOUT: "the converter does not run: check the breakout's supply; replace the breakout",
    NO_RESPONSE: "nothing answers on SPI: check SCLK (GPIO11), MOSI (GPIO10), MISO (GPIO9), "
                 "chip select and 3.3 V",
}


def _fix_for(bits) -> str:
    return "; ".join(_READING_FIXES[b] for b in bits if b in _READING_FIXES) or \
        "check the sensor's wiring"


def check_sensor(sensor, config) -> list[Check]:
    """The MAX31865's registers, its fault-detection cycle and one reading."""
    hw, safety = config.hardware, config.safety
    checks = []
    try:
        cfg, status = sensor.registers()
    except OSError as exc:
        return [Check("MAX31865 registers", False, f"SPI error: {exc}", _READING_FIXES[NO_RESPONSE])]
    problems = []
    if not cfg & 0x80 or not cfg & 0x40:
        problems.append("bias or auto-convert off")
    if bool(cfg & 0x10) != (hw.rtd_wires == 3):
        problems.append(f"3-wire bit does not match rtd_wires = {hw.rtd_wires}")
    if bool(cfg & 0x01) != (hw.mains_hz == 50):
        problems.append(f"filter does not match mains_hz = {hw.mains_hz}")
    detail = f"configuration 0x{cfg:02x}, fault status 0x{status:02x}"
    if cfg in (0x00, 0xFF):
        checks.append(Check("MAX31865 registers", False, detail, _READING_FIXES[NO_RESPONSE]))
    elif problems:
        checks.append(Check("MAX31865 registers", False, f"{detail}: {', '.join(problems)}",
                            "restart the appliance; if it stays, replace the breakout"))
    else:
        checks.append(Check("MAX31865 registers", True, f"{detail} ({hw.rtd_wires}-wire, "
                                                        f"{hw.mains_hz} Hz filter)"))
    bits = sensor.fault_detection()
    checks.append(Check("fault-detection cycle", not bits, ", ".join(bits) or "finished, no faults",
                        _fix_for(bits)))
    sample = sensor.read()
    if sample.ok and safety.min_valid_c <= sample.temperature_c <= safety.max_valid_c:
        checks.append(Check("RTD reading", True, f"{sample.temperature_c:.2f} °C, "
                                                 f"{sample.resistance_ohm:.2f} Ω (code {sample.code})"))
    elif sample.ok:
        checks.append(Check("RTD reading", False, f"{sample.temperature_c:.1f} °C is not a mat's "
                                                  "temperature",
                            "check rtd_nominal_ohm / rtd_ref_ohm (PT100: 430 Ω, PT1000: 4300 Ω) "
                            "and the wiring"))
    elif sample.error == "spi_error":
        checks.append(Check("RTD reading", False, "SPI error", _READING_FIXES[NO_RESPONSE]))
    else:
        checks.append(Check("RTD reading", False, f"{sample.error}: {', '.join(sample.fault_bits)}",
                            _fix_for(sample.fault_bits)))
    return checks


def _reading(sensor) -> float | None:
    sample = sensor.read()
    return sample.temperature_c if sample.ok else None


def check_outputs(heater, sensor, clock, config, *, heartbeat=None,
                  pulse_max_s: float = SSR_PULSE_MAX_S, rise_c: float = RISE_C) -> list[Check]:
    """Pulse the relay, then the SSR through it at full power until the reading rises ``rise_c``
    (or ``pulse_max_s``), toggling the heartbeat so the gate lets the SSR input through. The mat
    must be empty; the heater is off again whatever happens."""
    start_c = _reading(sensor)
    limit_c = config.safety.max_setpoint_c - COOLER_THAN_SETPOINT_C
    if start_c is None or start_c > limit_c:
        why = "no good reading" if start_c is None else f"the mat is at {start_c:.1f} °C"
        return [Check("outputs", False, f"not pulsed: {why}",
                      f"fix the sensor first and let the mat cool below {limit_c:g} °C")]
    checks = []
    try:
        heater.off()
        if heater.has_relay:
            heater.close_relay()
            clock.sleep(RELAY_CLICK_S)
            heater.open_relay()
            checks.append(Check("relay", True, f"pulsed for {RELAY_CLICK_S:g} s (listen for the "
                                               "click)"))
        heater.close_relay()
        heater.set_duty(1.0)
        started_s = clock.monotonic()
        peak_c = start_c
        while clock.monotonic() - started_s < pulse_max_s and peak_c - start_c < rise_c:
            if heartbeat is not None:
                heartbeat.beat()
            clock.sleep(SAMPLE_S)
            now_c = _reading(sensor)
            if now_c is None:
                break
            peak_c = max(peak_c, now_c)
        took_s = clock.monotonic() - started_s
    finally:
        heater.off()
    if peak_c - start_c >= rise_c:
        checks.append(Check("SSR and element", True,
                            f"+{peak_c - start_c:.2f} °C after {took_s:.0f} s at full power"))
    else:
        checks.append(Check("SSR and element", False,
                            f"+{peak_c - start_c:.2f} °C in {took_s:.0f} s at full power",
                            "check the SSR's input driver (a transistor: the Pi cannot drive an "
                            "SSR input), the relay's driver, the element and the thermal cut-out"))
    return checks


def run_standalone(config, *, outputs: bool, clock=None, spidev: Path = SPIDEV,
                   make_factory=None, build_spi=None) -> list[Check]:
    """Every check with the appliance stopped: this process opens the bus and the pins."""
    import time  # noqa: PLC0415

    from appliance.wiring import _outputs, _sensor  # noqa: PLC0415

    clock = clock or time
    checks = [check_spidev(spidev), check_blinka()]
    factory_check, factory = check_pin_factory(make_factory)
    checks.append(factory_check)
    faults: list[str] = []
    sensor = None
    try:
        if build_spi is None:
            from hw.pi import build_spi  # noqa: PLC0415
        spi, cs = build_spi(config.hardware.rtd_cs_pin)
        sensor = _sensor(config, spi, cs, faults, clock)
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("MAX31865 registers", False, f"no SPI bus: {exc}",
                            "fix the SPI device and Blinka checks above first"))
    if sensor is not None:
        checks += check_sensor(sensor, config)
    elif faults:
        checks.append(Check("MAX31865 registers", False, "the sensor could not be set up",
                            _READING_FIXES[NO_RESPONSE]))
    if outputs:
        if factory is None or sensor is None:
            checks.append(Check("outputs", False, "not pulsed: no pin factory or no sensor",
                                "fix the checks above first"))
        else:
            heater, heartbeat = _outputs(config, factory, faults)
            if heater is None:
                checks.append(Check("outputs", False, "the heater pins could not be claimed",
                                    "stop the appliance (systemctl stop lumbarest-appliance)"))
            else:
                try:
                    checks += check_outputs(heater, sensor, clock, config, heartbeat=heartbeat)
                finally:
                    heater.close()
                    if heartbeat is not None:
                        heartbeat.close()
    return checks


def run_in_appliance(core) -> list[Check]:
    """The checks a running appliance can make with its own devices (``system.hwcheck``); the
    outputs are never pulsed here — the appliance's own rules own them."""
    checks = []
    if core.devices.rig is not None:
        checks.append(Check("mode", True, "simulation: fake MAX31865 on a fake SPI bus, mock pins"))
    else:
        checks += [check_spidev(), check_blinka()]
        heater = core.devices.heater
        factory = heater.pin_factory if heater is not None else None
        if factory is None:
            checks.append(Check("pin factory", False, "the heater pins are not available",
                                "see the output_missing alarm: it names what is missing"))
        else:
            checks.append(Check("pin factory", True, describe_factory(factory)))
    sensor = core.devices.sensor
    if sensor is None:
        checks.append(Check("MAX31865 registers", False, "the sensor could not be set up",
                            _READING_FIXES[NO_RESPONSE]))
    else:
        checks += check_sensor(sensor, core.config)
    return checks
