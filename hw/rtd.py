"""The mat's temperature sensor: a platinum RTD read through a MAX31865 with the Adafruit driver.

The Adafruit driver is used as is, with two known pitfalls handled here (``../shared/DOMAIN.md``
section 4): it never checks the RTD register's fault bit, so an open or shorted RTD comes back as
+988 °C or −242 °C like any other value; and its one-shot path clears latched faults first. So every
sample reads the fault status register after the conversion, and a faulted reading carries no
temperature at all.

The chip runs in auto-convert mode (a conversion every 16.7/20 ms), so a read never sleeps.
"""

import math
from dataclasses import dataclass

import adafruit_max31865

RTD_A = 3.9083e-3  # Callendar-Van Dusen, IEC 60751
RTD_B = -5.775e-7

FAULT_BITS = (  # fault status register bit -> name, as in the datasheet
    (0x80, "HIGHTHRESH"),  # RTD >= high threshold: open RTD
    (0x40, "LOWTHRESH"),   # RTD <= low threshold: shorted RTD
    (0x20, "REFINLOW"),    # REFIN- > 0.85 x VBIAS
    (0x10, "REFINHIGH"),   # REFIN- < 0.85 x VBIAS, FORCE- open
    (0x08, "RTDINLOW"),    # RTDIN- < 0.85 x VBIAS, FORCE- open
    (0x04, "OVUV"),        # over- or under-voltage on an input
)

_REG_CONFIG = 0x00
_REG_HIGH_FAULT_MSB = 0x03
_REG_FAULT_STATUS = 0x07
_CONFIG_FAULT_CYCLE_MASK = 0x0C
_CONFIG_FAULT_CYCLE_AUTO = 0x84  # VBIAS on, D3:D2 = 01: automatic fault-detection cycle


def decode_fault_bits(status: int) -> tuple[str, ...]:
    """Names of the bits set in a fault status byte."""
    return tuple(name for bit, name in FAULT_BITS if status & bit)


def code_to_ohms(code: int, ref_resistor_ohm: float) -> float:
    """The 15-bit RTD/REF ratio as a resistance."""
    return code * ref_resistor_ohm / 32768.0


def ohms_to_celsius(resistance_ohm: float, nominal_ohm: float) -> float:
    """Invert Callendar-Van Dusen for T >= 0 °C (the mat never runs below freezing)."""
    ratio = resistance_ohm / nominal_ohm
    discriminant = RTD_A * RTD_A - 4 * RTD_B * (1 - ratio)
    return (-RTD_A + math.sqrt(max(0.0, discriminant))) / (2 * RTD_B)


def celsius_to_ohms(temperature_c: float, nominal_ohm: float) -> float:
    """Callendar-Van Dusen for T >= 0 °C."""
    return nominal_ohm * (1 + RTD_A * temperature_c + RTD_B * temperature_c * temperature_c)


@dataclass(frozen=True)
class RtdSample:
    """One reading. ``temperature_c`` is ``None`` unless the reading is fault-free.

    ``error`` names why there is no temperature: ``spi_error``, or ``fault`` with ``fault_bits``.
    """

    temperature_c: float | None
    resistance_ohm: float | None
    code: int | None
    fault_bits: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.temperature_c is not None


class Max31865(adafruit_max31865.MAX31865):
    """The Adafruit driver plus what it lacks: the raw fault status, thresholds, fault detection."""

    def fault_status(self) -> int:
        return self._read_u8(_REG_FAULT_STATUS)

    def set_fault_thresholds(self, low_code: int, high_code: int) -> None:
        """Program the 15-bit low/high fault thresholds (RTD below/above them latches a fault)."""
        for offset, code in enumerate((high_code, low_code)):
            register = _REG_HIGH_FAULT_MSB + 2 * offset
            value = (code << 1) & 0xFFFF
            self._write_u8(register, value >> 8)
            self._write_u8(register + 1, value & 0xFF)

    def run_fault_detection(self, *, polls: int = 20) -> int:
        """Run the automatic fault-detection cycle and return the fault status byte.

        The cycle takes about 100 µs per step; D3:D2 read back as 00 when it is finished.
        """
        config = self._read_u8(_REG_CONFIG)
        self._write_u8(_REG_CONFIG, (config & 0x11) | _CONFIG_FAULT_CYCLE_AUTO)
        for _ in range(polls):
            if not self._read_u8(_REG_CONFIG) & _CONFIG_FAULT_CYCLE_MASK:
                break
        return self.fault_status()


class RtdSensor:
    """A PT100/PT1000 on a MAX31865 in auto-convert mode.

    :param spi: an SPI bus object (``board.SPI()`` on the Pi, :class:`hw.sim.max31865.FakeSpiBus`
        in simulation).
    :param cs: the chip-select ``DigitalInOut``-like object.
    :param nominal_ohm: 100 for PT100, 1000 for PT1000.
    :param ref_resistor_ohm: the board's reference resistor (Adafruit: 430 / 4300).
    :param wires: 2, 3 or 4.
    :param mains_hz: 50 or 60: the notch filter of the converter.
    :param valid_range_c: readings outside are not temperatures of a mat (the configured limits
        are narrower; these only bound the fault thresholds programmed into the chip).
    """

    def __init__(self, spi, cs, *, nominal_ohm: float = 100.0, ref_resistor_ohm: float = 430.0,
                 wires: int = 3, mains_hz: int = 50, valid_range_c: tuple[float, float] = (-20.0, 120.0)):
        self.nominal_ohm = nominal_ohm
        self.ref_resistor_ohm = ref_resistor_ohm
        self._driver = Max31865(spi, cs, rtd_nominal=nominal_ohm, ref_resistor=ref_resistor_ohm,
                                wires=wires, filter_frequency=mains_hz)
        low, high = (self._code_for(t) for t in valid_range_c)
        self._driver.set_fault_thresholds(low, high)
        self._driver.clear_faults()
        self._driver.auto_convert = True

    def _code_for(self, temperature_c: float) -> int:
        ohms = celsius_to_ohms(temperature_c, self.nominal_ohm) if temperature_c >= 0 else \
            self.nominal_ohm * (1 + RTD_A * temperature_c)
        return max(0, min(0x7FFF, round(ohms / self.ref_resistor_ohm * 32768)))

    def read(self) -> RtdSample:
        """One sample. SPI errors become a sample with ``error="spi_error"``; never raises."""
        try:
            code = self._driver.read_rtd()
            status = self._driver.fault_status()
            if status:
                # The driver's fault path leaves bias off; clear the latch and restart conversions
                # so the next sample shows whether the fault is still there.
                self._driver.clear_faults()
                self._driver.auto_convert = True
        except OSError:
            return RtdSample(None, None, None, error="spi_error")
        ohms = code_to_ohms(code, self.ref_resistor_ohm)
        if status:
            return RtdSample(None, ohms, code, decode_fault_bits(status), error="fault")
        return RtdSample(ohms_to_celsius(ohms, self.nominal_ohm), ohms, code)

    def fault_detection(self) -> tuple[str, ...]:
        """Run the chip's fault-detection cycle (self-test); return the faults found."""
        try:
            status = self._driver.run_fault_detection()
            self._driver.clear_faults()
            self._driver.auto_convert = True
        except OSError:
            return ("SPI",)
        return decode_fault_bits(status)
