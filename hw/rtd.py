"""The mat's temperature sensor: a platinum RTD read through a MAX31865 with the Adafruit driver.

The Adafruit driver is used as is, with two known pitfalls handled here (``../shared/DOMAIN.md``
section 4): it never checks the RTD register's fault bit, so an open or shorted RTD comes back as
+988 °C or −242 °C like any other value; and its one-shot path clears latched faults first. So every
sample reads the RTD registers itself and, when their fault bit is set, the fault status register
*first* (the driver's fallback would clear the status with a one-shot read and sleep 75 ms in the
control loop); a faulted reading carries no temperature at all.

The chip runs in auto-convert mode (a conversion every 16.7/20 ms), so a read does not sleep,
except right after conversions were (re)started: the first result takes a whole conversion
(52/62.5 ms) and until then the registers hold 0 or a result from before a restart, so the sensor
waits for it rather than report either.

A quiet converter at a steady temperature returns the same code for many seconds, so a constant
reading cannot tell a dead converter from a working one. The sensor therefore proves the converter
alive every ``probe_period_s`` with the chip's fault-detection cycle, whose D3:D2 bits only a
running chip clears (and which is also the only time the chip checks REFIN-/RTDIN-).
"""

import math
import time
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
#: Not a chip bit: the fault-detection cycle did not finish (D3:D2 never read back 00), so the
#: converter is not running (or the chip does not answer).
CYCLE_TIMEOUT = "CYCLE_TIMEOUT"
#: Not a chip bit: the configuration register did not read back what was written (no chip on the
#: bus, MISO stuck).
NO_RESPONSE = "NO_RESPONSE"

_REG_CONFIG = 0x00
_REG_RTD_MSB = 0x01
_REG_HIGH_FAULT_MSB = 0x03
_REG_FAULT_STATUS = 0x07
_CONFIG_FAULT_CYCLE_MASK = 0x0C
_CONFIG_FAULT_CYCLE_AUTO = 0x84  # VBIAS on, D3:D2 = 01: automatic fault-detection cycle
_CONFIG_VBIAS = 0x80
FAULT_CYCLE_TIMEOUT_S = 0.02     # the cycle takes ~0.6 ms; 30 times that is a dead converter
FAULT_CYCLE_POLL_S = 0.001


class FaultCycleTimeout(OSError):
    """The fault-detection cycle's bits never cleared: the converter is not running."""


class ChipNotAnswering(OSError):
    """The configuration register does not read back what was written."""


def first_result_s(mains_hz: int) -> float:
    """How long after auto mode starts its first result can take (a whole conversion)."""
    return 0.0625 if mains_hz == 50 else 0.052


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

    def read_rtd_word(self) -> int:
        """The RTD registers as they are: 15-bit code in bits 15..1, the fault bit in bit 0.

        Unlike the driver's ``read_rtd()``, never falls back to a one-shot read (which clears
        the fault status and sleeps 75 ms)."""
        return self._read_u16(_REG_RTD_MSB)

    def set_fault_thresholds(self, low_code: int, high_code: int) -> None:
        """Program the 15-bit low/high fault thresholds (RTD below/above them latches a fault)."""
        for offset, code in enumerate((high_code, low_code)):
            register = _REG_HIGH_FAULT_MSB + 2 * offset
            value = (code << 1) & 0xFFFF
            self._write_u8(register, value >> 8)
            self._write_u8(register + 1, value & 0xFF)

    def run_fault_detection(self, clock, *, timeout_s: float = FAULT_CYCLE_TIMEOUT_S) -> int:
        """Run the automatic fault-detection cycle and return the fault status byte.

        Writes 100X010Xb (VBIAS on, auto-convert off, D3:D2 = 01) and polls until D3:D2 read back
        00. Raises :class:`FaultCycleTimeout` when they never do, and ``OSError`` when the
        configuration does not read back with VBIAS on (:class:`ChipNotAnswering`): a cycle that
        cannot finish must fail, not pass.
        """
        config = self._read_u8(_REG_CONFIG)
        self._write_u8(_REG_CONFIG, (config & 0x11) | _CONFIG_FAULT_CYCLE_AUTO)
        deadline = clock.monotonic() + timeout_s
        while True:
            config = self._read_u8(_REG_CONFIG)
            if not config & _CONFIG_VBIAS:
                raise ChipNotAnswering(f"MAX31865 configuration reads back 0x{config:02x}")
            if not config & _CONFIG_FAULT_CYCLE_MASK:
                return self.fault_status()
            if clock.monotonic() >= deadline:
                raise FaultCycleTimeout(f"fault-detection cycle still running after {timeout_s * 1000:.0f} ms "
                                        f"(configuration 0x{config:02x})")
            clock.sleep(FAULT_CYCLE_POLL_S)


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
    :param probe_period_s: how often the fault-detection cycle proves the converter alive.
    :param clock: ``monotonic()`` and ``sleep()`` (the ``time`` module, or a virtual clock).
    """

    def __init__(self, spi, cs, *, nominal_ohm: float = 100.0, ref_resistor_ohm: float = 430.0,
                 wires: int = 3, mains_hz: int = 50, valid_range_c: tuple[float, float] = (-20.0, 120.0),
                 probe_period_s: float = 5.0, clock=time):
        self.nominal_ohm = nominal_ohm
        self.ref_resistor_ohm = ref_resistor_ohm
        self.probe_period_s = probe_period_s
        self._clock = clock
        self._first_result_s = first_result_s(mains_hz)
        self._driver = Max31865(spi, cs, rtd_nominal=nominal_ohm, ref_resistor=ref_resistor_ohm,
                                wires=wires, filter_frequency=mains_hz)
        low, high = (self._code_for(t) for t in valid_range_c)
        self._driver.set_fault_thresholds(low, high)
        self._driver.clear_faults()
        self._start_conversions()
        self._next_probe_s = clock.monotonic() + probe_period_s

    def _code_for(self, temperature_c: float) -> int:
        ohms = celsius_to_ohms(temperature_c, self.nominal_ohm) if temperature_c >= 0 else \
            self.nominal_ohm * (1 + RTD_A * temperature_c)
        return max(0, min(0x7FFF, round(ohms / self.ref_resistor_ohm * 32768)))

    def _start_conversions(self) -> None:
        """Auto-convert on; its first result is due one whole conversion later."""
        self._driver.auto_convert = True
        self._results_from_s = self._clock.monotonic() + self._first_result_s

    def _await_first_result(self) -> None:
        wait_s = self._results_from_s - self._clock.monotonic()
        if wait_s > 0:
            self._clock.sleep(wait_s)

    def _fault_cycle(self) -> tuple[str, ...]:
        """The fault-detection cycle's findings (``CYCLE_TIMEOUT`` if it never finished); the
        latch is cleared and conversions restarted afterwards. SPI errors propagate."""
        try:
            bits = decode_fault_bits(self._driver.run_fault_detection(self._clock))
        except FaultCycleTimeout:
            bits = (CYCLE_TIMEOUT,)
        self._driver.clear_faults()
        self._start_conversions()
        return bits

    def read(self) -> RtdSample:
        """One sample. SPI errors become a sample with ``error="spi_error"``; never raises.

        ``error="fault"`` carries the chip's fault bits (with what a fault-detection cycle found
        about the cause); ``error="stale"`` means the liveness probe failed: the converter stopped,
        so the registers hold an old result.
        """
        try:
            self._await_first_result()
            word = self._driver.read_rtd_word()
            code = word >> 1
            ohms = code_to_ohms(code, self.ref_resistor_ohm)
            if word & 1:
                status = self._driver.fault_status()  # first: the fault cycle adds to the latch
                bits = decode_fault_bits(status)
                cause = self._fault_cycle()           # names REFIN/RTDIN causes; clears, restarts
                bits = tuple(dict.fromkeys(bits + cause))
                return RtdSample(None, ohms, code, bits, error="fault")
            now = self._clock.monotonic()
            if now >= self._next_probe_s:
                found = self._fault_cycle()
                if found:
                    # Probe again at the next read: three failures in a row trip, one does not.
                    self._next_probe_s = now
                    error = "stale" if CYCLE_TIMEOUT in found else "fault"
                    return RtdSample(None, ohms, code, found, error=error)
                self._next_probe_s = now + self.probe_period_s
        except OSError:
            return RtdSample(None, None, None, error="spi_error")
        return RtdSample(ohms_to_celsius(ohms, self.nominal_ohm), ohms, code)

    def registers(self) -> tuple[int, int]:
        """``(configuration, fault status)`` as the chip reports them now. Raises ``OSError``."""
        return self._driver._read_u8(_REG_CONFIG), self._driver.fault_status()

    def fault_detection(self) -> tuple[str, ...]:
        """Run the chip's fault-detection cycle (self-test); return the faults found.

        Empty only when the cycle finished and found nothing; ``CYCLE_TIMEOUT`` when its bits
        never cleared, ``NO_RESPONSE`` when the chip does not answer, ``SPI`` on a bus error.
        The faults latched by earlier conversions are included."""
        try:
            return self._fault_cycle()
        except ChipNotAnswering:
            return (NO_RESPONSE,)
        except OSError:
            return ("SPI",)
